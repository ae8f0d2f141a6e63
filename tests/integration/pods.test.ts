// Every pod the program declares, run the way the kubelet runs it (tests/integration/kubelet.ts): the central
// PgBouncer's Deployment, and an app pod with a native and with a classic PgBouncer sidecar. Each container starts
// from its own command, every probe must pass within failureThreshold × periodSeconds, each PgBouncer container
// stops through its preStop hook and SIGTERM with status 0, and a probe on a stopped PgBouncer fails.
import * as assert from "assert";
import * as http from "http";
import { SIDECAR_CONTAINER } from "../../components/pgbouncerSidecar";
import { EXPORTER_CONTAINER } from "../../components/pgbouncerPod";
import { EXPORTER_PORT } from "../../components/specs";
import { StackConfig, runProgram } from "../../plan/runtime";
import { stackConfig } from "../unit/harness";
import { Container, POD_IP, PROBE_KINDS, PodUnderTest, Probe, RunningPod, allContainers, podsOf } from "./kubelet";
import { LOCAL_PGBOUNCER_VERSION, ackedIds, connect, insertAcked, loopbackStack } from "./pooler";
import { HOST, PostgresServer, sleep } from "./servers";

const DATABASES = ["velure_auth", "velure_orders"];
/** What the app's own probe looks like in a stack that sets one (the shipped chart takes it as a value). */
const APP_READINESS = { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 5, failureThreshold: 3 };

/** A stack file on loopback, with an app readiness probe in every service. */
function podStack(stack: string, primary: PostgresServer, overrides: Record<string, unknown> = {}): StackConfig {
    const services = JSON.parse(stackConfig(stack)["velure-pooling:services"]).map((s: any) => ({ ...s, values: { ...s.values, readinessProbe: APP_READINESS } }));
    return loopbackStack(stack, primary, { services, ...overrides });
}

/** The one pod of a run whose name starts with `prefix` (the Deployment, or a service's release). */
async function podOf(config: StackConfig, prefix: string): Promise<PodUnderTest> {
    const pod = podsOf(await runProgram(config)).find((p) => p.name.startsWith(prefix));
    assert.ok(pod, `the program declares a pod ${prefix}`);
    return pod;
}

const isPgBouncer = (c: Container) => c.image.includes("/pgbouncer-docker:");
const probesOf = (c: Container) => PROBE_KINDS.filter((k) => c[k]).map((k) => ({ kind: k, probe: c[k] as Probe }));

/** What every probe gave: printed after the run, for the record. */
const results: string[] = [];

function handler(probe: Probe): string {
    if (probe.exec) {
        return `exec ${probe.exec.command.slice(0, 5).join(" ")} …`;
    }
    return probe.tcpSocket ? `tcpSocket :${probe.tcpSocket.port}` : `httpGet :${probe.httpGet?.port}${probe.httpGet?.path}`;
}

/** Starts the pod's containers as the kubelet does: native sidecars first, the app only once their startup probe passed. */
async function startPod(running: RunningPod): Promise<void> {
    for (const sidecar of running.pod.spec.initContainers ?? []) {
        await running.start(sidecar.name);
        if (sidecar.startupProbe) {
            const started = await running.probe(sidecar.name, sidecar.startupProbe);
            assert.ok(started.ok, `${sidecar.name}'s startup probe: ${started.detail}`);
        }
    }
    for (const container of running.pod.spec.containers) {
        await running.start(container.name);
    }
}

async function metrics(): Promise<string> {
    return new Promise((resolve, reject) => {
        http.get({ host: POD_IP, port: EXPORTER_PORT, path: "/metrics" }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve(body));
        }).on("error", reject);
    });
}

interface PodCase {
    title: string;
    stack: string;
    overrides: Record<string, unknown>;
    pod: string;
    /** Where the app (or the Service) reaches PgBouncer in this pod. */
    pgbouncer: { container: string; host: string; port: number };
}

const CASES: PodCase[] = [
    {
        title: "the central PgBouncer (dev, pgbouncer-cluster)",
        stack: "one-server-dev",
        overrides: { mode: "pgbouncer-cluster" },
        pod: "velure-pgbouncer",
        // The Service sends clients to the pod's IP.
        pgbouncer: { container: "pgbouncer", host: POD_IP, port: 5432 },
    },
    {
        title: "an app pod with a native PgBouncer sidecar (prod, pgbouncer-sidecar)",
        stack: "one-server-prod",
        overrides: {},
        pod: "velure-auth-service",
        pgbouncer: { container: SIDECAR_CONTAINER, host: HOST, port: 6432 },
    },
    {
        title: "an app pod with a classic PgBouncer sidecar (prod, sidecarNative false)",
        stack: "one-server-prod",
        overrides: { sidecarNative: false, appDrainSeconds: 1 },
        pod: "velure-auth-service",
        pgbouncer: { container: SIDECAR_CONTAINER, host: HOST, port: 6432 },
    },
];

