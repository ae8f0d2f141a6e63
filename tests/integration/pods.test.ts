// Every pod the program declares, run the way the kubelet runs it (tests/integration/kubelet.ts): the central
// PgBouncer's Deployment, and an app pod with a native and with a classic PgBouncer sidecar. Each container starts
// from its own command, every probe must pass within failureThreshold × periodSeconds, each PgBouncer container
// stops through its preStop hook and SIGTERM with status 0, a probe on a stopped PgBouncer fails, and a central
// PgBouncer whose session pool is in use ends at its drain time (the entrypoint's immediate shutdown).
import * as assert from "assert";
import * as http from "http";
import { SIDECAR_CONTAINER } from "../../components/pgbouncerSidecar";
import { EXPORTER_CONTAINER } from "../../components/pgbouncerPod";
import { EXPORTER_PORT } from "../../components/specs";
import { ENDPOINT_REMOVAL_SECONDS } from "../../components/pgbouncerCluster";
import { parsePgBouncerVersion, versionAtLeast } from "../../components/pgbouncerIni";
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

    describe("the central PgBouncer's stop while publish-order's session pool is in use (dev, pgbouncerDrainSeconds 3)", () => {
        const DRAIN_SECONDS = 3;
        let running: RunningPod;

        before(async () => {
            // publish-order as the project stacks declare it (lib/pq, golang-migrate's lock, the outbox's LISTEN):
            // its database is a session pool, whose clients hold their server connections until they leave.
            const client = { driver: "lib/pq", maxOpenConnections: 5, session: ["advisory-locks", "listen-notify"] };
            const services = JSON.parse(stackConfig("one-server-dev")["velure-pooling:services"]).map((s: any) => (s.name === "publish-order-service" ? { ...s, client } : s));
            const overrides = { mode: "pgbouncer-cluster", pgbouncerDrainSeconds: DRAIN_SECONDS, services };
            running = new RunningPod(await podOf(podStack("one-server-dev", primary, overrides), "velure-pgbouncer"));
            await startPod(running);
            const ready = await running.probe("pgbouncer", running.container("pgbouncer").readinessProbe as Probe);
            assert.ok(ready.ok, ready.detail);
        });

        after(async () => {
            await running?.remove();
        });

        it("ends PgBouncer at the drain time with its immediate shutdown, before the kubelet's SIGKILL: the session's transaction in flight commits, then the idle session is closed", async () => {
            // publish-order's database is a session pool: this client holds its server connection until it leaves.
            const session = await connect(5432, "velure_orders", POD_IP);
            await session.query("SELECT 1");
            const id = "session-pool-in-flight";
            const inFlight = insertAcked(session, id, 1).then(() => "committed", (e: Error) => e.message);
            // auth-service's client, in a transaction pool, connected to the same pod and idle.
            const auth = await connect(5432, "velure_auth", POD_IP);
            await sleep(300);
            // SIGTERM comes after the preStop hook, with the rest of the grace period left.
            const left = running.graceSeconds() - ENDPOINT_REMOVAL_SECONDS;
            const stopped = running.terminate("pgbouncer", left);
            await sleep(200);
            const asked = Date.now();
            const authAnswer = await auth.query("SELECT 1").then(() => "served", (e: Error) => e.message);
            const answered = Date.now();
            const status = await stopped;
            console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} stop with a session client held: exit status ${status} (drain ${DRAIN_SECONDS} s, ${left} s before SIGKILL); the transaction-pool client's query during the drain: "${authAnswer}" after ${((answered - asked) / 1000).toFixed(1)} s`);
            await auth.end().catch(() => undefined);
            // From 1.23 the draining PgBouncer turns an idle client away at once; before, it is paused until the end.
            assert.match(authAnswer, versionAtLeast(parsePgBouncerVersion(LOCAL_PGBOUNCER_VERSION), "1.23.0") ? /server shutting down/ : /Connection terminated unexpectedly/);
            assert.notStrictEqual(status, "killed", `PgBouncer outlived the grace period:\n${running.log("pgbouncer")}`);
            // Its immediate shutdown (SIGTERM before 1.23, SIGQUIT from 1.23) ended it: the safe one waited for the session.
            assert.match(running.log("pgbouncer"), /got SIGINT, shutting down[\s\S]*got SIG(TERM|QUIT), fast exit/);
            assert.strictEqual(await inFlight, "committed", "the session's transaction in flight at SIGTERM committed");
            await assert.rejects(session.query("SELECT 1"), "the session still held after the drain time was closed");
            await session.end().catch(() => undefined);
            assert.ok((await ackedIds(primary, "velure_orders")).has(id));
        });
    });
});

