// npm run bench [-- --smoke] [-- --repeat N] [-- --seconds S] [-- --only a,b]: direct PostgreSQL against PgBouncer
// (the program's rendered config) on 127.0.0.1. Each scenario runs a warm-up, then N rounds that alternate which side
// goes first; the table gives the median and the range of each side over the undisturbed rounds and the ratio of
// every round, and bench/results/*.json keeps every round. `npm run bench:agree` checks that saved runs agree.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { renderUserlist } from "../components/pgbouncerIni";
import { LOCAL_PGBOUNCER_VERSION, USERLIST, loopbackConfig, renderIni } from "../tests/integration/pooler";
import { PgBouncerProcess, PostgresServer, USER, clientConfig } from "../tests/integration/servers";
import { Spread } from "./agreement";
import { LoadReading, cpuSeconds, round, startLoadMeter } from "./machine";
import { PgbenchRun, pgbench } from "./pgbench";
import { applicationName, closeServerConnections, sampleServerConnections } from "./sampler";
import { VelureRun, runVelure, velureFigures } from "./velure";

const SMOKE = process.argv.includes("--smoke");
const flag = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);

/** A bad flag ends the run before anything starts, with what is allowed. */
function refuse(message: string): never {
    console.error(`npm run bench: ${message}`);
    process.exit(2);
}

/** A flag's whole number of at least 1, or `fallback` when the flag is absent. */
function countFlag(name: string, fallback: number): number {
    const value = flag(name);
    if (value === undefined) {
        return fallback;
    }
    if (!/^[1-9]\d*$/.test(value)) {
        refuse(`${name} ${value}: expected a whole number of at least 1`);
    }
    return Number(value);
}

// Many short rounds rather than a few long ones: on this shared machine a round's TPS moves by 10-15 % from one
// round to the next, and a range over 16 rounds takes in what a range over 3 left to chance. An even number: the
// side that runs second in a round was measured slower (overload's ratio by 0.07 in two of three runs of
// 2026-12-02), and the rounds alternate which side goes first, so each order counts as often in the median.
const REPEAT = countFlag("--repeat", SMOKE ? 1 : 16);
const SECONDS = countFlag("--seconds", SMOKE ? 2 : 4);
const WARMUP_SECONDS = SMOKE ? 0 : 2;
/** The velure scenario's rounds and their length: each round runs its five sides once, both services at once. */
const VELURE_ROUNDS = countFlag("--velure-rounds", SMOKE ? 1 : 7);
const VELURE_SECONDS = SMOKE ? 2 : 5;
const VELURE_KEY = "velure";
/** A round is marked disturbed when processes other than the benchmark's used more than this many cores. */
const DISTURBED_CORES = 0.25;
const DATABASE = "velure_auth";
const THREADS = Math.min(2, os.cpus().length);
const PK_SELECT = "\\set n random(0, 99)\nSELECT id, at FROM acked WHERE id = 'row-' || :n;\n";

interface Round extends PgbenchRun {
    /** Clients that got a connection (pgbench either connects them all or aborts; the Node client counts). */
    connected: number;
    peakServerConnections: number;
    load: LoadReading;
    disturbed: boolean;
    /** PgBouncer's CPU per transaction (with connect-per-transaction: per login), when a PgBouncer served the round. */
    pgbouncerCpuMsPerTransaction?: number;
}

/** One side of a comparison: where it connects, and which PgBouncer (if any) serves it. */
interface Side {
    name: string;
    port: number;
    bouncer?: PgBouncerProcess;
}

interface Scenario {
    key: string;
    title: string;
    maxConnections: number;
    /** Starts what the two sides need; the first side is the baseline of the ratio. */
    sides(pg: PostgresServer): Promise<[Side, Side]>;
    load(port: number, seconds: number, applicationName: string): Promise<PgbenchRun & { connected: number }>;
    /** What the ratio compares: TPS, or PgBouncer's CPU per login. */
    ratioOf: "tps" | "p50Ms" | "pgbouncerCpuMsPerTransaction";
}

/** A scenario's servers, started and warmed up, and the rounds measured so far. */
interface Bench {
    scenario: Scenario;
    pg: PostgresServer;
    sides: [Side, Side];
    rounds: Record<string, Round>[];
}

