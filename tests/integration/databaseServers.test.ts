// velure's shape on real PostgreSQL and PgBouncer: two servers, each with its own user's password and its own
// limit, behind the pgbouncer.ini and userlist the program renders for them (a central PgBouncer per server, and a
// sidecar per service). Every client of a pooler works at once, and each server never sees more server connections
// than the budget gives one pooler process, nor more than its own available connections.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { renderUserlist } from "../../components/pgbouncerIni";
import { PgBouncerConfigArgs, renderPoolerIni } from "../../components/pgbouncerPod";
import { DatabaseSpec, VelureConfig, loadConfig } from "../../config";
import { prepareOption } from "../../options";
import { pgbouncerClusterArgs } from "../../options/pgbouncerCluster";
import { pgbouncerSidecarArgs } from "../../options/pgbouncerSidecar";
import { LOCAL_PGBOUNCER_VERSION } from "./pooler";
import { HOST, PgBouncerProcess, PostgresServer, sampleMax, sleep, withClient } from "./servers";
import { stackConfig } from "../unit/harness";

/** Both users are velure_admin, as terraform's defaults make them, with passwords of their own. */
const ROLES = { auth: { user: "velure_admin", password: 'auth-Pw "1"' }, orders: { user: "velure_admin", password: "orders-Pw-2" } };
const LIMITS = { auth: { maxConnections: 40, reservedConnections: 10 }, orders: { maxConnections: 30, reservedConnections: 5 } };
/** default_pool_size 4 + reserve 1: 5 per pooler process. */
const POOL = { pgbouncerDefaultPoolSize: 4, pgbouncerReservePoolSize: 1 };
const CLIENTS_PER_POOLER = 20;

function twoServerConfig(auth: PostgresServer, orders: PostgresServer, mode: string): VelureConfig {
    const servers = { auth, orders };
    const databaseServers = (["auth", "orders"] as const).map((name) => ({
        name,
        host: servers[name].host,
        port: servers[name].port,
        user: ROLES[name].user,
        ...LIMITS[name],
    }));
    // prod's services with auth-service's HPA at 2 pods, so that its sidecars' (2 + 3) × 5 fit the small test server.
    // Without their client blocks: this test counts transaction pools per process; velure's clients (publish-order's
    // session pool, pgx on each PgBouncer version) are tests/integration/drivers.test.ts's.
    const services = JSON.parse(stackConfig("prod")["velure-pooling:services"]).map(({ client: _client, ...s }: any) => (s.name === "auth-service" ? { ...s, maxReplicas: 2 } : s));
    const config = stackConfig("prod", {
        mode,
        services,
        databaseServers,
        databasePasswords: { auth: ROLES.auth.password, orders: ROLES.orders.password },
        pgbouncerServerTlsSslmode: "disable",
        pgbouncerImage: `ghcr.io/icoretech/pgbouncer-docker:${LOCAL_PGBOUNCER_VERSION}`,
        monitoringExporter: false,
        ...POOL,
    });
    pulumi.runtime.setAllConfig(config, ["velure-pooling:databasePasswords"]);
    return loadConfig();
}

/** A pooler as the program renders it, on loopback, with the userlist its Secret would hold. */
interface Pooler {
    server: keyof typeof ROLES;
    database: string;
    bouncer: PgBouncerProcess;
}

async function startPooler(args: PgBouncerConfigArgs, server: DatabaseSpec, database: string): Promise<Pooler> {
    const role = ROLES[server.name as keyof typeof ROLES];
    const bouncer = new PgBouncerProcess();
    await bouncer.start((port) => renderPoolerIni(args, { addr: HOST, port }, { authFile: bouncer.authFile, serverCaFile: "" }), renderUserlist([{ name: server.user, password: role.password }]));
    return { server: server.name as keyof typeof ROLES, database, bouncer };
}

/** CLIENTS_PER_POOLER clients that each hold transactions for a while, through one pooler, for `ms`. */
async function load(pooler: Pooler, ms: number): Promise<number> {
    const until = Date.now() + ms;
    let done = 0;
    await Promise.all(
        Array.from({ length: CLIENTS_PER_POOLER }, () =>
            withClient({ host: HOST, port: pooler.bouncer.port, user: ROLES[pooler.server].user, password: ROLES[pooler.server].password, database: pooler.database }, async (c) => {
                while (Date.now() < until) {
                    await c.query("BEGIN");
                    await c.query("SELECT pg_sleep(0.05)");
                    await c.query("COMMIT");
                    done++;
                }
            }),
        ),
    );
    return done;
}

