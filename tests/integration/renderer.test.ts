// The renderer's knowledge of PgBouncer versions, checked against the real binary.
import * as assert from "assert";
import { MAX_USERLIST_PASSWORD_BYTES, PGBOUNCER_SETTINGS, parsePgBouncerVersion, renderUserlist, userlistPasswordProblem, versionAtLeast } from "../../components/pgbouncerIni";
import { STATS_USER, renderPoolerIni } from "../../components/pgbouncerPod";
import { pgbouncerClusterArgs } from "../../options/pgbouncerCluster";
import { pgbouncerSidecarArgs } from "../../options/pgbouncerSidecar";
import { LOCAL_PGBOUNCER_VERSION, USERLIST, loopbackConfig, renderIni } from "./pooler";
import { HOST, PgBouncerProcess, PostgresServer, clientConfig, pgbouncerConfigCheck, withClient } from "./servers";

const LOCAL = parsePgBouncerVersion(LOCAL_PGBOUNCER_VERSION);
const MINIMAL = "[databases]\nvelure_auth = host=127.0.0.1 port=5432 dbname=velure_auth\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 1\nauth_file = /dev/null\n";

function unknownTo(key: string, log: string): boolean {
    return log.includes(`unknown parameter: pgbouncer/${key}`);
}

describe(`the renderer's key table against the PgBouncer ${LOCAL_PGBOUNCER_VERSION} binary`, function () {
    this.timeout(120000);

    for (const [key, spec] of Object.entries(PGBOUNCER_SETTINGS)) {
        const supported = versionAtLeast(LOCAL, spec.since);
        it(`${key} (since ${spec.since}) is ${supported ? "accepted" : "refused as unknown"}`, () => {
            // The key is parsed first thing; a quarter second is plenty to see it refused.
            const { log } = pgbouncerConfigCheck(`${MINIMAL}${key} = 1\n`, "", 0.25);
            assert.strictEqual(unknownTo(key, log), !supported, log);
        });
    }
});

describe(`the stacks' rendered configs load in PgBouncer ${LOCAL_PGBOUNCER_VERSION}`, function () {
    this.timeout(120000);
    const fakeDatabase = { port: 5432, host: HOST } as PostgresServer;

    for (const stack of ["one-server-dev", "one-server-prod"]) {
        it(`${stack}: the central and the sidecar pgbouncer.ini load without an error`, () => {
            const config = loopbackConfig(fakeDatabase, { databaseReplicaHost: "127.0.0.2" });
            const inis = [
                renderPoolerIni(pgbouncerClusterArgs(config, config.servers[0]), { addr: HOST, port: 16432 }, { authFile: "/dev/null", serverCaFile: "" }),
                renderPoolerIni(pgbouncerSidecarArgs(config, config.services[0], "velure"), { addr: HOST, port: 16433 }, { authFile: "/dev/null", serverCaFile: "" }),
            ];
            for (const ini of inis) {
                const check = pgbouncerConfigCheck(ini, USERLIST);
                assert.ok(check.ok, `${ini}\n---\n${check.log}`);
            }
        });
    }
});

describe(`the longest userlist password PgBouncer ${LOCAL_PGBOUNCER_VERSION} logs in with`, function () {
    this.timeout(60000);

    async function logsIn(length: number): Promise<boolean> {
        const password = "p".repeat(length);
        const config = loopbackConfig({ port: 5432, host: HOST } as PostgresServer);
        const bouncer = new PgBouncerProcess();
        await bouncer.start(renderIni(config, bouncer), renderUserlist([{ name: STATS_USER, password }]));
        try {
            return await withClient(clientConfig(bouncer.port, "pgbouncer", { user: STATS_USER, password }), (c) => c.query("SHOW VERSION")).then(
                () => true,
                () => false,
            );
        } finally {
            await bouncer.stop();
        }
    }

    it(`is MAX_USERLIST_PASSWORD_BYTES (${MAX_USERLIST_PASSWORD_BYTES}), which the config check enforces`, async () => {
        assert.strictEqual(await logsIn(MAX_USERLIST_PASSWORD_BYTES), true, `${MAX_USERLIST_PASSWORD_BYTES} bytes log in`);
        assert.strictEqual(await logsIn(MAX_USERLIST_PASSWORD_BYTES + 1), false, `${MAX_USERLIST_PASSWORD_BYTES + 1} bytes do not`);
        assert.strictEqual(userlistPasswordProblem("p".repeat(MAX_USERLIST_PASSWORD_BYTES)), undefined);
        assert.match(userlistPasswordProblem("p".repeat(MAX_USERLIST_PASSWORD_BYTES + 1)) ?? "", /at most 1024 bytes/);
    });
});