function postmasterPid(pg: PostgresServer): number {
    return Number(fs.readFileSync(path.join(pg.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
}

async function measure(bench: Bench, side: Side): Promise<Round> {
    const { pg, scenario } = bench;
    await closeServerConnections(pg, DATABASE, bench.sides.map((s) => s.name));
    const sampler = await sampleServerConnections(pg, DATABASE, side.name);
    const meter = startLoadMeter(() => [process.pid, postmasterPid(pg)]);
    const bouncerCpu = side.bouncer ? cpuSeconds(side.bouncer.pid) : 0;
    const run = await scenario.load(side.port, SECONDS, applicationName(side.name));
    const load = meter.stop();
    const { peak } = await sampler.stop();
    const perTransaction = side.bouncer && run.transactions > 0 ? round(((cpuSeconds(side.bouncer.pid) - bouncerCpu) * 1000) / run.transactions, 3) : undefined;
    return { ...run, peakServerConnections: peak, load, disturbed: load.otherCores > DISTURBED_CORES, pgbouncerCpuMsPerTransaction: perTransaction };
}

/**
 * `clients` persistent connections with the Node client, for what pgbench cannot do: go on when the server refuses
 * some clients, and time each transaction (for percentiles).
 */
async function nodePersistentLoad(
    port: number,
    clients: number,
    seconds: number,
    applicationName: string,
    sql = "SELECT id, at FROM acked WHERE id = $1",
): Promise<PgbenchRun & { connected: number }> {
    const connections = await Promise.all(
        Array.from({ length: clients }, async () => {
            const client = new Client(clientConfig(port, DATABASE, { connectionTimeoutMillis: 5000, application_name: applicationName }));
            client.on("error", () => undefined);
            return client.connect().then(
                () => client,
                () => undefined,
            );
        }),
    );
    const latencies: number[] = [];
    let failedQueries = 0;
    const started = Date.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
        connections.map(async (client, i) => {
            while (client && Date.now() < deadline) {
                const start = process.hrtime.bigint();
                try {
                    await (sql.includes("$1") ? client.query(sql, [`row-${i % 100}`]) : client.query(sql));
                    latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
                } catch {
                    failedQueries++;
                }
            }
        }),
    );
    const elapsed = (Date.now() - started) / 1000;
    await Promise.all(connections.map((c) => c?.end().catch(() => undefined)));
    const connected = connections.filter(Boolean).length;
    latencies.sort((a, b) => a - b);
    const at = (p: number) => (latencies.length ? round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))], 3) : NaN);
    // A refused client is a failure: it never ran a transaction.
    const average = latencies.length ? round(latencies.reduce((sum, l) => sum + l, 0) / latencies.length, 3) : NaN;
    return {
        clients,
        connected,
        transactions: latencies.length,
        failures: clients - connected + failedQueries,
        tps: Math.round(latencies.length / elapsed),
        latencyAvgMs: average,
        p50Ms: at(50),
        p99Ms: at(99),
    };
}

async function withConnectedCount(run: Promise<PgbenchRun>): Promise<PgbenchRun & { connected: number }> {
    const result = await run;
    return { ...result, connected: result.failures > 0 && result.transactions === 0 ? 0 : result.clients };
}

function pgbenchLoad(clients: number, script: string, connectEach = false) {
    return (port: number, seconds: number, applicationName: string) =>
        withConnectedCount(pgbench({ port, database: DATABASE, clients, threads: Math.min(THREADS, clients), seconds, script, connectEach, applicationName }));
}

async function startBouncer(pg: PostgresServer, userlist = USERLIST): Promise<PgBouncerProcess> {
    const config = loopbackConfig(pg);
    const bouncer = new PgBouncerProcess();
    return bouncer.start(renderIni(config, bouncer), userlist);
}

async function directAndPooled(pg: PostgresServer): Promise<[Side, Side]> {
    const bouncer = await startBouncer(pg);
    return [{ name: "direct", port: pg.port }, { name: "pooled", port: bouncer.port, bouncer }];
}

/** The role's SCRAM secret from pg_authid: what a userlist holds instead of the password, as RDS users cannot read it. */
async function scramSecret(pg: PostgresServer): Promise<string> {
    return pg.superuser(async (c) => (await c.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [USER])).rows[0].rolpassword as string);
}