describe("two database servers, two users' passwords, two limits, behind the rendered PgBouncer configs", function () {
    this.timeout(180000);
    let auth: PostgresServer;
    let orders: PostgresServer;

    before(async () => {
        auth = await new PostgresServer({ maxConnections: LIMITS.auth.maxConnections, databases: ["velure_auth"], role: ROLES.auth }).start();
        orders = await new PostgresServer({ maxConnections: LIMITS.orders.maxConnections, databases: ["velure_orders"], host: "127.0.0.2", role: ROLES.orders }).start();
    });

    after(() => {
        auth?.stop();
        orders?.stop();
    });

    const poolersOf: Record<string, (config: VelureConfig) => Promise<Pooler[]>> = {
        "pgbouncer-cluster": (config) =>
            Promise.all(config.servers.map((server) => startPooler(pgbouncerClusterArgs(config, server), server, server.name === "auth" ? "velure_auth" : "velure_orders"))),
        "pgbouncer-sidecar": (config) =>
            Promise.all(
                config.services.map((service) => startPooler(pgbouncerSidecarArgs(config, service, service.namespace), config.servers.find((s) => s.name === service.server) as DatabaseSpec, service.database)),
            ),
    };

    /** Starts the mode's poolers, runs `use`, then stops every one of them, so that none outlives its test. */
    async function withPoolers(mode: string, config: VelureConfig, use: (poolers: Pooler[]) => Promise<void>): Promise<void> {
        const poolers = await poolersOf[mode](config);
        try {
            await use(poolers);
        } finally {
            await Promise.all(poolers.map((p) => p.bouncer.stop()));
        }
    }

    for (const mode of Object.keys(poolersOf)) {
        it(`${mode}: each server sees at most one pooler process's share of its own budget, under ${CLIENTS_PER_POOLER} clients a pooler`, async () => {
            const config = twoServerConfig(auth, orders, mode);
            await withPoolers(mode, config, async (poolers) => {
                const peaks = { auth: sampleMax(() => auth.backends("velure_auth")), orders: sampleMax(() => orders.backends("velure_orders")) };
                const done = await Promise.all(poolers.map((p) => load(p, 3000)));
                const peak = { auth: await peaks.auth.stop(), orders: await peaks.orders.stop() };
                assert.ok(done.every((n) => n > CLIENTS_PER_POOLER), `every pooler served its clients (${done.join(", ")} transactions)`);
                const perProcess = config.pgbouncer.tuning.maxDbConnections;
                assert.strictEqual(perProcess, 5);
                for (const name of ["auth", "orders"] as const) {
                    assert.ok(peak[name] >= 2 && peak[name] <= perProcess, `server ${name}: ${peak[name]} server connections, at most ${perProcess}`);
                }
                // The budget the program checked: each server against its own limit less its own reserve.
                const budget = prepareOption(config, { kind: "none" }).budget;
                assert.deepStrictEqual(budget.map((s) => [s.server, s.available]), [["server auth", 30], ["server orders", 25]]);
                assert.ok(budget.every((s) => s.used <= s.available));
            });
        });
    }

    it("each pooler logs its clients in with its own server's password only, and knows only its own server's database", async () => {
        const config = twoServerConfig(auth, orders, "pgbouncer-cluster");
        await withPoolers("pgbouncer-cluster", config, async ([authPooler]) => {
            const asOrders = { host: HOST, port: authPooler.bouncer.port, user: ROLES.orders.user, password: ROLES.orders.password, database: "velure_auth" };
            await assert.rejects(withClient(asOrders, (c) => c.query("SELECT 1")), /SASL authentication failed|password authentication failed/);
            const otherDatabase = { ...asOrders, password: ROLES.auth.password, database: "velure_orders" };
            await assert.rejects(withClient(otherDatabase, (c) => c.query("SELECT 1")), /no such database: velure_orders/);
            await sleep(100);
        });
    });
});
