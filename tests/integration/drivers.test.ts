// velure's own database clients (tests/clients: GORM + pgx, lib/pq, golang-migrate, pq.Listener, at the versions
// velure's go.mod files pin, with the services' pool limits) through the PgBouncer configs the program renders for the
// dev stack (velure's two servers, its two services with their client blocks), in both PgBouncer modes, on the layer
// this run has (PgBouncer 1.18 / PostgreSQL 15, or with VELURE_LAYER=trixie 1.24 / 17). Each figure is printed as a
// "figure:" line, which the closing notes quote.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { ServiceSpec, VelureConfig } from "../../config";
import { byName, countIn, devConfig, devServices, figure, layerServices, named, runClient, velureServers } from "./clientRuns";
import { LOCAL_PGBOUNCER_VERSION } from "./pooler";
import { LAYER, PgBouncerProcess, PostgresServer, USER } from "./servers";
import { runVelureClients, samplePools, serviceUrl, startPooler } from "./velureStack";

const MIGRATIONS = path.resolve(__dirname, "../clients/migrations");
/** What a migration run may take, waiting for the lock included: publish-order's start must not hang. */
const MIGRATION_BOUND_SECONDS = 30;

async function resetSchema(pg: PostgresServer, database: string): Promise<void> {
    await pg.superuser((c) => c.query(`DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION ${USER}`), database);
}

describe(`velure's drivers through PgBouncer ${LOCAL_PGBOUNCER_VERSION} (${LAYER}), the dev stack's configs`, function () {
    this.timeout(600000);
    const servers = velureServers();

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
});
