import * as assert from "assert";
import { Figures, disagreements, figuresOf, kindOf } from "../../bench/agreement";

const spread = (median: number, min: number, max: number) => ({ median, min, max });

function run(tps: [number, number, number], ratio: [number, number, number]): Figures {
    return figuresOf({
        persistent: {
            sides: { direct: { tps: spread(...tps), p50Ms: undefined }, pooled: { tps: spread(...tps) } },
            ratio: { of: "pooled / direct tps", perRound: [1, 1.1], ...spread(...ratio) },
        },
    });
}

describe("bench: whether full runs agree", () => {
    it("names every figure a result file summarizes, and skips figures a scenario does not measure", () => {
        const figures = figuresOf({
            latency: {
                sides: { direct: { tps: spread(5000, 4900, 5100), p50Ms: spread(0.12, 0.11, 0.13), pgbouncerCpuMsPerTransaction: undefined } },
                ratio: spread(1.5, 1.4, 1.6),
                addedP50Ms: { perRound: [0.05], ...spread(0.06, 0.05, 0.07) },
            },
        });
        assert.deepStrictEqual([...figures.keys()], ["latency direct tps", "latency direct p50Ms", "latency ratio", "latency addedP50Ms"]);
        const { median, min, max } = figures.get("latency addedP50Ms")!;
        assert.deepStrictEqual({ median, min, max }, { median: 0.06, min: 0.05, max: 0.07 });
    });

    it("finds no disagreement when every median lies within every other run's range, ends included", () => {
        const runs = [run([7400, 7000, 7900], [1.0, 0.95, 1.05]), run([7900, 7400, 8000], [0.98, 0.9, 1.05]), run([7500, 7100, 7900], [1.02, 0.97, 1.1])];
        assert.deepStrictEqual(disagreements(runs), []);
    });

    it("names the figure, the run whose median falls outside, and the range it falls outside", () => {
        const runs = [run([7422, 7072, 7887], [1.0, 0.9, 1.1]), run([7850, 7730, 7995], [1.0, 0.9, 1.1]), run([7148, 7135, 7658], [1.0, 0.9, 1.1])];
        const tps = disagreements(runs).filter((d) => d.figure === "persistent direct tps");
        assert.deepStrictEqual(tps, [
            { figure: "persistent direct tps", kind: "machine", run: 0, median: 7422, against: 1, min: 7730, max: 7995 },
            { figure: "persistent direct tps", kind: "machine", run: 1, median: 7850, against: 2, min: 7135, max: 7658 },
            { figure: "persistent direct tps", kind: "machine", run: 2, median: 7148, against: 1, min: 7730, max: 7995 },
        ]);
        assert.ok(!disagreements(runs).some((d) => d.figure === "persistent ratio"), "the ratios agree");
    });

    it("fails only on comparison figures: ratios, the added p50, clients, failures, pods started and server connections", () => {
        const comparison = [
            "persistent ratio",
            "latency addedP50Ms",
            "overload direct connected",
            "overload direct failures",
            "persistent pooled peakServerConnections",
            "velure cluster-1.24.1 authPodsStarted",
            "velure direct authServerConnections",
            "velure sidecar-1.18.0 ordersServerConnections",
        ];
        const machine = [
            "persistent direct tps",
            "latency pooled p99Ms",
            "latency pooled p50Ms",
            "overload direct latencyAvgMs",
            "loginCost plaintext pgbouncerCpuMsPerTransaction",
            "velure direct authTps",
            "velure cluster-1.24.1 maxWaitMs",
        ];
        assert.deepStrictEqual(comparison.map(kindOf), comparison.map(() => "comparison"));
        assert.deepStrictEqual(machine.map(kindOf), machine.map(() => "machine"));
        const runs = [run([7400, 7000, 7900], [1.0, 0.95, 1.05]), run([7400, 7000, 7900], [1.2, 1.15, 1.25])];
        assert.deepStrictEqual(
            disagreements(runs).map((d) => [d.figure, d.kind, d.run]),
            [["persistent ratio", "comparison", 0], ["persistent ratio", "comparison", 1]],
        );
    });
});