const SCENARIOS: Scenario[] = [
    {
        key: "overload",
        title: "overload: 200 clients, max_connections 40 (the Node client: pgbench stops when a client cannot connect)",
        maxConnections: 40,
        sides: directAndPooled,
        load: (port, seconds, name) => nodePersistentLoad(port, 200, seconds, name),
        ratioOf: "tps",
    },
    { key: "persistent", title: "persistent: 50 clients (pgbench, primary-key SELECT)", maxConnections: 100, sides: directAndPooled, load: pgbenchLoad(50, PK_SELECT), ratioOf: "tps" },
    {
        key: "latency",
        title: "added latency: 1 client, SELECT 1 one after another (the Node client, which times each query)",
        maxConnections: 100,
        sides: directAndPooled,
        load: (port, seconds, name) => nodePersistentLoad(port, 1, seconds, name, "SELECT 1"),
        ratioOf: "p50Ms",
    },
    {
        key: "connectPerTransaction",
        title: "connect per transaction: 8 clients, a new connection and SCRAM login each time (pgbench -C)",
        maxConnections: 100,
        sides: directAndPooled,
        load: pgbenchLoad(8, PK_SELECT, true),
        ratioOf: "tps",
    },
    {
        key: "loginCost",
        title: `PgBouncer ${LOCAL_PGBOUNCER_VERSION} login cost: connect per transaction, userlist with the plain-text password vs the SCRAM secret`,
        maxConnections: 100,
        sides: async (pg) => {
            const plain = await startBouncer(pg);
            try {
                const secret = await startBouncer(pg, renderUserlist([{ name: USER, password: await scramSecret(pg) }]));
                return [{ name: "plaintext", port: plain.port, bouncer: plain }, { name: "scram-secret", port: secret.port, bouncer: secret }];
            } catch (e) {
                await plain.stop();
                throw e;
            }
        },
        load: pgbenchLoad(8, PK_SELECT, true),
        ratioOf: "pgbouncerCpuMsPerTransaction",
    },
];

function summary(values: number[]): Spread {
    const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    const mid = sorted.length / 2;
    const median = sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
    return { median: round(median, 3), min: sorted[0], max: sorted[sorted.length - 1] };
}

const isDisturbed = (round: Record<string, Round>) => Object.values(round).some((side) => side.disturbed);

/**
 * The rounds that the medians and ranges count: the undisturbed ones, unless fewer than half are (then all, so that
 * a busy machine still gives figures, with every round marked).
 */
function countedRounds(rounds: Record<string, Round>[]): number[] {
    const clean = rounds.map((r, i) => (isDisturbed(r) ? -1 : i)).filter((i) => i >= 0);
    return clean.length * 2 >= rounds.length ? clean : rounds.map((_, i) => i);
}

function summarize(scenario: Scenario, sides: [Side, Side], rounds: Record<string, Round>[]): Record<string, unknown> {
    const [a, b] = sides.map((s) => s.name);
    const countedIndexes = countedRounds(rounds);
    const counted = countedIndexes.map((i) => rounds[i]);
    const ratioOf = (r: Record<string, Round>) => round(Number(r[b][scenario.ratioOf]) / Number(r[a][scenario.ratioOf]), 3);
    // For latency, what the second side adds matters more than the ratio.
    const addedOf = (r: Record<string, Round>) => round(Number(r[b].p50Ms) - Number(r[a].p50Ms), 3);
    const latency = scenario.ratioOf === "p50Ms";
    const of = (side: string, key: keyof Round) => (rounds[0][side][key] === undefined ? undefined : summary(counted.map((r) => Number(r[side][key]))));
    const keys: (keyof Round)[] = ["tps", "latencyAvgMs", "p50Ms", "p99Ms", "connected", "failures", "peakServerConnections", "pgbouncerCpuMsPerTransaction"];
    return {
        title: scenario.title,
        maxConnections: scenario.maxConnections,
        sides: Object.fromEntries([a, b].map((side) => [side, Object.fromEntries(keys.map((key) => [key, of(side, key)]))])),
        ratio: { of: `${b} / ${a} ${scenario.ratioOf}`, perRound: rounds.map(ratioOf), ...summary(counted.map(ratioOf)) },
        ...(latency ? { addedP50Ms: { perRound: rounds.map(addedOf), ...summary(counted.map(addedOf)) } } : {}),
        disturbedRounds: rounds.map((r, i) => (isDisturbed(r) ? i + 1 : 0)).filter(Boolean),
        countedRounds: countedIndexes.map((i) => i + 1),
        rounds,
    };
}

