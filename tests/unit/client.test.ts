// services[].client: the driver checks and what they change (config/client.ts), the session pool's [databases] line
// and its budget across a switch. tests/integration/drivers.test.ts runs the same through real PgBouncers.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { buildBudget, switchBudget } from "../../components/connectionBudget";
import { parsePgBouncerVersion, renderPgBouncerIni } from "../../components/pgbouncerIni";
import { checkNamedStatements, podClientConnections, readServiceClient, urlDriverParams } from "../../config/client";
import { Reader } from "../../config/reader";
import { sessionBudgetLine } from "../../options/pgbouncerDatabases";

const reader = () => new Reader(new pulumi.Config("velure-pooling"));
const V118 = parsePgBouncerVersion("1.18.0");
const V124 = parsePgBouncerVersion("1.24.1");

describe("services[].client", () => {
    it("reads driver, pool size and session features, and refuses what it does not know", () => {
        const r = reader();
        assert.deepStrictEqual(readServiceClient(r, "services[1].client", { driver: "lib/pq", maxOpenConnections: 15, session: ["advisory-locks"] }), {
            driver: "lib/pq",
            maxOpenConnections: 15,
            listenConnections: 0,
            maxLifetimeSeconds: undefined,
            session: ["advisory-locks"],
        });
        assert.deepStrictEqual(r.problems, []);
        readServiceClient(r, "services[0].client", { driver: "jdbc", session: ["cursors"], extra: 1 });
        assert.match(r.problems.join("\n"), /services\[0\]\.client\.driver: "jdbc" is not allowed; expected one of pgx, lib\/pq, other/);
        assert.match(r.problems.join("\n"), /services\[0\]\.client\.session: \["cursors"\] is not allowed/);
        assert.match(r.problems.join("\n"), /services\[0\]\.client\.extra/);
    });

    it("a session feature needs the pool size its session pool is sized by", () => {
        const r = reader();
        readServiceClient(r, "services[1].client", { driver: "lib/pq", session: ["listen-notify"] });
        assert.match(r.problems[0], /services\[1\]\.client\.maxOpenConnections: undefined is not allowed; expected an integer >= 1: a service with session features \(listen-notify\) gets a session pool/);
    });

    it("counts a LISTEN connection beside the pool: one by default with listen-notify, as many as declared, none without it", () => {
        const r = reader();
        const read = (client: any) => readServiceClient(r, "services[1].client", { driver: "lib/pq", maxOpenConnections: 15, ...client });
        assert.strictEqual(read({ session: ["advisory-locks", "listen-notify"] }).listenConnections, 1, "publish-order's outbox listener");
        assert.strictEqual(podClientConnections(read({ session: ["listen-notify"] })), 16);
        assert.strictEqual(read({ session: ["listen-notify"], listenConnections: 3 }).listenConnections, 3);
        assert.strictEqual(read({ session: ["listen-notify"], listenConnections: 0 }).listenConnections, 0, "a LISTEN on a pool connection: none beside it");
        assert.strictEqual(podClientConnections(read({ session: ["advisory-locks"] })), 15);
        assert.deepStrictEqual(r.problems, []);
        read({ session: ["advisory-locks"], listenConnections: 1 });
        assert.match(r.problems[0], /services\[1\]\.client\.listenConnections: 1 is not allowed; expected 0 without the session feature listen-notify: a LISTEN through a transaction pool receives nothing/);
        read({ session: ["listen-notify"], listenConnections: -1 });
        assert.match(r.problems[1], /services\[1\]\.client\.listenConnections: -1 is not allowed; expected an integer >= 0/);
    });

    it("reads the pool's connection lifetime in seconds, from 1 to an hour", () => {
        const r = reader();
        const read = (maxLifetimeSeconds: unknown) => readServiceClient(r, "services[0].client", { driver: "pgx", maxLifetimeSeconds });
        assert.strictEqual(read(300).maxLifetimeSeconds, 300, "velure's SetConnMaxLifetime(5m)");
        assert.strictEqual(read(undefined).maxLifetimeSeconds, undefined);
        assert.deepStrictEqual(r.problems, []);
        for (const bad of [0, 3601, 2.5, "5m"]) {
            read(bad);
        }
        assert.strictEqual(r.problems.length, 4);
        assert.match(r.problems[0], /services\[0\]\.client\.maxLifetimeSeconds: 0 is not allowed; expected an integer from 1 to 3600 \(the pod's database\/sql SetConnMaxLifetime, in seconds\): a stopping central PgBouncer waits that long/);
        assert.match(r.problems[3], /maxLifetimeSeconds: "5m" is not allowed/);
    });

    it("refuses pgx in a transaction pool that cannot keep named statements, and nowhere else", () => {
        const pgx = { driver: "pgx" as const, listenConnections: 0, session: [] };
        const problems = (version = V118, extra = {}, client: any = pgx, mode: any = "transaction") => {
            const r = reader();
            checkNamedStatements(r, "services[0].client", client, mode, version, extra);
            return r.problems;
        };
        assert.match(problems()[0], /services\[0\]\.client\.driver: "pgx" is not allowed; pgx prepares named statements, which a transaction pool cannot serve when PgBouncer 1\.18\.0 predates 1\.21/);
        assert.match(problems(V124, { max_prepared_statements: 0 })[0], /when max_prepared_statements is 0/);
        assert.deepStrictEqual(problems(V124), []);
        assert.deepStrictEqual(problems(V118, {}, pgx, "session"), []);
        assert.deepStrictEqual(problems(V118, {}, { ...pgx, maxOpenConnections: 5, session: ["session-settings"] }), [], "its own session pool serves them");
        assert.deepStrictEqual(problems(V118, {}, { driver: "lib/pq", listenConnections: 0, session: [] }), []);
    });

    it("writes binary_parameters=yes for lib/pq through a PgBouncer transaction pool only", () => {
        const pq = { driver: "lib/pq" as const, listenConnections: 0, session: [] };
        assert.deepStrictEqual(urlDriverParams(pq, "pgbouncer-sidecar", "transaction"), { binary_parameters: "yes" });
        assert.deepStrictEqual(urlDriverParams(pq, "pgbouncer-cluster", "session"), {});
        assert.deepStrictEqual(urlDriverParams({ ...pq, maxOpenConnections: 15, session: ["advisory-locks"] }, "pgbouncer-cluster", "transaction"), {});
        assert.deepStrictEqual(urlDriverParams(pq, "rds-proxy", "transaction"), {});
        assert.deepStrictEqual(urlDriverParams({ driver: "pgx", listenConnections: 0, session: [] }, "pgbouncer-cluster", "transaction"), {});
    });
});

describe("a service's session pool", () => {
    it("is its [databases] entry's own pool mode and size", () => {
        const ini = renderPgBouncerIni({
            version: V118,
            databases: [
                { name: "velure_orders", host: "db", port: 5432, dbname: "velure_orders", sessionPoolSize: 60 },
                { name: "velure_auth", host: "db", port: 5432, dbname: "velure_auth" },
            ],
            settings: { pool_mode: "transaction" },
        });
        assert.match(ini, /^velure_orders = host=db port=5432 dbname=velure_orders pool_mode=session pool_size=60 max_db_connections=60$/m);
        assert.match(ini, /^velure_auth = host=db port=5432 dbname=velure_auth$/m);
        assert.throws(() => renderPgBouncerIni({ version: V118, databases: [{ name: "a", host: "db", port: 5432, dbname: "a", sessionPoolSize: 0 }], settings: {} }), /session pool size 0 of a/);
    });

    it("is counted once in a switch: the same pods' clients, rolled from one pooler to the other", () => {
        const service: any = { name: "publish-order-service", namespace: "order", releaseName: "velure-publish-order", maxReplicas: 1, client: { driver: "lib/pq", maxOpenConnections: 15, listenConnections: 0, session: ["advisory-locks"] } };
        const line = sessionBudgetLine(service, "velure_orders");
        assert.strictEqual(line.connections, 60);
        const listening = sessionBudgetLine({ ...service, client: { ...service.client, listenConnections: 1, session: ["advisory-locks", "listen-notify"] } }, "velure_orders");
        assert.deepStrictEqual([listening.connections, listening.formula], [64, "(1 max pods + 1 surge + 1 draining + 1 evicted) × (maxOpenConnections 15 + listenConnections 1) = 16"]);
        const limits = { server: "server orders", limit: 100, reserved: 10, limitKey: "k", reservedKey: "r", pools: ["velure_orders"] };
        const other = { name: "pgbouncer → velure_other", connections: 10, formula: "10" };
        const budget = (lines: any[]) => [buildBudget(limits, lines)];
        const [server] = switchBudget({ mode: "pgbouncer-sidecar", budget: budget([line, other]) }, { mode: "pgbouncer-cluster", budget: budget([line, other]) });
        assert.strictEqual(server.used, 60 + 10 + 10, "the session line once, the pooled lines of both poolers");
    });
});
