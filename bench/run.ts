// npm run bench [-- --smoke]: direct PostgreSQL against PgBouncer (the program's rendered config), each
// scenario measured both ways in the same run, on 127.0.0.1. Prints a table and writes bench/results/*.json.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { LOCAL_PGBOUNCER_VERSION, loopbackConfig, startPgBouncer } from "../tests/integration/pooler";
import { PgBouncerProcess, PostgresServer, clientConfig, sampleMax } from "../tests/integration/servers";

const SMOKE = process.argv.includes("--smoke");
const SECONDS = SMOKE ? 1.5 : 8;
const LATENCY_QUERIES = SMOKE ? 300 : 3000;
const DATABASE = "velure_auth";

interface Run {
    clients: number;
    connected: number;
    transactions: number;
    failures: number;
    tps: number;
    p50Ms: number;
    p99Ms: number;
    peakServerConnections: number;
}

function percentile(sorted: number[], p: number): number {
    if (sorted.length === 0) {
        return NaN;
    }
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

async function tryConnect(port: number): Promise<Client | undefined> {
    const client = new Client(clientConfig(port, DATABASE, { connectionTimeoutMillis: 5000 }));
    client.on("error", () => undefined);
    try {
        await client.connect();
        return client;
    } catch {
        return undefined;
    }
}

async function timed(work: () => Promise<unknown>, latencies: number[]): Promise<boolean> {
    const start = process.hrtime.bigint();
    try {
        await work();
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
        return true;
    } catch {
        return false;
    }
}

const TRANSACTION = "SELECT id, at FROM acked WHERE id = $1";

function summarize(clients: number, connected: number, latencies: number[], failures: number, elapsed: number, peak: number): Run {
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
        clients,
        connected,
        transactions: latencies.length,
        failures,
        tps: round(latencies.length / elapsed, 0),
        p50Ms: round(percentile(sorted, 50), 3),
        p99Ms: round(percentile(sorted, 99), 3),
        peakServerConnections: peak,
    };
}

/** `clients` persistent connections, each running transactions back to back for SECONDS. */
async function persistentLoad(pg: PostgresServer, port: number, clients: number): Promise<Run> {
    const sampler = sampleMax(() => pg.backends(DATABASE), 100);
    const connections = await Promise.all(Array.from({ length: clients }, () => tryConnect(port)));
    const latencies: number[] = [];
    let failures = 0;
    const deadline = Date.now() + SECONDS * 1000;
    const started = Date.now();
    await Promise.all(
        connections.map(async (client, i) => {
            if (!client) {
                return;
            }
            while (Date.now() < deadline) {
                if (!(await timed(() => client.query(TRANSACTION, [`row-${i % 100}`]), latencies))) {
                    failures++;
                }
            }
        }),
    );
    const elapsed = (Date.now() - started) / 1000;
    await Promise.all(connections.map((c) => c?.end().catch(() => undefined)));
    return summarize(clients, connections.filter(Boolean).length, latencies, failures, elapsed, await sampler.stop());
}

/** `workers` loops of connect, one transaction, disconnect. */
async function connectPerTransaction(pg: PostgresServer, port: number, workers: number): Promise<Run> {
    const sampler = sampleMax(() => pg.backends(DATABASE), 100);
    const latencies: number[] = [];
    let failures = 0;
    const deadline = Date.now() + SECONDS * 1000;
    const started = Date.now();
    await Promise.all(
        Array.from({ length: workers }, async () => {
            while (Date.now() < deadline) {
                const ok = await timed(async () => {
                    const client = new Client(clientConfig(port, DATABASE));
                    client.on("error", () => undefined);
                    await client.connect();
                    try {
                        await client.query(TRANSACTION, ["row-1"]);
                    } finally {
                        await client.end();
                    }
                }, latencies);
                failures += ok ? 0 : 1;
            }
        }),
    );
    const elapsed = (Date.now() - started) / 1000;
    return summarize(workers, workers, latencies, failures, elapsed, await sampler.stop());
}

/** One client, simple queries one after another: the latency the pooler adds. */
async function singleClientLatency(port: number): Promise<{ p50Ms: number; p99Ms: number }> {
    const client = (await tryConnect(port)) as Client;
    const latencies: number[] = [];
    for (let i = 0; i < LATENCY_QUERIES; i++) {
        await timed(() => client.query("SELECT 1"), latencies);
    }
    await client.end();
    const sorted = latencies.sort((a, b) => a - b);
    return { p50Ms: round(percentile(sorted, 50), 4), p99Ms: round(percentile(sorted, 99), 4) };
}

async function withPgBouncer<T>(pg: PostgresServer, work: (bouncer: PgBouncerProcess) => Promise<T>): Promise<T> {
    const bouncer = await startPgBouncer(loopbackConfig(pg));
    try {
        return await work(bouncer);
    } finally {
        await bouncer.stop();
    }
}

