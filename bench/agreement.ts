// Whether full runs of the benchmark agree: every figure's median in one run lies within the range (min–max over
// its rounds) of every other run. `npm run bench:agree -- <result.json> <result.json> ...` checks saved runs.
// Only the comparison figures must agree. The machine figures (TPS, latencies, CPU per transaction) follow this
// shared machine's speed, which drifts over minutes; they are listed, as drift, but do not fail the check.
import * as fs from "fs";

export interface Spread {
    median: number;
    min: number;
    max: number;
}

/** One run's figures by name, such as "persistent pooled tps" or "persistent ratio". */
export type Figures = Map<string, Spread>;

/** What the bench is for: pooled against direct on the same machine, in the same minutes. */
const COMPARISON_KEYS = [
    "ratio",
    "addedP50Ms",
    "connected",
    "failures",
    "peakServerConnections",
    // The velure scenario's: pods that started, and each server's connections at peak.
    "authPodsStarted",
    "ordersPodsStarted",
    "authServerConnections",
    "ordersServerConnections",
];

/** "comparison" for a figure that compares the sides or counts clients and connections, "machine" for the rest. */
export type FigureKind = "comparison" | "machine";

export function kindOf(figure: string): FigureKind {
    return COMPARISON_KEYS.includes(figure.split(" ").pop() as string) ? "comparison" : "machine";
}

export interface Disagreement {
    figure: string;
    kind: FigureKind;
    /** The run (0-based, in the order given) whose median falls outside... */
    run: number;
    median: number;
    /** ...the range of this run. */
    against: number;
    min: number;
    max: number;
}

const isSpread = (value: unknown): value is Spread =>
    typeof value === "object" && value !== null && ["median", "min", "max"].every((k) => typeof (value as Record<string, unknown>)[k] === "number");

/** The figures of one result file's `results`: each side's summaries, the ratio and the added p50. */
export function figuresOf(results: Record<string, any>): Figures {
    const figures: Figures = new Map();
    for (const [scenario, result] of Object.entries(results)) {
        for (const [side, summaries] of Object.entries<Record<string, unknown>>(result.sides)) {
            for (const [key, spread] of Object.entries(summaries)) {
                if (isSpread(spread)) {
                    figures.set(`${scenario} ${side} ${key}`, spread);
                }
            }
        }
        for (const key of ["ratio", "addedP50Ms"]) {
            if (isSpread(result[key])) {
                figures.set(`${scenario} ${key}`, result[key]);
            }
        }
    }
    return figures;
}

/** Every (figure, run, other run) where the run's median lies outside the other run's range. */
export function disagreements(runs: Figures[]): Disagreement[] {
    const found: Disagreement[] = [];
    for (const figure of runs[0]?.keys() ?? []) {
        const spreads = runs.map((figures) => figures.get(figure));
        spreads.forEach((spread, run) =>
            spreads.forEach((other, against) => {
                if (spread && other && run !== against && (spread.median < other.min || spread.median > other.max)) {
                    found.push({ figure, kind: kindOf(figure), run, median: spread.median, against, min: other.min, max: other.max });
                }
            }),
        );
    }
    return found;
}

function main(files: string[]): void {
    if (files.length < 2) {
        throw new Error("usage: npm run bench:agree -- <result.json> <result.json> [...]: at least two runs to compare");
    }
    const missing = files.filter((file) => !fs.existsSync(file));
    if (missing.length) {
        throw new Error(`npm run bench:agree: no such result file: ${missing.join(", ")}`);
    }
    const runs = files.map((file) => figuresOf(JSON.parse(fs.readFileSync(file, "utf8")).results));
    files.forEach((file, i) => console.log(`run ${i + 1}: ${file}`));
    const found = disagreements(runs);
    const failing = found.filter((d) => d.kind === "comparison");
    const drift = found.filter((d) => d.kind === "machine");
    const line = (d: Disagreement) => `${d.figure}: run ${d.run + 1}'s median ${d.median} lies outside run ${d.against + 1}'s range ${d.min}–${d.max}`;
    failing.forEach((d) => console.log(line(d)));
    if (drift.length) {
        console.log(`machine figures that drifted (they do not fail the check):\n${drift.map((d) => `  ${line(d)}`).join("\n")}`);
    }
    const comparisons = [...runs[0].keys()].filter((f) => kindOf(f) === "comparison").length;
    console.log(
        `${comparisons} comparison figures, ${runs[0].size - comparisons} machine figures, ${files.length} runs: ` +
            `${failing.length ? `${failing.length} disagreements` : "every comparison figure's median lies within every other run's range"}; machine-figure drifts: ${drift.length}`,
    );
    process.exitCode = failing.length ? 1 : 0;
}

if (require.main === module) {
    try {
        main(process.argv.slice(2));
    } catch (e) {
        console.error((e as Error).message);
        process.exitCode = 2;
    }
}
