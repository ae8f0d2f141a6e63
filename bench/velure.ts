// The velure-shaped scenario, the benchmark's first table: velure's production at its peak. velure's two servers are
// PostgreSQL at max_connections 100 (RDS db.t4g.micro), serving TLS with a local CA as RDS serves its own; both
// services run at once, as the prod stack sizes them: auth-service at its HPA's maximum (10 pods × 25 GORM/pgx
// connections) and publish-order-service (1 pod × 15 lib/pq), each pod its own database/sql pool with the
// service's limits (tests/clients peak). Sides: the drivers straight to PostgreSQL (verify-full), and PgBouncer as
// the prod stack renders it (verify-full to the servers) in pgbouncer-cluster (its 2 replicas per server; the pods
// alternate between them, as the Service spreads connections) and in pgbouncer-sidecar (one PgBouncer per pod), on
// PgBouncer 1.24 (Debian trixie's) and 1.18 (bookworm's); and the peer a user would pick instead, pgpool-II 4.6
// (trixie's), with the central PgBouncer's replicas and server connections (bench/pgpool.ts).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pgbouncerClusterArgs } from "../options/pgbouncerCluster";
import { ServiceSpec, VelureConfig, serverOf } from "../config";
import { HOST, PgBouncerProcess, PostgresServer, makeCertificates, pgbouncerBin } from "../tests/integration/servers";
import { loopbackVelureConfig, runVelureClients, samplePools, serviceUrl, stackServices, startPooler } from "../tests/integration/velureStack";
import { PgpoolProcess } from "./pgpool";
import { applicationName, closeServerConnections, sampleServerConnections } from "./sampler";

const SERVERS = { auth: { database: "velure_auth", host: HOST }, orders: { database: "velure_orders", host: "127.0.0.2" } } as const;
type ServerName = keyof typeof SERVERS;
/** Which velure-clients peak workload a service runs: its driver, its pool, its reads. */
const WORKLOAD: Record<string, ServerName> = { "auth-service": "auth", "publish-order-service": "orders" };
/** The PgBouncers side by side: the version class production runs, and the one Debian 12 ships. */
const LAYERS = [
    { layer: "trixie", version: "1.24.1" },
    { layer: "bookworm", version: "1.18.0" },
] as const;

/** What one service got in a round (velure-clients peak's JSON). */
export interface PeakResult {
    pods: number;
    podsStarted: number;
    workers: number;
    served: number;
    ops: number;
    failed: number;
    errors?: Record<string, number>;
    tps: number;
    p50Ms: number;
    p99Ms: number;
    peakOpen: number;
    fatal?: string;
}

/** One side in one round: each service's result, each server's connections at peak, PgBouncer's longest wait. */
interface VelureRound {
    services: Record<ServerName, PeakResult>;
    serverConnections: Record<ServerName, number>;
    /** SHOW POOLS: the longest a client waited for a server connection (maxwait), and the most clients waiting. */
    maxWaitMs?: number;
    clientsWaiting?: number;
}

/** A side: the URLs of each service's pods, and the PgBouncers (or pgpool-IIs) that serve them (none: direct). */
interface VelureSide {
    name: string;
    /** What the program renders for this side; the 1.18 sides say what they had to change. */
    note: string;
    urls: Record<ServerName, string[]>;
    bouncers: PgBouncerProcess[];
    pgpools?: PgpoolProcess[];
}

/** The pods each service runs at its peak: the HPA's maximum, or its fixed replicas. */
function peakPods(service: ServiceSpec): number {
    return service.maxReplicas ?? service.replicas;
}

/**
 * The side's application_name (each side counts only its own server connections), and a connect timeout: a client
 * that a pooler does not take in (pgpool-II's processes are all taken) fails after 5 s instead of waiting forever.
 */
function sideUrl(url: string, side: string): string {
    return `${url}&application_name=${applicationName(side)}&connect_timeout=5`;
}

/**
 * A central pooler as deployed: the config's replicas, started by `start`, for one service; its pods alternate
 * between them, as the Service spreads connections. Returns the replicas and each pod's URL.
 */
async function centralPooler<P extends { port: number }>(config: VelureConfig, service: ServiceSpec, side: string, start: () => Promise<P>): Promise<{ replicas: P[]; urls: string[] }> {
    const replicas = await Promise.all(Array.from({ length: config.pgbouncer.replicas }, () => start()));
    const urls = Array.from({ length: peakPods(service) }, (_, pod) => sideUrl(serviceUrl(config, service, replicas[pod % replicas.length].port), side));
    return { replicas, urls };
}