async function stopBench(pg: PostgresServer, sides: Side[]): Promise<void> {
    await Promise.all(sides.map((s) => s.bouncer?.stop()));
    pg.stop();
}

async function startBench(scenario: Scenario): Promise<Bench> {
    const pg = await new PostgresServer({ maxConnections: scenario.maxConnections, databases: [DATABASE] }).start();
    let sides: [Side, Side] | undefined;
    try {
        sides = await scenario.sides(pg);
        await pg.superuser((c) => c.query("INSERT INTO acked (id) SELECT 'row-' || g FROM generate_series(0, 99) g ON CONFLICT DO NOTHING"), DATABASE);
        if (WARMUP_SECONDS > 0) {
            for (const side of sides) {
                await scenario.load(side.port, WARMUP_SECONDS, applicationName(side.name));
            }
        }
        return { scenario, pg, sides, rounds: [] };
    } catch (e) {
        await stopBench(pg, sides ?? []);
        throw e;
    }
}

async function measureRound(bench: Bench): Promise<void> {
    // Alternate which side goes first, so that neither always runs on the colder (or warmer) server.
    const order = bench.rounds.length % 2 === 0 ? bench.sides : [bench.sides[1], bench.sides[0]];
    const measured: Record<string, Round> = {};
    for (const side of order) {
        measured[side.name] = await measure(bench, side);
    }
    bench.rounds.push(measured);
}

/**
 * Round 1 of every scenario, then round 2 of every scenario, and so on: this shared machine's speed drifts over
 * minutes, and rounds spread over the whole run let each scenario's range and median take that drift in, where
 * rounds run back to back would measure whichever minutes the scenario happened to get.
 */
async function runScenarios(scenarios: Scenario[]): Promise<Record<string, unknown>> {
    const benches: Bench[] = [];
    try {
        for (const scenario of scenarios) {
            benches.push(await startBench(scenario));
        }
        for (let i = 1; i <= REPEAT; i++) {
            process.stderr.write(`round ${i} of ${REPEAT}: ${benches.map((b) => b.scenario.key).join(", ")}\n`);
            for (const bench of benches) {
                await measureRound(bench);
            }
        }
        return Object.fromEntries(benches.map((b) => [b.scenario.key, summarize(b.scenario, b.sides, b.rounds)]));
    } finally {
        for (const bench of benches) {
            await stopBench(bench.pg, bench.sides);
        }
    }
}

const range = (s: Spread, digits = 0) => (s.min === s.max ? `${round(s.median, digits)}` : `${round(s.median, digits)} (${round(s.min, digits)}–${round(s.max, digits)})`);

function printScenario(index: number, result: any): void {
    console.log(`\n${index}. ${result.title}`);
    console.log(`  ${"".padEnd(13)} ${"clients ok".padStart(10)} ${"failed".padStart(7)} ${"TPS median (range)".padStart(22)} ${"avg ms".padStart(8)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"peak conns".padStart(10)}${Object.values<any>(result.sides).some((side) => side.pgbouncerCpuMsPerTransaction) ? "  PgBouncer CPU ms/tx" : ""}`);
    for (const [name, side] of Object.entries<any>(result.sides)) {
        const cpu = side.pgbouncerCpuMsPerTransaction ? `  ${range(side.pgbouncerCpuMsPerTransaction, 3).padStart(19)}` : "";
        console.log(
            `  ${name.padEnd(13)} ${`${side.connected.median}/${result.rounds[0][name].clients}`.padStart(10)} ${String(side.failures.median).padStart(7)} ${range(side.tps).padStart(22)} ${String(side.latencyAvgMs.median).padStart(8)} ${String(side.p50Ms?.median ?? "-").padStart(8)} ${String(side.p99Ms?.median ?? "-").padStart(8)} ${String(side.peakServerConnections.max).padStart(10)}${cpu}`,
        );
    }
    console.log(`  ${result.ratio.of}, per round: ${result.ratio.perRound.join(", ")}; median ${result.ratio.median}`);
    if (result.addedP50Ms) {
        console.log(`  p50 added, ms, per round: ${result.addedP50Ms.perRound.join(", ")}; median ${result.addedP50Ms.median}`);
    }
    const left = result.countedRounds.length < result.rounds.length ? " (left out of the medians and ranges)" : result.disturbedRounds.length ? " (all rounds counted: fewer than half were clean)" : "";
    console.log(`  disturbed rounds (other processes above ${DISTURBED_CORES} cores): ${result.disturbedRounds.length ? result.disturbedRounds.join(", ") : "none"}${left}`);
}

