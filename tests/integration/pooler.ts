// The pooler under test: pgbouncer.ini and userlist.txt rendered by the program's own code from a stack
// file, with only the database address, TLS mode and file locations changed for loopback.
import * as pulumi from "@pulumi/pulumi";
import { execFileSync } from "child_process";
import { renderUserlist } from "../../components/pgbouncerIni";
import * as path from "path";
import { CA_KEY, STATS_USER, renderPoolerIni } from "../../components/pgbouncerPod";
import { VelureConfig, loadConfig } from "../../config";
import { pgbouncerClusterArgs } from "../../options/pgbouncerCluster";
import { StackConfig } from "../../plan/runtime";
import { stackConfig } from "../unit/harness";
import { Client } from "pg";
import { HOST, PASSWORD, PGBOUNCER_BIN, PgBouncerProcess, PostgresServer, USER, clientConfig, writeOwned } from "./servers";

/** The version of the PgBouncer binary on this machine (Debian 12: 1.18.0). */
export const LOCAL_PGBOUNCER_VERSION = /PgBouncer (\d+\.\d+\.\d+)/.exec(execFileSync(PGBOUNCER_BIN, ["--version"]).toString())?.[1] ?? "1.18.0";

/** A stack's config with the database on loopback, no TLS to it, and the local PgBouncer's version. */
export function loopbackStack(stack: string, primary: PostgresServer, overrides: Record<string, unknown> = {}): StackConfig {
    return stackConfig(stack, {
        databaseHost: primary.host,
        databasePort: primary.port,
        databasePassword: PASSWORD,
        pgbouncerServerTlsSslmode: "disable",
        pgbouncerImage: `ghcr.io/icoretech/pgbouncer-docker:${LOCAL_PGBOUNCER_VERSION}`,
        ...overrides,
    });
}

export function loopbackConfig(primary: PostgresServer, overrides: Record<string, unknown> = {}): VelureConfig {
    pulumi.runtime.setAllConfig(loopbackStack("one-server-dev", primary, { mode: "pgbouncer-cluster", ...overrides }), ["velure-pooling:databasePassword"]);
    return loadConfig();
}

/** pgbouncer.ini for a local PgBouncer; the CA bundle from the config goes where the ConfigMap would put it. */
export function renderIni(config: VelureConfig, bouncer: PgBouncerProcess): (port: number) => string {
    const serverCaFile = path.join(bouncer.dir, CA_KEY);
    if (config.pgbouncer.serverCaBundle) {
        writeOwned(serverCaFile, config.pgbouncer.serverCaBundle, 0o644);
    }
    return (port) => renderPoolerIni(pgbouncerClusterArgs(config, config.servers[0]), { addr: HOST, port }, { authFile: bouncer.authFile, serverCaFile });
}

export const STATS_PASSWORD = "stats-integration-pw";
/** The userlist as the components render it: the app's user and the exporter's stats user. */
export const USERLIST = renderUserlist([
    { name: USER, password: PASSWORD },
    { name: STATS_USER, password: STATS_PASSWORD },
]);

export async function startPgBouncer(config: VelureConfig, port?: number): Promise<PgBouncerProcess> {
    const bouncer = new PgBouncerProcess();
    return bouncer.start(renderIni(config, bouncer), USERLIST, port);
}

export async function connect(port: number, database = "velure_auth", host = HOST): Promise<Client> {
    const client = new Client(clientConfig(port, database, { host }));
    client.on("error", () => undefined);
    await client.connect();
    return client;
}

export async function ackedIds(pg: PostgresServer, database = "velure_auth"): Promise<Set<string>> {
    return pg.superuser(async (c) => new Set((await c.query("SELECT id FROM acked")).rows.map((r) => r.id as string)), database);
}

/** One transaction that inserts `id`; resolves when the commit is acknowledged. */
export async function insertAcked(client: Client, id: string, holdSeconds = 0): Promise<void> {
    await client.query("BEGIN");
    await client.query("INSERT INTO acked (id) VALUES ($1)", [id]);
    if (holdSeconds > 0) {
        await client.query("SELECT pg_sleep($1)", [holdSeconds]);
    }
    await client.query("COMMIT");
}
