// velure's own database clients (tests/clients: GORM + pgx, lib/pq, golang-migrate, pq.Listener, at the versions
// velure's go.mod files pin, with the services' pool limits) through the PgBouncer configs the program renders for the
// dev stack (velure's two servers, its two services with their client blocks), in both PgBouncer modes, on the layer
// this run has (PgBouncer 1.18 / PostgreSQL 15, or with VELURE_LAYER=trixie 1.24 / 17). Each figure is printed as a
// "figure:" line, which the closing notes quote.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { immediateShutdownSignal } from "../../components/pgbouncerPod";
import { parsePgBouncerVersion, renderUserlist } from "../../components/pgbouncerIni";
import { ServiceSpec, VelureConfig } from "../../config";
import { servesNamedStatements } from "../../config/client";
import { LOCAL_PGBOUNCER_VERSION } from "./pooler";
import { LAYER, PASSWORD, PgBouncerProcess, PostgresServer, USER, sleep } from "./servers";
import { CLIENTS_BIN, lastResult, loopbackVelureConfig, runVelureClients, samplePools, serviceUrl, stackServices, startPooler } from "./velureStack";

const MIGRATIONS = path.resolve(__dirname, "../clients/migrations");
/** What a migration run may take, waiting for the lock included: publish-order's start must not hang. */
const MIGRATION_BOUND_SECONDS = 30;
/** The fault test's stand-in for the pod's drain time (pgbouncerDrainSeconds). */
const DRAIN_SECONDS = 5;

interface ClientResult {
    ops: number;
    failed: number;
    errors?: Record<string, number>;
    acked?: string[];
    version?: number;
    dirty?: boolean;
    seconds: number;
    got?: number;
    value?: string;
    fatal?: string;
    okAfterLastError: number;
}