const ONLY = flag("--only")?.split(",");

/** The scenarios `--only a,b` names, all without it. */
function selectedScenarios(): Scenario[] {
    const unknown = ONLY?.filter((key) => key !== VELURE_KEY && !SCENARIOS.some((s) => s.key === key)) ?? [];
    if (unknown.length) {
        refuse(`--only ${flag("--only")}: expected scenarios among ${[VELURE_KEY, ...SCENARIOS.map((s) => s.key)].join(", ")}, separated by commas`);
    }
    return SCENARIOS.filter((s) => !ONLY || ONLY.includes(s.key));
}

/** The velure scenario's medians and ranges per side and figure, and every round. */
function summarizeVelure(run: VelureRun): Record<string, unknown> {
    const sides = Object.fromEntries(
        run.sides.map((side) => {
            const perRound = run.rounds.map((r) => velureFigures(r[side.name]));
            const keys = Object.keys(perRound[0]);
            return [side.name, Object.fromEntries(keys.map((key) => [key, summary(perRound.map((f) => f[key]))]))];
        }),
    );
    return {
        title: "velure at its peak: auth-service 10 pods × 25 (GORM/pgx), publish-order 1 × 15 (lib/pq), two servers at max_connections 100, TLS",
        notes: Object.fromEntries(run.sides.map((s) => [s.name, s.note])),
        sides,
        rounds: run.rounds,
    };
}

function printVelure(result: any): void {
    console.log(`\n${result.title}`);
    const cell = (s: Spread, digits = 0) => range(s, digits);
    console.log(`  ${"side".padEnd(15)} ${"auth pods".padStart(9)} ${"served".padStart(7)} ${"failed".padStart(8)} ${"auth TPS".padStart(20)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"auth conns".padStart(10)} ${"orders TPS".padStart(20)} ${"orders conns".padStart(12)} ${"max wait ms".padStart(11)}`);
    for (const [name, f] of Object.entries<any>(result.sides)) {
        const pods = `${f.authPodsStarted.median}/${result.rounds[0][name].services.auth.pods}`;
        const served = `${f.authServed.median}/${f.authWorkers.median}`;
        console.log(
            `  ${name.padEnd(15)} ${pods.padStart(9)} ${served.padStart(7)} ${String(f.authFailed.median).padStart(8)} ${cell(f.authTps).padStart(20)} ${String(f.authP50Ms.median).padStart(7)} ${String(f.authP99Ms.median).padStart(7)} ${String(f.authServerConnections.max).padStart(10)} ${cell(f.ordersTps).padStart(20)} ${String(f.ordersServerConnections.max).padStart(12)} ${String(f.maxWaitMs?.max ?? "-").padStart(11)}`,
        );
    }
    for (const [name, note] of Object.entries(result.notes)) {
        console.log(`  ${name}: ${note}`);
    }
}

async function main(): Promise<void> {
    const velure = !ONLY || ONLY.includes(VELURE_KEY) ? summarizeVelure(await runVelure(VELURE_ROUNDS, VELURE_SECONDS)) : undefined;
    const scenarios = selectedScenarios();
    const results: Record<string, unknown> = { ...(velure ? { [VELURE_KEY]: velure } : {}), ...(scenarios.length ? await runScenarios(scenarios) : {}) };
    if (velure) {
        printVelure(velure);
    }
    Object.entries(results)
        .filter(([key]) => key !== VELURE_KEY)
        .forEach(([, result], i) => printScenario(i + 1, result));
    const report = {
        date: new Date().toISOString(),
        smoke: SMOKE,
        repeat: REPEAT,
        velureRounds: VELURE_ROUNDS,
        velureSecondsPerRun: VELURE_SECONDS,
        secondsPerRun: SECONDS,
        warmupSeconds: WARMUP_SECONDS,
        machine: { cpus: os.cpus().length, loadavg: os.loadavg(), node: process.version, pgbouncer: LOCAL_PGBOUNCER_VERSION, pgbenchThreads: THREADS },
        results,
    };
    const dir = path.join(__dirname, "results");
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${SMOKE ? "smoke" : "bench"}-${report.date.replace(/[:.]/g, "-")}.json`);
    fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwritten: ${path.relative(process.cwd(), file)}`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
