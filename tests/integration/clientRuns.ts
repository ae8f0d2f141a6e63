// Runs of velure's database clients (tests/clients) as the integration tests start them: to their end, or until the
// test closes their stdin (the day-two operations test ends a load when its operation is over), and the figures
// they print.
import { ChildProcess, spawn } from "child_process";
import { parsePgBouncerVersion } from "../../components/pgbouncerIni";
import { ServiceSpec, VelureConfig } from "../../config";
import { servesNamedStatements } from "../../config/client";
import { LOCAL_PGBOUNCER_VERSION } from "./pooler";
import { PostgresServer } from "./servers";
import { CLIENTS_BIN, lastResult, loopbackVelureConfig, runVelureClients, stackServices } from "./velureStack";

/** The JSON line velure-clients ends with (tests/clients/main.go's Result). */
export interface ClientResult {
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
    /** When the first and the last failed operation ended, Unix seconds. */
    firstFailure?: number;
    lastFailure?: number;
    /** Times the outbox listener's connection was lost (pq with -listen 1). */
    listenerDrops?: number;
}

/** "N× kind; …" of a result's errors, most frequent first. */
export function errorKinds(result: ClientResult): string {
    return Object.entries(result.errors ?? {})
        .sort((a, b) => b[1] - a[1])
        .map(([e, n]) => `${n}× ${e}`)
        .join("; ");
}

export function figure(what: string, result: ClientResult): void {
    const errors = errorKinds(result);
    console.log(`      figure: PgBouncer ${LOCAL_PGBOUNCER_VERSION} ${what}: ${result.ops} ops, ${result.failed} failed${result.fatal ? `, fatal: ${result.fatal}` : ""}${errors ? ` (${errors})` : ""}`);
}

/** Runs one velure-clients command against `url` to its end. */
export function runClient(command: string, url: string, args: string[] = [], timeoutSeconds = 120): Promise<ClientResult> {
    return runVelureClients<ClientResult>([command, "-url", url, ...args], timeoutSeconds);
}

/** A client run that lasts until its stdin is closed (end()), at a steady rate of operations. */
export function startClient(command: string, url: string, args: string[]): { child: ChildProcess; done: Promise<ClientResult>; end: () => Promise<ClientResult> } {
    const child = spawn(CLIENTS_BIN, [command, "-url", url, "-duration", "10m", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout?.on("data", (d) => (out += d));
    const done = new Promise<ClientResult>((resolve, reject) =>
        child.once("exit", () => {
            const result = lastResult<ClientResult>(out);
            return result ? resolve(result) : reject(new Error(`velure-clients ${command}: no result`));
        }),
    );
    return {
        child,
        done,
        end: () => {
            child.stdin?.end();
            return done;
        },
    };
}

export async function countIn(pg: PostgresServer, database: string, sql: string, values: unknown[] = []): Promise<number> {
    return pg.superuser(async (c) => Number((await c.query(sql, values)).rows[0].n), database);
}

export const byName = (config: VelureConfig, name: string) => config.services.find((s) => s.name === name) as ServiceSpec;

/** The rows a load command writes, by command: how its acknowledged ids are found on the server. */
export const ACKED_ROWS: Record<string, string> = {
    gorm: "SELECT count(*) AS n FROM users WHERE email = ANY($1)",
    pq: "SELECT count(*) AS n FROM load_orders WHERE id = ANY($1)",
};

/** The dev stack on loopback: each of velure's servers a PostgreSQL of its own, the PgBouncer version of this layer. */
export function devConfig(servers: Record<string, PostgresServer>, mode: string, services?: unknown[], monitoring?: boolean, overrides?: Record<string, unknown>): VelureConfig {
    return loopbackVelureConfig({ stack: "dev", servers, mode, pgbouncerVersion: LOCAL_PGBOUNCER_VERSION, services, monitoring, overrides });
}

export const devServices = () => stackServices("dev");

/** Whether this layer's PgBouncer serves pgx's named statements in a transaction pool (1.21+). */
export const LOCAL_VERSION = parsePgBouncerVersion(LOCAL_PGBOUNCER_VERSION);
export const named = servesNamedStatements(LOCAL_VERSION, {});

/** The dev stack's services as this layer's PgBouncer takes them: on 1.18 auth-service's client is undeclared. */
export function layerServices(): any[] {
    return devServices().map(({ client, ...s }) => (client?.driver === "pgx" && !named ? s : { ...s, client }));
}

/** velure's two servers for a suite, each a PostgreSQL of its own: started in its before(), stopped in its after(). */
export function velureServers(): Record<string, PostgresServer> {
    const servers: Record<string, PostgresServer> = {};
    before(async () => {
        servers.auth = await new PostgresServer({ maxConnections: 100, databases: ["velure_auth"] }).start();
        servers.orders = await new PostgresServer({ maxConnections: 100, databases: ["velure_orders"], host: "127.0.0.2" }).start();
    });
    after(() => Object.values(servers).forEach((s) => s.stop()));
    return servers;
}
