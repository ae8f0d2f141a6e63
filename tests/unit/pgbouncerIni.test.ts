import * as assert from "assert";
import {
    unfixedCves,
    PGBOUNCER_SETTINGS,
    PoolTuning,
    checkSetting,
    parsePgBouncerVersion,
    pgbouncerSettings,
    renderPgBouncerIni,
    renderUserlist,
} from "../../components/pgbouncerIni";

const V118 = parsePgBouncerVersion("1.18.0");
const V125 = parsePgBouncerVersion("1.25.2");
const TUNING: PoolTuning = {
    poolMode: "transaction",
    defaultPoolSize: 10,
    reservePoolSize: 2,
    reservePoolTimeout: 3,
    maxDbConnections: 12,
    maxClientConn: 1000,
    serverTlsSslmode: "verify-full",
    extra: {},
};
const DATABASES = [
    { name: "velure_orders", host: "db.example.com", port: 5432, dbname: "velure_orders" },
    { name: "velure_auth", host: "db.example.com", port: 5432, dbname: "velure_auth" },
    { name: "velure_auth_ro", host: "replica.example.com", port: 5432, dbname: "velure_auth" },
];
const LISTEN = { addr: "0.0.0.0", port: 5432 };
const PATHS = { authFile: "/etc/pgbouncer-auth/userlist.txt", serverCaFile: "/etc/pgbouncer/server-ca.pem" };

function render(version = V125, tuning = TUNING): string {
    return renderPgBouncerIni({ version, databases: DATABASES, settings: pgbouncerSettings(version, tuning, LISTEN, PATHS) });
}

function iniKeys(ini: string): string[] {
    return ini.split("[pgbouncer]\n")[1].trim().split("\n").map((l) => l.split("=")[0].trim());
}

function iniValue(ini: string, key: string): string | undefined {
    const line = ini.split("\n").find((l) => l.startsWith(`${key} = `));
    return line?.slice(key.length + 3);
}

