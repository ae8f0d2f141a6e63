// A project stack (velure's dev or prod) on loopback: each of velure's servers a PostgreSQL of its own, the
// PgBouncers started with the pgbouncer.ini the program renders for a mode, and the URL the program writes for a
// service's pods. drivers.test.ts and the benchmark's velure scenario (bench/velure.ts) run velure's clients
// (tests/clients, built by scripts/clients.sh) on it.
import { execFile } from "child_process";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Client } from "pg";
import { postgresUrl } from "../../components/connectionUrl";
import { CA_KEY, PgBouncerConfigArgs, STATS_USER, renderPoolerIni } from "../../components/pgbouncerPod";
import { DatabaseSpec, ServiceSpec, VelureConfig, loadConfig, serverOf, urlDriverParams } from "../../config";
import { pgbouncerClusterArgs } from "../../options/pgbouncerCluster";
import { pgbouncerSidecarArgs } from "../../options/pgbouncerSidecar";
import { stackConfig } from "../unit/harness";
import { STATS_PASSWORD, USERLIST } from "./pooler";
import { HOST, PASSWORD, PGBOUNCER_BIN, PgBouncerProcess, PostgresServer, USER, sleep, writeOwned } from "./servers";

export interface LoopbackStack {
    stack: "dev" | "prod";
    /** velure's servers by name (auth, orders). */
    servers: Record<string, PostgresServer>;
    mode: string;
    /** The PgBouncer version the config is rendered for (the image tag). */
    pgbouncerVersion: string;
    /** The stack's services, changed (a client block, say); default: as the stack file has them. */
    services?: unknown[];
    /** A CA file: PgBouncer verifies the servers' certificates against it (verify-full); none: no TLS. */
    serverCaFile?: string;
    /** PgBouncer's stats user (the exporter's), for SHOW POOLS; default off. */
    monitoring?: boolean;
    /** Other keys of the stack's config, changed (pgbouncerDrainSeconds, say). */
    overrides?: Record<string, unknown>;
}

export function stackServices(stack: string): any[] {
    return JSON.parse(stackConfig(stack)["velure-pooling:services"]);
}

/** The program's config of the stack, its servers pointed at the local PostgreSQL servers. */
export function loopbackVelureConfig(options: LoopbackStack): VelureConfig {
    const base = stackConfig(options.stack);
    const databaseServers = JSON.parse(base["velure-pooling:databaseServers"]).map((s: any) => {
        const { secretsManagerSecret: _sm, ...rest } = s;
        return { ...rest, host: options.servers[s.name].host, port: options.servers[s.name].port, user: USER };
    });
    const tls = options.serverCaFile
        ? { pgbouncerServerTlsSslmode: "verify-full", pgbouncerServerTlsCaFile: options.serverCaFile }
        : { pgbouncerServerTlsSslmode: "disable" };
    const config = stackConfig(options.stack, {
        mode: options.mode,
        databaseServers,
        databasePasswords: { auth: PASSWORD, orders: PASSWORD },
        ...tls,
        pgbouncerImage: `ghcr.io/icoretech/pgbouncer-docker:${options.pgbouncerVersion}`,
        monitoringExporter: options.monitoring ?? false,
        ...(options.services ? { services: options.services } : {}),
        ...options.overrides,
    });
    pulumi.runtime.setAllConfig(config, ["velure-pooling:databasePasswords"]);
    return loadConfig();
}

/** The PgBouncer of a service in the config's mode: what the component renders it from. */
function poolerArgs(config: VelureConfig, service: ServiceSpec): PgBouncerConfigArgs {
    const server = serverOf(config, service);
    return config.mode === "pgbouncer-cluster" ? pgbouncerClusterArgs(config, server) : pgbouncerSidecarArgs(config, service, service.namespace);
}

export interface PoolerOptions {
    /** Which PgBouncer runs it; this layer's by default. */
    bin?: string;
    /** The port to listen on (a restarted container's); a free one by default. */
    port?: number;
    /** Run it under the pods' entrypoint with this command line (PgBouncerProcess). */
    entrypoint?: (iniFile: string) => string[];
}

