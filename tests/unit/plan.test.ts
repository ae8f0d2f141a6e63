import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { MODES } from "../../config/schema";
import { parseArgs, plan } from "../../plan/cli";
import { REDACTED } from "../../plan/kubernetes";
import { ROOT, runProgram, stackConfig } from "./harness";

function filesUnder(dir: string): string[] {
    return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => path.relative(dir, path.join(d.parentPath ?? (d as any).path, d.name)))
        .sort();
}

async function quietly<T>(work: () => Promise<T>): Promise<{ result: T; printed: string }> {
    const log = console.log;
    let printed = "";
    console.log = (...args: unknown[]) => (printed += `${args.join(" ")}\n`);
    try {
        return { result: await work(), printed };
    } finally {
        console.log = log;
    }
}

describe("npm run plan", () => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "velure-plan-test-"));
    after(() => fs.rmSync(scratch, { recursive: true, force: true }));

    for (const stack of ["dev", "prod"]) {
        for (const mode of MODES) {
            it(`--stack ${stack} --mode ${mode} prints the tree, outputs, wiring and budget, and writes manifests without secrets`, async () => {
                const out = path.join(scratch, `${stack}-${mode}`);
                const { result, printed } = await quietly(() => plan(["--stack", stack, "--mode", mode, "--out", out]));
                assert.strictEqual(result, 0);
                assert.match(printed, new RegExp(`Plan of stack ${stack}, mode ${mode}`));
                // The project's stacks keep their passwords in Secrets Manager: nothing to fill in.
                assert.doesNotMatch(printed, /placeholder/);
                assert.match(printed, /^Resources$/m);
                // The key the pods read (the mode's), and its URL at the pooler.
                const wired = {
                    "pgbouncer-sidecar": "127\\.0\\.0\\.1:6432/",
                    "pgbouncer-cluster": "pgbouncer\\.velure-db-auth\\.svc\\.cluster\\.local:5432/",
                    "rds-proxy": "velure-[a-z]+-auth\\.proxy-",
                }[mode];
                assert.match(printed, new RegExp(`The connection each release gets\\n(.*\\n)* {2}velure-auth +POSTGRES_URL from Secret authentication/velure-auth-pooler-url key url\\.${mode} \\(the chart's authentication/velure-auth-postgres key url, its owner's, left as it is\\): postgres://velure_admin:\\*\\*\\*@${wired}`));
                assert.match(printed, /Connection budget .*\n[\s\S]* total +\d+ {2}of \d+ available/);

                const files = filesUnder(out);
                const summary = JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8"));
                assert.strictEqual(summary.mode, mode);
                assert.deepStrictEqual(files.filter((f) => f.startsWith("helm/")), ["helm/velure-auth.values.yaml", "helm/velure-publish-order.values.yaml"]);
                const inis = files.filter((f) => f.endsWith(".ini"));
                // A central PgBouncer per database server, a sidecar per service.
                assert.strictEqual(inis.length, { "rds-proxy": 0, "pgbouncer-cluster": 2, "pgbouncer-sidecar": 2 }[mode]);
                for (const file of files) {
                    const text = fs.readFileSync(path.join(out, file), "utf8");
                    assert.doesNotMatch(text, /placeholder for secret/, `${file} holds a secret value`);
                }
                for (const file of files.filter((f) => f.startsWith("kubernetes/Secret_"))) {
                    const secret = YAML.parse(fs.readFileSync(path.join(out, file), "utf8"));
                    assert.ok(Object.values(secret.stringData).every((v) => v === REDACTED), `${file} is not redacted`);
                    assert.ok(Object.keys(secret.stringData).length > 0);
                }
                const objects = files.filter((f) => f.startsWith("kubernetes/")).map((f) => YAML.parse(fs.readFileSync(path.join(out, f), "utf8")));
                assert.ok(objects.every((o) => o.apiVersion && o.kind && o.metadata.name), "every manifest is kubectl-ready");
                if (mode === "pgbouncer-cluster") {
                    assert.ok(files.includes("kubernetes/Deployment_velure-db-auth_pgbouncer.yaml"));
                    assert.ok(files.includes("kubernetes/Deployment_velure-db-orders_pgbouncer.yaml"));
                }
            });
        }
    }

    it("--deployed <outputs.json> shows what is deployed and the switch's table per server, or the refusal with both numbers", async () => {
        const outputs = path.join(scratch, "prod-outputs.json");
        const prodServices = JSON.parse(stackConfig("prod")["velure-pooling:services"]);
        // prod's sidecars with auth-service's HPA capped at 5 pods: (5 + 3) × 6 = 48 beside the central PgBouncer's 30.
        const capped = prodServices.map((s: any) => (s.name === "auth-service" ? { ...s, maxReplicas: 5 } : s));
        const deployed = await runProgram(stackConfig("prod", { mode: "pgbouncer-sidecar", services: capped }));
        fs.writeFileSync(outputs, JSON.stringify(deployed.outputs));
        const { printed } = await quietly(() => plan(["--stack", "prod", "--deployed", outputs]));
        assert.match(printed, /Deployed now \(.*prod-outputs\.json\): mode pgbouncer-sidecar, 48 of 90 server connections to the server auth, 64 of 90 server connections to the server orders/);
        assert.match(printed, /Switch pgbouncer-sidecar -> pgbouncer-cluster: connection budget of the server auth[\s\S]*deployed pgbouncer-sidecar: auth-service +48/);
        assert.match(printed, /new pgbouncer-cluster: pgbouncer → velure_auth +36 {2}= \(2 replicas \+ 1 surge \+ 2 draining/);
        assert.match(printed, /Switch pgbouncer-sidecar -> pgbouncer-cluster: connection budget of the server orders[\s\S]* total +64 {2}of 90 available \(databaseServers\[1\]\.maxConnections 100/);
        assert.match(printed, /note: 1 evicted: the pods' PodDisruptionBudget/, "the table says what the evicted term rests on");
        // prod's own sidecars (auth-service up to 10 pods): 78 + 36 of the auth server's 90 is refused, with the program's own message.
        fs.writeFileSync(outputs, JSON.stringify((await runProgram(stackConfig("prod", { mode: "pgbouncer-sidecar" }))).outputs));
        await assert.rejects(
            quietly(() => plan(["--stack", "prod", "--deployed", outputs])),
            /during the switch from pgbouncer-sidecar to pgbouncer-cluster, the two poolers together can open 114 server connections to the server auth, but it allows 90 \(velure-pooling:databaseServers\[0\]\.maxConnections 100 - velure-pooling:databaseServers\[0\]\.reservedConnections 10\)/,
        );
    });

    it("rejects bad arguments", () => {
        assert.throws(() => parseArgs([]), /--stack is required/);
        assert.throws(() => parseArgs(["--stack"]), /unexpected argument "--stack"/);
        assert.throws(() => parseArgs(["--stack", "dev", "--force", "x"]), /unexpected argument "--force"/);
    });

    describe("as a command", function () {
        this.timeout(60000);
        const run = (...args: string[]) => spawnSync(process.execPath, [require.resolve("ts-node/dist/bin"), "--swc", "plan/cli.ts", ...args], { cwd: ROOT, encoding: "utf8" });

        it("exits 0 for a good stack, and prints its budget", () => {
            const result = run("--stack", "dev");
            assert.strictEqual(result.status, 0, result.stderr);
            assert.match(result.stdout, /Connection budget of the server auth[\s\S]* total +40 {2}of 90 available/);
            assert.match(result.stdout, /Connection budget of the server orders[\s\S]* total +64 {2}of 90 available/);
        });

        it("exits non-zero with the validation message of pulumi up, and writes nothing", () => {
            const out = path.join(scratch, "bad");
            const result = run("--stack", "dev", "--mode", "pgbouncer", "--out", out);
            assert.strictEqual(result.status, 1);
            assert.match(result.stderr, /velure-pooling:mode: "pgbouncer" is not allowed; expected one of rds-proxy, pgbouncer-cluster, pgbouncer-sidecar/);
            assert.ok(!fs.existsSync(out), "a failed plan wrote files");
        });

        it("exits 2 on a usage error, and names an unknown stack", () => {
            assert.strictEqual(run().status, 2);
            const unknown = run("--stack", "staging");
            assert.strictEqual(unknown.status, 1);
            assert.match(unknown.stderr, /no stack file Pulumi.staging.yaml/);
        });
    });
});