/** pgbouncer-cluster: each server's replicas. */
async function clusterSide(config: VelureConfig, name: string, bin: string): Promise<Omit<VelureSide, "note">> {
    const urls = { auth: [] as string[], orders: [] as string[] };
    const bouncers: PgBouncerProcess[] = [];
    for (const service of config.services) {
        const central = await centralPooler(config, service, name, () => startPooler(config, service, { bin }));
        bouncers.push(...central.replicas);
        urls[WORKLOAD[service.name]] = central.urls;
    }
    return { name, urls, bouncers };
}

/** pgbouncer-sidecar: one PgBouncer per pod. */
async function sidecarSide(config: VelureConfig, name: string, bin: string): Promise<Omit<VelureSide, "note">> {
    const urls = { auth: [] as string[], orders: [] as string[] };
    const bouncers: PgBouncerProcess[] = [];
    for (const service of config.services) {
        const own = await Promise.all(Array.from({ length: peakPods(service) }, () => startPooler(config, service, { bin })));
        bouncers.push(...own);
        urls[WORKLOAD[service.name]] = own.map((b) => sideUrl(serviceUrl(config, service, b.port), name));
    }
    return { name, urls, bouncers };
}

function directSide(config: VelureConfig, caFile: string): VelureSide {
    const urls = { auth: [] as string[], orders: [] as string[] };
    for (const service of config.services) {
        const server = config.servers.find((s) => s.name === WORKLOAD[service.name]);
        const url = sideUrl(serviceUrl(config, service, server?.port as number, { caFile }), "direct");
        urls[WORKLOAD[service.name]] = Array.from({ length: peakPods(service) }, () => url);
    }
    return { name: "direct", note: "the drivers to PostgreSQL, verify-full", urls, bouncers: [] };
}

/**
 * The services as the prod stack declares them; before 1.21 the program refuses pgx in a transaction pool, so the
 * 1.18 sides run auth-service with its driver undeclared: what a stack without the client block gets.
 */
function servicesFor(version: string): unknown[] | undefined {
    return version.startsWith("1.18") ? stackServices("prod").map(({ client, ...s }) => (client?.driver === "pgx" ? s : { ...s, client })) : undefined;
}

/**
 * pgpool-II as the central PgBouncer is deployed: as many processes per server as its replicas, the pods alternating
 * between them, each with as many processes (num_init_children) as one PgBouncer replica may open server
 * connections to that database, so that both hold the same server connections at most.
 */
async function pgpoolSide(config: VelureConfig, servers: Record<ServerName, PostgresServer>, caFile: string): Promise<VelureSide> {
    const name = "pgpool-4.6";
    const urls = { auth: [] as string[], orders: [] as string[] };
    const pgpools: PgpoolProcess[] = [];
    for (const service of config.services) {
        const server = WORKLOAD[service.name];
        const args = pgbouncerClusterArgs(config, serverOf(config, service));
        const entry = args.databases.find((d) => d.name === service.database);
        const children = entry?.sessionPoolSize ?? args.tuning.maxDbConnections;
        const central = await centralPooler(config, service, name, () => new PgpoolProcess().start(servers[server], children, caFile));
        pgpools.push(...central.replicas);
        urls[server] = central.urls;
    }
    return { name, note: "pgpool-II 4.6.1, raw mode, session pooling, the central PgBouncer's replicas and server connections", urls, bouncers: [], pgpools };
}

/**
 * The direct side, the PgBouncer sides of both versions and both modes, and the pgpool-II side, added to `sides` as
 * each starts, so that the caller stops what did start when one fails.
 */
async function startVelureSides(servers: Record<ServerName, PostgresServer>, caFile: string, sides: VelureSide[]): Promise<void> {
    const base = { stack: "prod" as const, servers, serverCaFile: caFile, monitoring: true };
    for (const { layer, version } of LAYERS) {
        const bin = pgbouncerBin(layer);
        const services = servicesFor(version);
        const note = services ? "auth-service's client undeclared (the program refuses pgx before 1.21)" : "as the prod stack renders it";
        const cluster = loopbackVelureConfig({ ...base, mode: "pgbouncer-cluster", pgbouncerVersion: version, services });
        sides.push({ ...(await clusterSide(cluster, `cluster-${version}`, bin)), note });
        const sidecar = loopbackVelureConfig({ ...base, mode: "pgbouncer-sidecar", pgbouncerVersion: version, services });
        sides.push({ ...(await sidecarSide(sidecar, `sidecar-${version}`, bin)), note });
    }
    const current = loopbackVelureConfig({ ...base, mode: "pgbouncer-cluster", pgbouncerVersion: LAYERS[0].version });
    sides.push(await pgpoolSide(current, servers, caFile));
    sides.unshift(directSide(current, caFile));
}