describe(`pods run the way the kubelet runs them (PgBouncer ${LOCAL_PGBOUNCER_VERSION}, pod IP ${POD_IP})`, function () {
    this.timeout(180000);
    let primary: PostgresServer;

    before(async function () {
        if (process.env.VELURE_NETNS !== "1") {
            // The central PgBouncer listens on every address (*:5432), the exporter on :9127: only in a namespace of our own.
            console.log("    (skipped: needs the network namespace of npm run test:integration, as root)");
            this.skip();
        }
        primary = await new PostgresServer({ maxConnections: 60, databases: DATABASES }).start();
    });

    after(() => {
        primary?.stop();
        if (results.length > 0) {
            console.log(`\n    probe results:\n${results.map((r) => `      ${r}`).join("\n")}\n`);
        }
    });

    for (const c of CASES) {
        describe(c.title, () => {
            let running: RunningPod;

            before(async () => {
                running = new RunningPod(await podOf(podStack(c.stack, primary, c.overrides), c.pod));
                await startPod(running);
            });

            after(async () => {
                await running?.remove();
            });

            it("passes every probe of every container within failureThreshold × periodSeconds", async () => {
                for (const container of allContainers(running.pod.spec)) {
                    for (const { kind, probe } of probesOf(container)) {
                        const outcome = await running.probe(container.name, probe);
                        results.push(`${c.title} | ${container.name} | ${kind} | ${handler(probe)} | ${outcome.ok ? "pass" : "FAIL"} (attempt ${outcome.attempts}): ${outcome.detail}`);
                        assert.ok(outcome.ok, `${container.name} ${kind} (${handler(probe)}): ${outcome.detail}\n${running.log(container.name)}`);
                    }
                }
                const probed = allContainers(running.pod.spec).filter((k) => probesOf(k).length > 0).map((k) => k.name);
                assert.deepStrictEqual(probed.sort(), allContainers(running.pod.spec).map((k) => k.name).sort(), "every container has a probe");
            });

            it("serves the app through PgBouncer, and the exporter reads PgBouncer's stats with the connection string from its env", async () => {
                const client = await connect(c.pgbouncer.port, "velure_auth", c.pgbouncer.host);
                assert.deepStrictEqual((await client.query("SELECT 1 AS ok")).rows, [{ ok: 1 }]);
                await client.end();
                assert.ok(running.container(EXPORTER_CONTAINER).args?.every((a) => !a.includes("postgres://")), "no connection string in the arguments");
                assert.match(await metrics(), /^pgbouncer_up 1$/m);
            });

            it("stops PgBouncer cleanly: the preStop hook ends with 0 (PgBouncer serves meanwhile), SIGTERM drains the in-flight transaction, exit status 0", async () => {
                const container = running.container(c.pgbouncer.container);
                const query = async () => {
                    const client = await connect(c.pgbouncer.port, "velure_auth", c.pgbouncer.host);
                    await client.query("SELECT 1");
                    await client.end();
                };
                let left = running.graceSeconds();
                if (container.lifecycle?.preStop) {
                    const hook = running.preStop(container.name);
                    await sleep(500);
                    await query();
                    const { status, seconds } = await hook;
                    assert.strictEqual(status, 0, "the preStop hook ended with status 0");
                    left -= seconds;
                }
                const client = await connect(c.pgbouncer.port, "velure_auth", c.pgbouncer.host);
                const id = `${c.title}-in-flight`;
                const inFlight = insertAcked(client, id, 2).then(() => "committed", (e: Error) => e.message);
                await sleep(300);
                const status = await running.terminate(container.name, left);
                assert.strictEqual(await inFlight, "committed", "the transaction in flight at SIGTERM committed");
                await client.end().catch(() => undefined);
                assert.strictEqual(status, 0, `PgBouncer's container exited ${status} within the grace period:\n${running.log(container.name)}`);
                assert.ok((await ackedIds(primary)).has(id));
            });

            it("fails every probe of a stopped PgBouncer", async () => {
                for (const container of allContainers(running.pod.spec).filter(isPgBouncer)) {
                    for (const { kind, probe } of probesOf(container)) {
                        const outcome = await running.probeOnce(container.name, probe);
                        assert.ok(!outcome.ok, `${container.name} ${kind} passed on a stopped PgBouncer: ${outcome.detail}`);
                    }
                }
            });
        });
    }

    describe("the probes the sidecar had before (tcpSocket on its port, no host)", () => {
        let running: RunningPod;

        before(async () => {
            running = new RunningPod(await podOf(podStack("one-server-prod", primary), "velure-auth-service"));
            await startPod(running);
        });

        after(async () => {
            await running?.remove();
        });

        it("fail against a PgBouncer on 127.0.0.1: the kubelet sends them to the pod's IP", async () => {
            const old = { tcpSocket: { port: 6432 }, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 2 };
            const outcome = await running.probeOnce(SIDECAR_CONTAINER, old);
            assert.ok(!outcome.ok, `the old probe passed: ${outcome.detail}`);
            assert.match(outcome.detail, /^127\.0\.0\.2:6432 ECONNREFUSED$/);
            // The same probe aimed at loopback passes: the address, not PgBouncer, is what fails.
            assert.ok((await running.probeOnce(SIDECAR_CONTAINER, { ...old, tcpSocket: { port: 6432, host: HOST } } as Probe)).ok);
        });
    });
});

