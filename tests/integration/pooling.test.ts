// What PgBouncer does with the config the program renders: real PostgreSQL 15 and PgBouncer on loopback.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import * as YAML from "yaml";
import { clusterBudgetLines } from "../../components/pgbouncerCluster";
import { AUTH_FILE, INI_KEY, USERLIST_KEY, exporterDsn } from "../../components/pgbouncerPod";
import { runProgram } from "../../plan/runtime";
import { FIXTURE_STACKS } from "../unit/harness";
import { LOCAL_PGBOUNCER_VERSION, STATS_PASSWORD, ackedIds, connect, insertAcked, loopbackConfig, loopbackStack, renderIni, startPgBouncer } from "./pooler";
import { PgBouncerProcess, PostgresServer, clientConfig, sampleMax, sleep, withClient } from "./servers";

const DATABASES = ["velure_auth", "velure_orders"];
/** Like a small RDS instance (db.t4g.micro allows about 80; the tests squeeze harder). */
const MAX_CONNECTIONS = 40;

/** The dev stack file's services. */
function devServices(): any[] {
    return YAML.parse(fs.readFileSync(path.join(FIXTURE_STACKS, "Pulumi.one-server-dev.yaml"), "utf8")).config["velure-pooling:services"];
}

describe(`pooling with PgBouncer ${LOCAL_PGBOUNCER_VERSION} and PostgreSQL (max_connections ${MAX_CONNECTIONS})`, function () {
    this.timeout(120000);
    let primary: PostgresServer;
    let replica: PostgresServer;

    before(async () => {
        primary = await new PostgresServer({ maxConnections: MAX_CONNECTIONS, databases: DATABASES }).start();
        // The replica is a second server on another loopback address and the same port, as an RDS replica would be.
        replica = await new PostgresServer({ maxConnections: MAX_CONNECTIONS, databases: DATABASES, host: "127.0.0.2", port: primary.port }).start();
    });

    after(() => {
        primary?.stop();
        replica?.stop();
    });

    afterEach(async () => {
        await primary.superuser((c) => c.query("TRUNCATE acked"), "velure_auth");
    });

    describe("auth and routing", () => {
        let bouncer: PgBouncerProcess;

        before(async () => {
            bouncer = await startPgBouncer(loopbackConfig(primary, { databaseReplicaHost: replica.host }));
        });
        after(() => bouncer.stop());

        it("authenticates with the rendered userlist (SCRAM) and reaches each service's database by name", async () => {
            for (const database of DATABASES) {
                const row = await withClient(clientConfig(bouncer.port, database), async (c) => (await c.query("SELECT current_database() AS db, inet_server_addr()::text AS addr")).rows[0]);
                assert.deepStrictEqual(row, { db: database, addr: "127.0.0.1/32" });
            }
        });

        it("routes the read-replica entry to its own server", async () => {
            const row = await withClient(clientConfig(bouncer.port, "velure_auth_ro"), async (c) => (await c.query("SELECT current_database() AS db, inet_server_addr()::text AS addr")).rows[0]);
            assert.deepStrictEqual(row, { db: "velure_auth", addr: "127.0.0.2/32" });
        });

        it("runs pgx-style extended-protocol queries in transaction mode", async () => {
            const rows = await withClient(clientConfig(bouncer.port, "velure_auth"), async (c) => (await c.query("SELECT $1::int + 1 AS n", [41])).rows);
            assert.deepStrictEqual(rows, [{ n: 42 }]);
        });

        it("refuses a wrong password and an unknown database with PostgreSQL's errors, and keeps connected clients working", async () => {
            const connected = await connect(bouncer.port);
            await assert.rejects(withClient(clientConfig(bouncer.port, "velure_auth", { password: "wrong" }), async () => undefined), /SASL authentication failed|password authentication failed/);
            await assert.rejects(withClient(clientConfig(bouncer.port, "nope"), async () => undefined), /no such database: nope/);
            assert.deepStrictEqual((await connected.query("SELECT 1 AS ok")).rows, [{ ok: 1 }]);
            await connected.end();
        });

        it("lets the exporter's stats user, through its rendered connection string, run SHOW POOLS and SHOW STATS", async () => {
            const client = new Client({ connectionString: exporterDsn(STATS_PASSWORD, bouncer.port) });
            await client.connect();
            try {
                const pools = (await client.query("SHOW POOLS")).rows.map((r) => r.database);
                assert.ok(pools.includes("velure_auth"), `pools: ${pools}`);
                const stats = (await client.query("SHOW STATS")).rows.map((r) => r.database);
                assert.ok(stats.includes("velure_orders"), `stats: ${stats}`);
            } finally {
                await client.end();
            }
        });

        it("keeps the app's user out of the admin console", async () => {
            await assert.rejects(
                withClient(clientConfig(bouncer.port, "pgbouncer"), (c) => c.query("SHOW POOLS")),
                /not allowed|admin console/,
            );
        });

        it("ignores extra_float_digits in the startup packet, as the exporter and JDBC send it", async () => {
            const rows = await withClient({ ...clientConfig(bouncer.port, "velure_auth"), options: undefined, extra_float_digits: 2 } as any, async (c) => (await c.query("SELECT 1 AS ok")).rows);
            assert.deepStrictEqual(rows, [{ ok: 1 }]);
        });
    });

    it("refuses clients beyond max_client_conn, and the connected ones are unaffected", async () => {
        const bouncer = await startPgBouncer(loopbackConfig(primary, { pgbouncerMaxClientConn: 5 }));
        try {
            const clients = await Promise.all([1, 2, 3, 4, 5].map(() => connect(bouncer.port)));
            await assert.rejects(connect(bouncer.port), /no more connections allowed \(max_client_conn\)/);
            const results = await Promise.all(clients.map(async (c) => (await c.query("SELECT 1 AS ok")).rows[0].ok));
            assert.deepStrictEqual(results, [1, 1, 1, 1, 1]);
            await Promise.all(clients.map((c) => c.end()));
        } finally {
            await bouncer.stop();
        }
    });

    it("serves 200 concurrent clients in transaction mode within the program's budget, where direct connections fail", async () => {
        const config = loopbackConfig(primary);
        const bouncer = await startPgBouncer(config);
        try {
            const perPod = clusterBudgetLines(config.pgbouncer.namespace, 1, config.pgbouncer.tuning, ["velure_auth"], 0)[0].perPod as number;
            const sampler = sampleMax(() => primary.backends("velure_auth"));
            const outcomes = await Promise.allSettled(
                Array.from({ length: 200 }, async (_, i) => {
                    const client = await connect(bouncer.port);
                    try {
                        for (let t = 0; t < 3; t++) {
                            await insertAcked(client, `overload-${i}-${t}`, 0.01);
                        }
                    } finally {
                        await client.end();
                    }
                }),
            );
            const peak = await sampler.stop();
            assert.deepStrictEqual(outcomes.filter((o) => o.status === "rejected"), []);
            assert.strictEqual((await ackedIds(primary)).size, 600);
            assert.ok(peak <= perPod, `peak ${peak} server connections > the budget's ${perPod} per PgBouncer process`);
            assert.ok(peak >= config.pgbouncer.tuning.defaultPoolSize, `peak ${peak}: the pool was not used`);

            const direct = await Promise.allSettled(Array.from({ length: 60 }, () => connect(primary.port)));
            const refused = direct.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
            assert.ok(refused.length >= 60 - MAX_CONNECTIONS, `${refused.length} direct connections refused`);
            assert.match(String(refused[0].reason), /too many clients|remaining connection slots are reserved/);
            await Promise.all(direct.filter((o) => o.status === "fulfilled").map((o) => (o as PromiseFulfilledResult<Client>).value.end()));
        } finally {
            await bouncer.stop();
        }
    });

    it("survives a PostgreSQL crash-restart under write load: new transactions work, nothing acknowledged is lost", async () => {
        const bouncer = await startPgBouncer(loopbackConfig(primary));
        try {
            const acknowledged: string[] = [];
            let stop = false;
            const writer = async (w: number) => {
                let client: Client | undefined;
                for (let i = 0; !stop; i++) {
                    try {
                        client = client ?? (await connect(bouncer.port));
                        await insertAcked(client, `restart-${w}-${i}`);
                        acknowledged.push(`restart-${w}-${i}`);
                    } catch {
                        await client?.end().catch(() => undefined);
                        client = undefined;
                        await sleep(100);
                    }
                }
                await client?.end().catch(() => undefined);
            };
            const writers = Array.from({ length: 20 }, (_, w) => writer(w));
            await sleep(1500);
            const before = acknowledged.length;
            primary.restart("immediate");
            const restartedAt = acknowledged.length;
            await sleep(5000);
            stop = true;
            await Promise.all(writers);
            assert.ok(before > 0 && acknowledged.length > restartedAt, `no transaction after the restart (${before} → ${restartedAt} → ${acknowledged.length})`);
            const stored = await ackedIds(primary);
            const lost = acknowledged.filter((id) => !stored.has(id));
            assert.deepStrictEqual(lost, [], "acknowledged inserts missing after the restart");
            const fresh = await withClient(clientConfig(bouncer.port, "velure_auth"), async (c) => (await c.query("SELECT 1 AS ok")).rows[0].ok);
            assert.strictEqual(fresh, 1, "a new client works without restarting PgBouncer");
        } finally {
            await bouncer.stop();
        }
    });

    it("reloads (SIGHUP) a new pool size: connected clients stay connected and the new size takes effect", async () => {
        const small = loopbackConfig(primary, { pgbouncerDefaultPoolSize: 2, pgbouncerReservePoolSize: 0 });
        const bouncer = await startPgBouncer(small);
        try {
            const burst = async () => {
                const sampler = sampleMax(() => primary.backends("velure_auth"), 20);
                await Promise.all(Array.from({ length: 12 }, () => withClient(clientConfig(bouncer.port, "velure_auth"), (c) => c.query("SELECT pg_sleep(0.3)"))));
                return sampler.stop();
            };
            const held = await connect(bouncer.port);
            await held.query("SELECT 1");
            assert.ok((await burst()) <= 2);
            await bouncer.reload(renderIni(loopbackConfig(primary, { pgbouncerDefaultPoolSize: 5, pgbouncerReservePoolSize: 0 }), bouncer));
            assert.deepStrictEqual((await held.query("SELECT 1 AS ok")).rows, [{ ok: 1 }], "the held client survived the reload");
            const peak = await burst();
            assert.ok(peak > 2 && peak <= 5, `after the reload the pool peaked at ${peak}, expected 3..5`);
            await held.end();
        } finally {
            await bouncer.stop();
        }
    });

    it("keeps clients working when one of two PgBouncer replicas is stopped mid-load (clients retry on the other)", async () => {
        const config = loopbackConfig(primary);
        const replicas = [await startPgBouncer(config), await startPgBouncer(config)];
        try {
            const ports = replicas.map((r) => r.port);
            const worker = async (w: number) => {
                let target = w % 2;
                let client: Client | undefined;
                for (let i = 0; i < 40; ) {
                    const id = `replicas-${w}-${i}`;
                    try {
                        client = client ?? (await connect(ports[target]));
                        await insertAcked(client, id);
                        i++;
                    } catch (e) {
                        if (/duplicate key/.test(String(e))) {
                            // The commit had landed before the connection broke.
                            i++;
                            continue;
                        }
                        await client?.end().catch(() => undefined);
                        client = undefined;
                        target = 1 - target;
                    }
                }
                await client?.end();
            };
            const workers = Array.from({ length: 20 }, (_, w) => worker(w));
            await sleep(200);
            replicas[0].signal("SIGKILL");
            await Promise.all(workers);
            assert.strictEqual((await ackedIds(primary)).size, 20 * 40);
        } finally {
            await Promise.all(replicas.map((r) => r.stop()));
        }
    });

    describe("the budget the program prints holds on real servers: every pod a rollout may run, every pool, per server", () => {
        /**
         * Runs the program on loopback with pool 2 and one pod per service (no HPA: both servers' 37 connections for
         * the velure role must hold the whole worst case), and returns its budget and, per service, its sidecar's files.
         */
        async function sidecarStack(replicaHost: string) {
            const onePod = devServices().map((s: any) => ({ ...s, maxReplicas: 1, resources: undefined }));
            const run = await runProgram(
                loopbackStack("one-server-dev", primary, { mode: "pgbouncer-sidecar", databaseReplicaHost: replicaHost, pgbouncerDefaultPoolSize: 2, pgbouncerReservePoolSize: 0, services: onePod }),
            );
            const services = run.ofType("kubernetes:core/v1:ConfigMap").filter((c) => c.name.endsWith("-pgbouncer-config")).map((c) => ({
                ini: c.inputs.data[INI_KEY] as string,
                userlist: run.one("kubernetes:core/v1:Secret", c.name.replace(/-config$/, "-auth")).inputs.stringData[USERLIST_KEY] as string,
                pools: [...(c.inputs.data[INI_KEY] as string).matchAll(/^(velure_\w+) = /gm)].map((m) => m[1]),
            }));
            return { budget: run.outputs.connectionBudget, services };
        }

        /** Every pod of every service (maxReplicas + surge + draining + evicted), each loaded on every one of its pools. */
        async function loadEveryPool(stack: Awaited<ReturnType<typeof sidecarStack>>, pods: number): Promise<{ primary: number; replica: number }> {
            const bouncers: PgBouncerProcess[] = [];
            try {
                for (const service of stack.services) {
                    for (let i = 0; i < pods; i++) {
                        const bouncer = new PgBouncerProcess();
                        const ini = (port: number) => service.ini.replace(/^listen_port = \d+$/m, `listen_port = ${port}`).split(AUTH_FILE).join(bouncer.authFile);
                        bouncers.push(await bouncer.start(ini, service.userlist));
                    }
                }
                const peaks = [sampleMax(() => primary.backends(), 20), sampleMax(() => replica.backends(), 20)];
                const pools = bouncers.flatMap((b, i) => stack.services[Math.floor(i / pods)].pools.map((pool) => ({ port: b.port, pool })));
                await Promise.all(
                    pools.flatMap(({ port, pool }) =>
                        Array.from({ length: 4 }, () => withClient(clientConfig(port, pool), async (c) => {
                            for (let t = 0; t < 3; t++) {
                                await c.query("SELECT pg_sleep(0.2)");
                            }
                        })),
                    ),
                );
                const [onPrimary, onReplica] = await Promise.all(peaks.map((p) => p.stop()));
                return { primary: onPrimary, replica: onReplica };
            } finally {
                await Promise.all(bouncers.map((b) => b.stop()));
            }
        }

        it("replica on a server of its own: each server's peak is exactly its own budget", async () => {
            const stack = await sidecarStack(replica.host);
            // 2 services, 1 pod each: (1 + 1 surge + 1 draining + 1 evicted) pods × max_db_connections 2, per pool.
            const [onPrimary, onReplica] = stack.budget;
            assert.deepStrictEqual([onPrimary.server, onPrimary.used, onReplica.server, onReplica.used], ["primary", 2 * 4 * 2, "read replica", 2 * 4 * 2]);
            assert.strictEqual(onPrimary.lines[0].pods, 4);
            const peak = await loadEveryPool(stack, onPrimary.lines[0].pods);
            assert.deepStrictEqual(peak, { primary: onPrimary.used, replica: onReplica.used });
        });

        it("replica host = the primary's: the read-only pools land on the primary, and its budget counts them", async () => {
            const stack = await sidecarStack(primary.host);
            assert.strictEqual(stack.budget.length, 1, "one server: the replica host is the primary's");
            const [onPrimary] = stack.budget;
            assert.strictEqual(onPrimary.used, 2 * 2 * 4 * 2, "primary and read-only pools");
            const peak = await loadEveryPool(stack, onPrimary.lines[0].pods);
            assert.deepStrictEqual(peak, { primary: onPrimary.used, replica: 0 });
        });
    });
});