/**
 * The PgBouncer a service reaches in this mode, on loopback, with the program's pgbouncer.ini and the userlist the
 * components render (the app's user and the stats user).
 */
export async function startPooler(config: VelureConfig, service: ServiceSpec, options: PoolerOptions = {}): Promise<PgBouncerProcess> {
    const args = poolerArgs(config, service);
    const bouncer = new PgBouncerProcess(options.bin ?? PGBOUNCER_BIN, options.entrypoint);
    const serverCaFile = path.join(bouncer.dir, CA_KEY);
    if (args.serverCaBundle) {
        writeOwned(serverCaFile, args.serverCaBundle, 0o644);
    }
    return bouncer.start((port) => renderPoolerIni(args, { addr: HOST, port }, { authFile: bouncer.authFile, serverCaFile }), USERLIST, options.port);
}

/**
 * The URL the program writes for the service's pods (its Secret's mode key), pointed at `port` on loopback: a
 * local PgBouncer, or with `direct` the service's PostgreSQL itself (verify-full with `caFile` when given).
 */
export function serviceUrl(config: VelureConfig, service: ServiceSpec, port: number, direct?: { caFile?: string }): string {
    const params = direct ? {} : urlDriverParams(service.client, config.mode, config.pgbouncer.tuning.poolMode);
    const server: DatabaseSpec = serverOf(config, service);
    const tls = direct?.caFile ? { sslmode: "verify-full", sslrootcert: direct.caFile } : { sslmode: "disable" };
    return postgresUrl({ user: server.user, host: direct ? server.host : HOST, port, database: service.database, ...tls, driverParams: params }, PASSWORD);
}

/** velure's database clients (tests/clients), as scripts/clients.sh builds them. */
export const CLIENTS_BIN = path.resolve(__dirname, "../../.toolchain/bin/velure-clients");

/** The JSON line a velure-clients run ends with, or undefined when it printed none. */
export function lastResult<T>(stdout: string): T | undefined {
    const line = stdout.trim().split("\n").pop() ?? "";
    return line.startsWith("{") ? (JSON.parse(line) as T) : undefined;
}

/** Runs velure-clients with `args` to its end (killed past `timeoutSeconds`, which the error then says); its result. */
export function runVelureClients<T>(args: string[], timeoutSeconds: number): Promise<T> {
    return new Promise((resolve, reject) => {
        execFile(CLIENTS_BIN, args, { timeout: timeoutSeconds * 1000, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
            const result = lastResult<T>(stdout);
            if (!result) {
                const why = error?.killed ? `did not end within ${timeoutSeconds} s` : `printed no result${error ? ` (${error.message})` : ""}`;
                reject(new Error(`velure-clients ${args[0]} ${why}: ${stderr}`));
                return;
            }
            resolve(result);
        });
    });
}

/** Samples SHOW POOLS of every PgBouncer of a side (its stats user) every 100 ms: the longest wait and the most waiting. */
export async function samplePools(bouncers: PgBouncerProcess[]): Promise<() => Promise<{ maxWaitMs: number; clientsWaiting: number }>> {
    const clients = await Promise.all(
        bouncers.map(async (b) => {
            const client = new Client({ host: HOST, port: b.port, database: "pgbouncer", user: STATS_USER, password: STATS_PASSWORD });
            client.on("error", () => undefined);
            await client.connect();
            return client;
        }),
    );
    let maxWaitMs = 0;
    let clientsWaiting = 0;
    let running = true;
    const loop = (async () => {
        while (running) {
            for (const client of clients) {
                const rows = (await client.query("SHOW POOLS").catch(() => ({ rows: [] as any[] }))).rows;
                for (const row of rows.filter((r) => r.database !== "pgbouncer")) {
                    maxWaitMs = Math.max(maxWaitMs, Number(row.maxwait) * 1000 + Number(row.maxwait_us ?? 0) / 1000);
                    clientsWaiting = Math.max(clientsWaiting, Number(row.cl_waiting));
                }
            }
            await sleep(100);
        }
    })();
    return async () => {
        running = false;
        await loop;
        await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
        return { maxWaitMs: Math.round(maxWaitMs * 10) / 10, clientsWaiting };
    };
}