/** One service's pods at once for `seconds` (velure-clients peak), each pod its URL. */
function runPeak(service: ServerName, urls: string[], seconds: number): Promise<PeakResult> {
    return runVelureClients<PeakResult>(["peak", "-service", service, "-urls", urls.join(","), "-duration", `${seconds}s`], seconds + 120);
}

/**
 * One side's run. It starts from no server connections of any side: the PgBouncers of the sides before it keep
 * theirs idle (server_idle_timeout), and would hold slots of the servers' 100 that this side's clients need.
 */
async function measureSide(servers: Record<ServerName, PostgresServer>, side: VelureSide, allSides: string[], seconds: number): Promise<VelureRound> {
    const names = Object.keys(SERVERS) as ServerName[];
    await Promise.all(names.map((n) => closeServerConnections(servers[n], SERVERS[n].database, allSides)));
    const samplers = await Promise.all(names.map((n) => sampleServerConnections(servers[n], SERVERS[n].database, side.name)));
    const pools = side.bouncers.length ? await samplePools(side.bouncers) : undefined;
    const results = await Promise.all(names.map((n) => runPeak(n, side.urls[n], seconds)));
    const peaks = await Promise.all(samplers.map((s) => s.stop()));
    const waits = pools ? await pools() : undefined;
    return {
        services: { auth: results[0], orders: results[1] },
        serverConnections: { auth: peaks[0].peak, orders: peaks[1].peak },
        ...(waits ? { maxWaitMs: waits.maxWaitMs, clientsWaiting: waits.clientsWaiting } : {}),
    };
}

/** The two servers, with TLS from a local CA (written to `caFile` for the drivers and PgBouncer), at RDS's 100. */
async function startServers(caFile: string): Promise<Record<ServerName, PostgresServer>> {
    const certificates = makeCertificates();
    fs.writeFileSync(caFile, certificates.caCert, { mode: 0o644 });
    const tls = { cert: certificates.serverCert, key: certificates.serverKey };
    const [auth, orders] = await Promise.all(
        (Object.keys(SERVERS) as ServerName[]).map((n) => new PostgresServer({ maxConnections: 100, databases: [SERVERS[n].database], host: SERVERS[n].host, tls }).start()),
    );
    return { auth, orders };
}

export interface VelureRun {
    sides: VelureSide[];
    rounds: Record<string, VelureRound>[];
}

/**
 * `rounds` rounds of `seconds`, each running every side once, in an order that rotates from round to round (so that
 * no side always runs first, on the coldest servers); returns every round.
 */
export async function runVelure(rounds: number, seconds: number): Promise<VelureRun> {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "velure-bench-ca-"));
    fs.chmodSync(scratch, 0o755);
    const caFile = path.join(scratch, "ca.pem");
    const servers = await startServers(caFile);
    const sides: VelureSide[] = [];
    try {
        await startVelureSides(servers, caFile, sides);
        const measured: Record<string, VelureRound>[] = [];
        for (let r = 0; r < rounds; r++) {
            process.stderr.write(`velure round ${r + 1} of ${rounds}: ${sides.map((s) => s.name).join(", ")}\n`);
            const round: Record<string, VelureRound> = {};
            for (let i = 0; i < sides.length; i++) {
                const side = sides[(i + r) % sides.length];
                round[side.name] = await measureSide(servers, side, sides.map((s) => s.name), seconds);
            }
            measured.push(round);
        }
        return { sides, rounds: measured };
    } finally {
        await Promise.all(sides.flatMap((s) => [...s.bouncers, ...(s.pgpools ?? [])].map((p) => p.stop())));
        Object.values(servers).forEach((s) => s.stop());
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

/** Every figure of a side, by name, as the summaries and bench:agree read them. */
export function velureFigures(round: VelureRound): Record<string, number> {
    const figures: Record<string, number> = {};
    for (const [server, r] of Object.entries(round.services)) {
        Object.assign(figures, {
            [`${server}PodsStarted`]: r.podsStarted,
            [`${server}Workers`]: r.workers,
            [`${server}Served`]: r.served,
            [`${server}Failed`]: r.failed,
            [`${server}Tps`]: Math.round(r.tps),
            [`${server}P50Ms`]: r.p50Ms,
            [`${server}P99Ms`]: r.p99Ms,
            [`${server}ServerConnections`]: round.serverConnections[server as ServerName],
        });
    }
    if (round.maxWaitMs !== undefined) {
        Object.assign(figures, { maxWaitMs: round.maxWaitMs, clientsWaiting: round.clientsWaiting });
    }
    return figures;
}
