// The renderer's knowledge of PgBouncer versions, checked against the real binary.
import * as assert from "assert";
import { PGBOUNCER_SETTINGS, parsePgBouncerVersion, versionAtLeast } from "../../components/pgbouncerIni";
import { renderPoolerIni } from "../../components/pgbouncerPod";
import { pgbouncerClusterArgs } from "../../options/pgbouncerCluster";
import { pgbouncerSidecarArgs } from "../../options/pgbouncerSidecar";
import { LOCAL_PGBOUNCER_VERSION, USERLIST, loopbackConfig } from "./pooler";
import { HOST, PostgresServer, pgbouncerConfigCheck } from "./servers";

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

    for (const stack of ["dev", "prod"]) {
        it(`${stack}: the central and the sidecar pgbouncer.ini load without an error`, () => {
            const config = loopbackConfig(fakeDatabase, { databaseReplicaHost: "127.0.0.2" });
            const inis = [
                renderPoolerIni(pgbouncerClusterArgs(config), { addr: HOST, port: 16432 }, { authFile: "/dev/null", serverCaFile: "" }),
                renderPoolerIni(pgbouncerSidecarArgs(config, config.services[0], "velure"), { addr: HOST, port: 16433 }, { authFile: "/dev/null", serverCaFile: "" }),
            ];
            for (const ini of inis) {
                const check = pgbouncerConfigCheck(ini, USERLIST);
                assert.ok(check.ok, `${ini}\n---\n${check.log}`);
            }
        });
    }
});
