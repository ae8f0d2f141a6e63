// pgbench (Debian's PostgreSQL packages) as the load generator: a C client with worker threads (-j), so that the
// ratio measures the pooler rather than a single-threaded Node client.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HOST, PASSWORD, PG_BIN, USER } from "../tests/integration/servers";

export const PGBENCH = path.join(PG_BIN, "pgbench");

export interface PgbenchRun {
    clients: number;
    transactions: number;
    /** Failed transactions plus aborted clients: pgbench's own counts. */
    failures: number;
    tps: number;
    /** pgbench's "latency average": the run's time over its transactions (its per-transaction log is too coarse for percentiles). */
    latencyAvgMs: number;
    /** Percentiles, from a client that times each transaction itself (the Node client). */
    p50Ms?: number;
    p99Ms?: number;
}

export interface PgbenchOptions {
    port: number;
    database: string;
    clients: number;
    threads: number;
    seconds: number;
    /** The transaction, as a pgbench script. */
    script: string;
    /** A new connection (and login) for every transaction (-C). */
    connectEach?: boolean;
    /** The clients' application_name. */
    applicationName: string;
}

function figure(output: string, pattern: RegExp): number {
    const match = pattern.exec(output);
    return match ? Number(match[1]) : 0;
}

export async function pgbench(options: PgbenchOptions): Promise<PgbenchRun> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "velure-pgbench-"));
    const script = path.join(dir, "transaction.sql");
    fs.writeFileSync(script, options.script);
    const args = [
        "--no-vacuum", "--protocol=simple", `--file=${script}`, `--client=${options.clients}`, `--jobs=${options.threads}`,
        `--time=${options.seconds}`, "--failures-detailed",
        ...(options.connectEach ? ["--connect"] : []),
        "-h", HOST, "-p", String(options.port), "-U", USER, options.database,
    ];
    const output = await new Promise<string>((resolve) => {
        const env = { ...process.env, PGPASSWORD: PASSWORD, PGSSLMODE: "disable", PGAPPNAME: options.applicationName };
        const child = spawn(PGBENCH, args, { env, stdio: ["ignore", "pipe", "pipe"] });
        let text = "";
        child.stdout.on("data", (d) => (text += d));
        child.stderr.on("data", (d) => (text += d));
        child.on("close", () => resolve(text));
    });
    try {
        const processed = figure(output, /number of transactions actually processed: (\d+)/);
        // A client that loses its connection or cannot log in is aborted: pgbench says so once per client.
        const aborted = (output.match(/client \d+ aborted/g) ?? []).length;
        const failed = figure(output, /number of failed transactions: (\d+)/);
        if (processed === 0 && !/transactions actually processed/.test(output)) {
            throw new Error(`pgbench failed:\n${output}`);
        }
        return {
            clients: options.clients,
            transactions: processed,
            failures: failed + aborted,
            tps: Math.round(figure(output, /tps = ([\d.]+) \(without initial connection time\)/) || processed / options.seconds),
            latencyAvgMs: figure(output, /latency average = ([\d.]+) ms/),
        };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