async function seed(pg: PostgresServer): Promise<void> {
    await pg.superuser((c) => c.query("INSERT INTO acked (id) SELECT 'row-' || g FROM generate_series(0, 99) g ON CONFLICT DO NOTHING"), DATABASE);
}

async function scenarioAtMaxConnections(maxConnections: number, work: (pg: PostgresServer) => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const pg = await new PostgresServer({ maxConnections, databases: [DATABASE] }).start();
    try {
        await seed(pg);
        return await work(pg);
    } finally {
        pg.stop();
    }
}

async function main(): Promise<void> {
    const results: Record<string, any> = {};
    // 1. 200 clients against a database that allows 40 connections.
    results.overload = await scenarioAtMaxConnections(40, async (pg) => ({
        maxConnections: 40,
        direct: await persistentLoad(pg, pg.port, 200),
        pooled: await withPgBouncer(pg, (b) => persistentLoad(pg, b.port, 200)),
    }));
    // 2-4 run where the database admits every client directly, so that direct has its best case.
    Object.assign(
        results,
        await scenarioAtMaxConnections(100, async (pg) => {
            const persistent = { direct: await persistentLoad(pg, pg.port, 50), pooled: await withPgBouncer(pg, (b) => persistentLoad(pg, b.port, 50)) };
            const latencyDirect = await singleClientLatency(pg.port);
            const latencyPooled = await withPgBouncer(pg, (b) => singleClientLatency(b.port));
            const perTransaction = { direct: await connectPerTransaction(pg, pg.port, 8), pooled: await withPgBouncer(pg, (b) => connectPerTransaction(pg, b.port, 8)) };
            return {
                persistent: { ...persistent, tpsRatioPooledOverDirect: round(persistent.pooled.tps / persistent.direct.tps) },
                addedLatency: {
                    direct: latencyDirect,
                    pooled: latencyPooled,
                    addedP50Ms: round(latencyPooled.p50Ms - latencyDirect.p50Ms, 4),
                    addedP99Ms: round(latencyPooled.p99Ms - latencyDirect.p99Ms, 4),
                },
                connectPerTransaction: { ...perTransaction, tpsRatioPooledOverDirect: round(perTransaction.pooled.tps / perTransaction.direct.tps) },
            };
        }),
    );

    const report = {
        date: new Date().toISOString(),
        smoke: SMOKE,
        secondsPerRun: SECONDS,
        machine: { cpus: os.cpus().length, node: process.version, pgbouncer: LOCAL_PGBOUNCER_VERSION },
        results,
    };
    printTable(results);
    const dir = path.join(__dirname, "results");
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${SMOKE ? "smoke" : "bench"}-${report.date.replace(/[:.]/g, "-")}.json`);
    fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwritten: ${path.relative(process.cwd(), file)}`);
}

function printTable(r: Record<string, any>): void {
    const row = (name: string, run: Run) =>
        `  ${name.padEnd(8)} ${`${run.connected}/${run.clients}`.padStart(8)} ${String(run.failures).padStart(8)} ${String(run.tps).padStart(8)} ${String(run.p50Ms).padStart(9)} ${String(run.p99Ms).padStart(9)} ${String(run.peakServerConnections).padStart(6)}`;
    const header = `  ${"".padEnd(8)} ${"clients".padStart(8)} ${"failed".padStart(8)} ${"tps".padStart(8)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)} ${"peak".padStart(6)}`;
    console.log(`\n1. overload: 200 clients, max_connections ${r.overload.maxConnections} (peak = server connections)`);
    console.log(header);
    console.log(row("direct", r.overload.direct));
    console.log(row("pooled", r.overload.pooled));
    console.log("\n2. persistent: 50 clients");
    console.log(header);
    console.log(row("direct", r.persistent.direct));
    console.log(row("pooled", r.persistent.pooled));
    console.log(`  TPS pooled/direct: ${r.persistent.tpsRatioPooledOverDirect}`);
    console.log("\n3. added latency: 1 client, SELECT 1");
    console.log(`  direct p50 ${r.addedLatency.direct.p50Ms} ms, p99 ${r.addedLatency.direct.p99Ms} ms`);
    console.log(`  pooled p50 ${r.addedLatency.pooled.p50Ms} ms, p99 ${r.addedLatency.pooled.p99Ms} ms`);
    console.log(`  added by PgBouncer: p50 ${r.addedLatency.addedP50Ms} ms, p99 ${r.addedLatency.addedP99Ms} ms`);
    console.log("\n4. connect per transaction: 8 workers (SCRAM login every time)");
    console.log(header);
    console.log(row("direct", r.connectPerTransaction.direct));
    console.log(row("pooled", r.connectPerTransaction.pooled));
    console.log(`  TPS pooled/direct: ${r.connectPerTransaction.tpsRatioPooledOverDirect}`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
