// The RDS Proxy check Job's script and env, as the program renders them, run with the real psql against a real
// PostgreSQL over TLS (verify-full) standing in for the proxy: it waits while nothing serves, and ends once a
// query is answered.
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROXY_CHECK_SCRIPT } from "../../components/rdsProxyCheck";
import { runProgram } from "../../plan/runtime";
import { stackConfig } from "../unit/harness";
import { HOST, PASSWORD, PostgresServer, TestCertificates, USER, freePort, makeCertificates, sleep } from "./servers";

interface Outcome {
    code: number | null;
    output: string;
}

/** The Job's container env as the program renders it for auth-service in mode rds-proxy, by name. */
async function renderedEnv(): Promise<Record<string, any>> {
    const run = await runProgram(stackConfig("one-server-prod", { mode: "rds-proxy", databasePassword: PASSWORD, databaseUser: USER }));
    const job = run.ofType("kubernetes:batch/v1:Job").find((j) => j.name === "velure-auth-service-rds-proxy-check-job");
    assert.ok(job, "the program declares the check Job");
    const container = job.inputs.spec.template.spec.containers[0];
    assert.deepStrictEqual(container.command.slice(0, 3), ["/bin/sh", "-c", PROXY_CHECK_SCRIPT]);
    return Object.fromEntries(container.env.map((e: any) => [e.name, e]));
}

/** Runs the script as the Job's container would, with the env's values; the Secret's password and this test's host, port and CA. */
function runCheck(env: Record<string, any>, overrides: Record<string, string>, deadlineSeconds: number): Promise<Outcome> {
    const values = Object.fromEntries(Object.entries(env).filter(([, e]) => "value" in e).map(([name, e]) => [name, String(e.value)]));
    return new Promise((resolve) => {
        const child = spawn("/bin/sh", ["-c", PROXY_CHECK_SCRIPT, "rds-proxy-check", String(deadlineSeconds)], {
            env: { PATH: process.env.PATH, ...values, PGPASSWORD: PASSWORD, ...overrides },
        });
        let output = "";
        child.stdout.on("data", (d) => (output += d));
        child.stderr.on("data", (d) => (output += d));
        child.on("exit", (code) => resolve({ code, output }));
    });
}

describe("the RDS Proxy check Job (its script and env, with psql)", function () {
    this.timeout(120000);
    let certificates: TestCertificates;
    let scratch: string;
    let env: Record<string, any>;
    const servers: PostgresServer[] = [];

    before(async () => {
        certificates = makeCertificates();
        scratch = fs.mkdtempSync(path.join(os.tmpdir(), "velure-proxy-check-"));
        fs.writeFileSync(path.join(scratch, "ca.pem"), certificates.caCert);
        fs.writeFileSync(path.join(scratch, "other-ca.pem"), makeCertificates().caCert);
        env = await renderedEnv();
    });

    after(() => {
        servers.forEach((s) => s.stop());
        fs.rmSync(scratch, { recursive: true, force: true });
    });

    const tls = () => ({ cert: certificates.serverCert, key: certificates.serverKey });

    it("renders libpq's variables: the proxy's endpoint, the service's database and user, verify-full with the mounted CA, the password from the Secret", () => {
        assert.match(env.PGHOST.value, /\.proxy-abc123\.eu-west-1\.rds\.amazonaws\.com$/);
        assert.deepStrictEqual([env.PGPORT.value, env.PGDATABASE.value, env.PGUSER.value, env.PGSSLMODE.value], ["5432", "velure_auth", USER, "verify-full"]);
        assert.strictEqual(env.PGSSLROOTCERT.value, "/etc/velure/rds-proxy-ca/ca.pem");
        assert.deepStrictEqual(env.PGPASSWORD.valueFrom.secretKeyRef, { name: "velure-auth-service-db-credentials", key: "POSTGRES_PASSWORD" });
    });

    it("waits while nothing serves, and ends 0 once the server answers a query (a target that finishes registering)", async () => {
        const port = await freePort();
        const late = new PostgresServer({ maxConnections: 20, databases: ["velure_auth"], port, tls: tls() });
        servers.push(late);
        const check = runCheck(env, { PGHOST: HOST, PGPORT: String(port), PGSSLROOTCERT: path.join(scratch, "ca.pem") }, 90);
        await sleep(3000);
        await late.start();
        const outcome = await check;
        assert.strictEqual(outcome.code, 0, outcome.output);
        assert.match(outcome.output, new RegExp(`RDS Proxy ${HOST} serves velure_auth to ${USER}`));
        assert.match(outcome.output, /Connection refused/, "it tried while nothing served, and went on trying");
    });

    it("fails once its deadline passes when the server never serves, or presents a certificate of another CA", async () => {
        const closed = await runCheck(env, { PGHOST: HOST, PGPORT: String(await freePort()), PGSSLROOTCERT: path.join(scratch, "ca.pem") }, 2);
        assert.strictEqual(closed.code, 1);
        assert.match(closed.output, /RDS Proxy 127\.0\.0\.1 did not serve velure_auth within 2 s/);
        const pg = await new PostgresServer({ maxConnections: 20, databases: ["velure_auth"], tls: tls() }).start();
        servers.push(pg);
        const untrusted = await runCheck(env, { PGHOST: HOST, PGPORT: String(pg.port), PGSSLROOTCERT: path.join(scratch, "other-ca.pem") }, 2);
        assert.strictEqual(untrusted.code, 1);
        assert.match(untrusted.output, /certificate verify failed/);
    });
});