describe("pgbouncer.ini renderer", () => {
    it("renders one [databases] line per entry, sorted, with the replica routed to its own host", () => {
        const ini = render();
        const databases = ini.split("[pgbouncer]")[0].trim().split("\n").slice(1);
        assert.deepStrictEqual(databases, [
            "velure_auth = host=db.example.com port=5432 dbname=velure_auth",
            "velure_auth_ro = host=replica.example.com port=5432 dbname=velure_auth",
            "velure_orders = host=db.example.com port=5432 dbname=velure_orders",
        ]);
    });

    it("emits [pgbouncer] keys in sorted order, so an unchanged config is byte-identical", () => {
        const ini = render();
        const keys = iniKeys(ini);
        assert.ok(keys.length > 20);
        assert.deepStrictEqual(keys, [...keys].sort());
        assert.strictEqual(render(), ini);
    });

    it("defaults to transaction pooling, SCRAM, verify-full TLS with a CA file, and no unix socket", () => {
        const ini = render();
        assert.strictEqual(iniValue(ini, "pool_mode"), "transaction");
        assert.strictEqual(iniValue(ini, "auth_type"), "scram-sha-256");
        assert.strictEqual(iniValue(ini, "server_tls_sslmode"), "verify-full");
        assert.strictEqual(iniValue(ini, "server_tls_ca_file"), "/etc/pgbouncer/server-ca.pem");
        assert.strictEqual(iniValue(ini, "unix_socket_dir"), "");
        assert.strictEqual(iniValue(ini, "admin_users"), undefined, "the admin console has no users");
    });

    it("sets the failover and sizing settings", () => {
        const ini = render();
        assert.ok(Number(iniValue(ini, "dns_max_ttl")) <= 5);
        assert.strictEqual(iniValue(ini, "tcp_keepalive"), "1");
        assert.ok(Number(iniValue(ini, "tcp_keepidle")) > 0);
        assert.ok(Number(iniValue(ini, "server_lifetime")) > 0 && Number(iniValue(ini, "server_lifetime")) <= 3600);
        assert.strictEqual(iniValue(ini, "max_client_conn"), "1000");
        assert.strictEqual(iniValue(ini, "default_pool_size"), "10");
        assert.strictEqual(iniValue(ini, "reserve_pool_size"), "2");
        assert.strictEqual(iniValue(ini, "reserve_pool_timeout"), "3");
        assert.strictEqual(iniValue(ini, "max_db_connections"), "12");
    });

    it("enables prepared statements for pgx on 1.21+, and leaves them out for 1.18 (which would refuse the key)", () => {
        assert.strictEqual(iniValue(render(V125), "max_prepared_statements"), "200");
        assert.strictEqual(iniValue(render(V118), "max_prepared_statements"), undefined);
        assert.strictEqual(iniValue(render(parsePgBouncerVersion("1.21.0")), "max_prepared_statements"), "200");
    });

    it("ignores extra_float_digits, and also options on versions open to CVE-2026-107349", () => {
        assert.strictEqual(iniValue(render(V118), "ignore_startup_parameters"), "extra_float_digits");
        assert.strictEqual(iniValue(render(V125), "ignore_startup_parameters"), "extra_float_digits,options");
        assert.strictEqual(iniValue(render(parsePgBouncerVersion("1.26.1")), "ignore_startup_parameters"), "extra_float_digits");
    });

    it("knows which CVEs a version leaves open, from the NEWS of each release", () => {
        assert.deepStrictEqual(unfixedCves(parsePgBouncerVersion("1.26.0")), ["CVE-2026-107348", "CVE-2026-107349", "CVE-2026-107350"]);
        assert.deepStrictEqual(unfixedCves(parsePgBouncerVersion("1.26.1")), []);
        assert.deepStrictEqual(unfixedCves(parsePgBouncerVersion("1.25.1")).slice(0, 2), ["CVE-2026-6664", "CVE-2026-6665"]);
        assert.strictEqual(unfixedCves(V118).length, 12);
    });

    it("renders nothing newer than its target: every 1.18 key is a 1.18 key", () => {
        const keys = iniKeys(render(V118));
        assert.ok(keys.includes("unix_socket_dir"));
        for (const key of keys) {
            assert.strictEqual(PGBOUNCER_SETTINGS[key].since, "1.18.0", `${key} is not a 1.18 key`);
        }
    });

    it("lets a user override a setting, and checks it", () => {
        const ini = render(V125, { ...TUNING, extra: { server_lifetime: 600, transaction_timeout: 30 } });
        assert.strictEqual(iniValue(ini, "server_lifetime"), "600");
        assert.strictEqual(iniValue(ini, "transaction_timeout"), "30");
        assert.throws(() => render(V118, { ...TUNING, extra: { transaction_timeout: 30 } }), /needs PgBouncer 1.25.0 or newer; the target is 1.18.0/);
        assert.throws(() => render(V125, { ...TUNING, extra: { listen_addr: "*" } }), /"listen_addr" is owned by the program/);
        assert.throws(() => render(V125, { ...TUNING, extra: { auth_type: "any" } }), /"auth_type" is owned by the program: scram-sha-256/);
    });

    it("knows the first release of the keys and values that changed (PgBouncer's NEWS)", () => {
        const since = (key: string) => PGBOUNCER_SETTINGS[key].since;
        assert.deepStrictEqual(
            ["auth_dbname", "scram_iterations", "pool_idle_timeout"].map((k) => [k, since(k)]),
            [["auth_dbname", "1.19.0"], ["scram_iterations", "1.25.0"], ["pool_idle_timeout", "1.26.0"]],
        );
        assert.throws(() => checkSetting(parsePgBouncerVersion("1.24.1"), "scram_iterations", 4096), /needs PgBouncer 1.25.0 or newer; the target is 1.24.1/);
        assert.strictEqual(checkSetting(V125, "scram_iterations", 4096), "4096");
        assert.throws(() => checkSetting(parsePgBouncerVersion("1.24.1"), "auth_type", "ldap"), /"ldap" is not allowed on PgBouncer 1.24.1/);
        assert.strictEqual(checkSetting(V125, "auth_type", "ldap"), "ldap");
    });

    it("checks values: unknown keys, enums, integers, flags", () => {
        assert.throws(() => checkSetting(V125, "no_such_key", 1), /"no_such_key" is unknown/);
        assert.throws(() => checkSetting(V125, "pool_mode", "txn"), /expected one of session, transaction, statement/);
        assert.throws(() => checkSetting(V125, "default_pool_size", 0), /expected an integer >= 1/);
        assert.throws(() => checkSetting(V125, "listen_port", 70000), /expected an integer 1..65535/);
        assert.strictEqual(checkSetting(V125, "server_round_robin", true), "1");
    });

    it("rejects line breaks in any value, database name or host (ini injection)", () => {
        for (const evil of ["a\nb", "a\rb", "a\u2028b"]) {
            assert.throws(() => checkSetting(V125, "server_check_query", evil), /line break/);
        }
        assert.throws(
            () => renderPgBouncerIni({ version: V125, databases: [{ ...DATABASES[0], host: "db\nadmin_users=x" }], settings: {} }),
            /is not a hostname/,
        );
        assert.throws(() => renderPgBouncerIni({ version: V125, databases: [{ ...DATABASES[0], name: "x y" }], settings: {} }), /not allowed/);
    });

    it("rejects an empty or duplicated [databases] list, and versions older than 1.18", () => {
        assert.throws(() => renderPgBouncerIni({ version: V125, databases: [], settings: {} }), /at least one/);
        assert.throws(() => renderPgBouncerIni({ version: V125, databases: [DATABASES[0], DATABASES[0]], settings: {} }), /declared twice/);
        assert.throws(() => renderPgBouncerIni({ version: parsePgBouncerVersion("1.17.0"), databases: DATABASES, settings: {} }), /not supported/);
    });

    it("needs a CA file when it verifies the server certificate", () => {
        assert.throws(() => pgbouncerSettings(V125, TUNING, LISTEN, { authFile: "/a" }), /needs a CA file/);
        const settings = pgbouncerSettings(V125, { ...TUNING, serverTlsSslmode: "require" }, LISTEN, { authFile: "/a" });
        assert.strictEqual(settings.server_tls_ca_file, undefined);
    });

    it("parses versions", () => {
        assert.deepStrictEqual(parsePgBouncerVersion("1.25"), { major: 1, minor: 25, patch: 0 });
        assert.throws(() => parsePgBouncerVersion("latest"), /not a PgBouncer version/);
    });
});

describe("userlist.txt renderer", () => {
    it("quotes each field and doubles the quotes inside it", () => {
        assert.strictEqual(renderUserlist([{ name: "velure", password: 'a"b c' }]), '"velure" "a""b c"\n');
    });

    it("rejects a line break in a password", () => {
        assert.throws(() => renderUserlist([{ name: "velure", password: "a\nb" }]), /line break/);
    });
});