function figure(what: string, result: ClientResult): void {
    const errors = Object.entries(result.errors ?? {}).map(([e, n]) => `${n}× ${e}`);
    console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} ${what}: ${result.ops} ops, ${result.failed} failed${result.fatal ? `, fatal: ${result.fatal}` : ""}${errors.length ? ` (${errors.join("; ")})` : ""}`);
}

/** Runs one velure-clients command against `url` to its end. */
function runClient(command: string, url: string, args: string[] = [], timeoutSeconds = 120): Promise<ClientResult> {
    return runVelureClients<ClientResult>([command, "-url", url, ...args], timeoutSeconds);
}

/** A client run that lasts until its stdin is closed: the fault tests end it when the faults are over. */
function startClient(command: string, url: string, args: string[]): { child: ChildProcess; done: Promise<ClientResult> } {
    const child = spawn(CLIENTS_BIN, [command, "-url", url, "-duration", "10m", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout?.on("data", (d) => (out += d));
    const done = new Promise<ClientResult>((resolve, reject) =>
        child.once("exit", () => {
            const result = lastResult<ClientResult>(out);
            return result ? resolve(result) : reject(new Error(`velure-clients ${command}: no result`));
        }),
    );
    return { child, done };
}

/** The dev stack on loopback: each of velure's servers a PostgreSQL of its own, the PgBouncer version of this layer. */
function devConfig(servers: Record<string, PostgresServer>, mode: string, services?: unknown[], monitoring?: boolean): VelureConfig {
    return loopbackVelureConfig({ stack: "dev", servers, mode, pgbouncerVersion: LOCAL_PGBOUNCER_VERSION, services, monitoring });
}

const devServices = () => stackServices("dev");

async function countIn(pg: PostgresServer, database: string, sql: string, values: unknown[] = []): Promise<number> {
    return pg.superuser(async (c) => Number((await c.query(sql, values)).rows[0].n), database);
}

async function resetSchema(pg: PostgresServer, database: string): Promise<void> {
    await pg.superuser((c) => c.query(`DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION ${USER}`), database);
}

const byName = (config: VelureConfig, name: string) => config.services.find((s) => s.name === name) as ServiceSpec;

/** Whether this layer's PgBouncer serves pgx's named statements in a transaction pool (1.21+). */
const LOCAL_VERSION = parsePgBouncerVersion(LOCAL_PGBOUNCER_VERSION);
const named = servesNamedStatements(LOCAL_VERSION, {});

/** The dev stack's services as this layer's PgBouncer takes them: on 1.18 auth-service's client is undeclared. */
function layerServices(): any[] {
    return devServices().map(({ client, ...s }) => (client?.driver === "pgx" && !named ? s : { ...s, client }));
}

describe(`velure's drivers through PgBouncer ${LOCAL_PGBOUNCER_VERSION} (${LAYER}), the dev stack's configs`, function () {
    this.timeout(600000);
    const servers: Record<string, PostgresServer> = {};

    before(async () => {
        servers.auth = await new PostgresServer({ maxConnections: 100, databases: ["velure_auth"] }).start();
        servers.orders = await new PostgresServer({ maxConnections: 100, databases: ["velure_orders"], host: "127.0.0.2" }).start();
    });

    after(() => Object.values(servers).forEach((s) => s.stop()));

    for (const mode of ["pgbouncer-cluster", "pgbouncer-sidecar"]) {
        describe(mode, () => {

            it(`auth-service: GORM + pgx, AutoMigrate and 20 × 200 operations, a restart's AutoMigrate${named ? "" : " (the config is refused here)"}`, async () => {
                if (!named) {
                    // PgBouncer 1.18: the program refuses pgx in a transaction pool; the same config with the driver
                    // undeclared shows what it would cost.
                    assert.throws(() => devConfig(servers, mode), /services\[0\]\.client\.driver: "pgx" is not allowed; pgx prepares named statements, which a transaction pool cannot serve when PgBouncer 1\.18\.\d+ predates 1\.21/);
                }
                const services = named ? undefined : devServices().map((s) => (s.client?.driver === "pgx" ? { ...s, client: { ...s.client, driver: "other" } } : s));
                const config = devConfig(servers, mode, services);
                const auth = byName(config, "auth-service");
                const bouncer = await startPooler(config, auth);
                try {
                    const url = serviceUrl(config, auth, bouncer.port);
                    const first = await runClient("gorm", url, ["-workers", "20", "-ops", "200", "-run", `${mode}-a`]);
                    figure(`${mode} GORM/pgx 20×200`, first);
                    const restart = await runClient("gorm", url, ["-workers", "20", "-ops", "20", "-run", `${mode}-b`]);
                    figure(`${mode} GORM/pgx after a restart (AutoMigrate again)`, restart);
                    if (!named) {
                        assert.ok(first.failed > 0 || restart.fatal, "on 1.18 the refused config does fail pgx: the refusal is needed");
                        return;
                    }
                    assert.strictEqual(first.fatal, undefined);
                    assert.strictEqual(first.failed, 0, JSON.stringify(first.errors));
                    assert.strictEqual(restart.fatal, undefined, "a second pod's AutoMigrate works");
                    assert.strictEqual(restart.failed, 0, JSON.stringify(restart.errors));
                    const acked = [...(first.acked ?? []), ...(restart.acked ?? [])];
                    const stored = await countIn(servers.auth, "velure_auth", "SELECT count(*) AS n FROM users WHERE email = ANY($1)", [acked]);
                    assert.strictEqual(stored, acked.length, "every acknowledged user is stored");
                    assert.strictEqual(acked.length, 20 * 200 + 20 * 20);
                } finally {
                    await bouncer.stop();
                }
            });

            describe("publish-order-service: lib/pq, golang-migrate and the outbox listener, in its session pool", () => {
                let config: VelureConfig;
                let orders: ServiceSpec;
                let bouncer: PgBouncerProcess;
                let url: string;

                before(async () => {
                    config = devConfig(servers, mode, layerServices());
                    orders = byName(config, "publish-order-service");
                    bouncer = await startPooler(config, orders);
                    url = serviceUrl(config, orders, bouncer.port);
                });

                after(() => bouncer?.stop());

                it("its database is a session pool sized for its pods' clients, and the URL carries no transaction-pool parameter", () => {
                    const ini = fs.readFileSync(bouncer.iniFile, "utf8");
                    // A pod's 15 database/sql connections and its outbox listener's one.
                    const size = mode === "pgbouncer-sidecar" ? 16 : (1 + 3) * 16;
                    assert.match(ini, new RegExp(`^velure_orders = host=\\S+ port=\\d+ dbname=velure_orders pool_mode=session pool_size=${size} max_db_connections=${size}$`, "m"));
                    assert.ok(!url.includes("binary_parameters"));
                });

                it("15 × 200 orders inserted, read and updated: none fails, every acknowledged row is stored", async () => {
                    const result = await runClient("pq", url, ["-workers", "15", "-ops", "200", "-run", mode]);
                    figure(`${mode} lib/pq 15×200 (session pool)`, result);
                    assert.strictEqual(result.failed, 0, JSON.stringify(result.errors));
                    const stored = await countIn(servers.orders, "velure_orders", "SELECT count(*) AS n FROM load_orders WHERE id = ANY($1)", [result.acked]);
                    assert.strictEqual(stored, 15 * 200);
                });

                it("3 pods' migrations at once, 4 rounds (fresh and migrated): each ends in time, version 6, no migration twice, no lock left", async () => {
                    let longest = 0;
                    for (let round = 0; round < 4; round++) {
                        const fresh = round % 2 === 0;
                        if (fresh) {
                            await resetSchema(servers.orders, "velure_orders");
                        }
                        const runs = await Promise.all([0, 1, 2].map(() => runClient("migrate", url, ["-dir", MIGRATIONS], MIGRATION_BOUND_SECONDS)));
                        longest = Math.max(longest, ...runs.map((r) => r.seconds));
                        for (const run of runs) {
                            assert.strictEqual(run.fatal, undefined);
                            assert.strictEqual(run.failed, 0, JSON.stringify(run.errors));
                            assert.deepStrictEqual([run.version, run.dirty ?? false], [6, false]);
                        }
                        const twice = await countIn(servers.orders, "velure_orders", "SELECT count(*) AS n FROM (SELECT version FROM migration_runs GROUP BY version HAVING count(*) > 1) t");
                        assert.strictEqual(twice, 0, "no migration ran twice");
                        assert.strictEqual(await countIn(servers.orders, "velure_orders", "SELECT count(*) AS n FROM migration_runs"), 3);
                    }
                    const locks = await countIn(servers.orders, "postgres", "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'");
                    console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} ${mode} golang-migrate: 3 processes × 4 rounds, 12 runs, 0 failed, longest ${longest.toFixed(2)} s, ${locks} advisory locks left`);
                    assert.strictEqual(locks, 0, "no advisory lock left on a server connection");
                });

                it("LISTEN/NOTIFY: the outbox listener gets 5 of 5 notifications", async () => {
                    const result = await runClient("listen", url, ["-n", "5"]);
                    console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} ${mode} LISTEN/NOTIFY: ${result.got ?? 0} of 5 delivered`);
                    assert.strictEqual(result.fatal, undefined);
                    assert.strictEqual(result.got, 5);
                });

                it("a session SET is seen by the connection's next statement", async () => {
                    const result = await runClient("session", url);
                    assert.strictEqual(result.failed, 0, JSON.stringify(result.errors));
                    assert.strictEqual(result.value, "4321ms");
                });
            });

            it("a lib/pq service without session features in a transaction pool: the program's binary_parameters=yes, 15 × 200 with none failed", async () => {
                const services = layerServices().map((s) => (s.name === "publish-order-service" ? { ...s, client: { driver: "lib/pq", maxOpenConnections: 15 } } : s));
                const config = devConfig(servers, mode, services);
                const orders = byName(config, "publish-order-service");
                const bouncer = await startPooler(config, orders);
                try {
                    const url = serviceUrl(config, orders, bouncer.port);
                    assert.match(url, /[?&]binary_parameters=yes(&|$)/);
                    const result = await runClient("pq", url, ["-workers", "15", "-ops", "200", "-run", `${mode}-tx`]);
                    figure(`${mode} lib/pq 15×200 (transaction pool, binary_parameters=yes)`, result);
                    const without = await runClient("pq", url.replace(/[?&]binary_parameters=yes/, ""), ["-workers", "15", "-ops", "200", "-run", `${mode}-raw`]);
                    figure(`${mode} lib/pq 15×200 (transaction pool, the URL without binary_parameters)`, without);
                    assert.strictEqual(result.failed, 0, JSON.stringify(result.errors));
                    const stored = await countIn(servers.orders, "velure_orders", "SELECT count(*) AS n FROM load_orders WHERE id = ANY($1)", [result.acked]);
                    assert.strictEqual(stored, 15 * 200);
                } finally {
                    await bouncer.stop();
                }
            });
        });
    }

    describe("publish-order-service at its peak through its sidecar: 15 readers on its pool, and its outbox listener beside it", () => {
        /** One pod's peak for PEAK_SECONDS: the 15 workers of its pool busy, its listener holding its connection. */
        const PEAK_SECONDS = 10;
        const WARM_UP_SECONDS = 3;
        /** The bar: no query waits that long for a server connection (PgBouncer's SHOW POOLS maxwait, sampled every 100 ms). */
        const LONGEST_WAIT_MS = 100;

        async function peakWith(listenConnections: number): Promise<{ result: any; maxWaitMs: number; ini: string }> {
            const services = layerServices().map((s) => (s.name === "publish-order-service" ? { ...s, client: { ...s.client, listenConnections } } : s));
            const config = devConfig(servers, "pgbouncer-sidecar", services, true);
            const orders = byName(config, "publish-order-service");
            const bouncer = await startPooler(config, orders);
            try {
                const url = serviceUrl(config, orders, bouncer.port);
                const peak = (seconds: number) => runVelureClients<any>(["peak", "-service", "orders", "-urls", url, "-listen", "1", "-duration", `${seconds}s`], seconds + 120);
                // A pod that has run a while: PgBouncer opens a pool's server connections one at a time (16 of them
                // took about 1 s here), and keeps them idle between the two runs (server_idle_timeout).
                await peak(WARM_UP_SECONDS);
                const pools = await samplePools([bouncer]);
                const result = await peak(PEAK_SECONDS);
                const { maxWaitMs } = await pools();
                console.log(
                    `      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} publish-order peak, listenConnections ${listenConnections}: ${result.workers} workers + ${result.listeners} listener, ` +
                        `${result.ops} reads, ${result.failed} failed, longest wait for a server connection ${maxWaitMs} ms; reads p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, slowest ${result.maxMs} ms`,
                );
                return { result, maxWaitMs, ini: fs.readFileSync(bouncer.iniFile, "utf8") };
            } finally {
                await bouncer.stop();
            }
        }

        it(`with the listener counted (the stack's listenConnections 1): a session pool of 16, no read waits ${LONGEST_WAIT_MS} ms for a server connection`, async () => {
            const { result, maxWaitMs, ini } = await peakWith(1);
            assert.match(ini, /^velure_orders = .* pool_mode=session pool_size=16 max_db_connections=16$/m);
            assert.strictEqual(result.fatal, undefined);
            assert.deepStrictEqual([result.workers, result.listeners, result.failed], [15, 1, 0], JSON.stringify(result.errors));
            assert.ok(maxWaitMs < LONGEST_WAIT_MS, `a read waited ${maxWaitMs} ms for a server connection`);
        });

        it("with it left out (listenConnections 0, the sizing before): the pool of 15 leaves a reader waiting for the listener's connection", async () => {
            const { maxWaitMs, ini } = await peakWith(0);
            assert.match(ini, /^velure_orders = .* pool_mode=session pool_size=15 max_db_connections=15$/m);
            assert.ok(maxWaitMs >= LONGEST_WAIT_MS, `the longest wait was ${maxWaitMs} ms: the listener's connection is what the pool must count`);
        });
    });

    it(`faults under load (pgbouncer-sidecar): reload, a PgBouncer crash and restart, a drain, a PostgreSQL restart; ${named ? "GORM and lib/pq" : "lib/pq"} recover, no acknowledged write is lost`, async function () {
        const config = devConfig(servers, "pgbouncer-sidecar", layerServices());
        // On 1.18 the program refuses auth-service's pgx in a transaction pool: only publish-order's lib/pq runs there.
        const drivers = [...(named ? [{ service: byName(config, "auth-service"), command: "gorm", server: servers.auth }] : []), { service: byName(config, "publish-order-service"), command: "pq", server: servers.orders }];
        const bouncers = await Promise.all(drivers.map((d) => startPooler(config, d.service)));
        const retired: PgBouncerProcess[] = [];
        const runs = drivers.map((d, i) => startClient(d.command, serviceUrl(config, d.service, bouncers[i].port), ["-workers", "10", "-run", "fault"]));
        const ini = (bouncer: PgBouncerProcess) => fs.readFileSync(bouncer.iniFile, "utf8");
        /** Ends each PgBouncer with `signal` and starts the next on its port with its pgbouncer.ini, as the kubelet restarts a container. */
        const replace = async (signal: NodeJS.Signals) => {
            for (const [i, bouncer] of bouncers.entries()) {
                const text = ini(bouncer);
                bouncer.signal(signal);
                // A safe shutdown waits for the server connections in use; a session pool's clients hold theirs until
                // they disconnect, so past the drain time the pod's entrypoint sends the immediate shutdown (pods.test.ts).
                const drained = await bouncer.waitExit(DRAIN_SECONDS * 1000).then(() => true, () => false);
                if (!drained) {
                    console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} ${signal}: still running after ${DRAIN_SECONDS} s with session clients connected; immediate shutdown`);
                    bouncer.signal(`SIG${immediateShutdownSignal(LOCAL_VERSION)}`);
                    await bouncer.waitExit(5000);
                }
                retired.push(bouncer);
                bouncers[i] = await new PgBouncerProcess().start(() => text, renderUserlist([{ name: USER, password: PASSWORD }]), bouncer.port);
            }
        };
        try {
            await sleep(1500);
            for (const bouncer of bouncers) {
                await bouncer.reload(() => ini(bouncer));
            }
            await sleep(1500);
            await replace("SIGKILL");
            await sleep(1500);
            // A drain: the pod's stop (the entrypoint's SIGINT, safe shutdown on every version: in-flight transactions finish).
            await replace("SIGINT");
            await sleep(1500);
            // An RDS failover's stand-in: both servers restart.
            servers.auth.restart("fast");
            servers.orders.restart("fast");
            await sleep(4000);
        } finally {
            Object.values(runs).forEach((r) => r.child.stdin?.end());
        }
        const results = await Promise.all(runs.map((r) => r.done));
        await Promise.all([...bouncers, ...retired].map((b) => b.stop()));
        const tables: Record<string, string> = { gorm: "SELECT count(*) AS n FROM users WHERE email = ANY($1)", pq: "SELECT count(*) AS n FROM load_orders WHERE id = ANY($1)" };
        for (const [i, d] of drivers.entries()) {
            const result = results[i];
            figure(`faults ${d.command}`, result);
            const stored = await countIn(d.server, d.service.database, tables[d.command], [result.acked]);
            console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} faults ${d.command}: ${result.acked?.length} acknowledged, ${stored} stored, ${result.okAfterLastError} ok after the last error`);
            assert.strictEqual(result.fatal, undefined);
            assert.strictEqual(stored, result.acked?.length, "no acknowledged write lost");
            assert.ok(result.okAfterLastError >= 10, `the driver recovered on its own: ${result.okAfterLastError} operations succeeded after its last error`);
        }
    });
});
