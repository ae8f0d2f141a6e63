import * as assert from "assert";
import { ConnectionBudget, buildBudget, switchBudget } from "../../components/connectionBudget";
import { MODES } from "../../config/schema";
import { deployedFromOutputs } from "../../options/deployed";
import { checkSwitch } from "../../options/switch";
import { VelureConfig } from "../../config";
import { programError, runProgram, stackConfig } from "./harness";

/** The dev stack with room for two poolers at once: 190 available, the proxy at 30 % (60). */
const HEADROOM = { databaseMaxConnections: 200, rdsMaxConnectionsPercent: 30, rdsMaxIdleConnectionsPercent: 20 };

async function deployedOutputs(mode: string, overrides: Record<string, unknown> = {}): Promise<Record<string, any>> {
    return (await runProgram(stackConfig("one-server-dev", { mode, ...overrides }))).outputs;
}

function escape(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("switching modes: the deployed pooler and the new one hold connections at once", () => {
    for (const from of MODES) {
        for (const to of MODES.filter((m) => m !== from)) {
            it(`${from} → ${to}: refused before any resource when both together exceed the limit, and goes through with headroom`, async () => {
                const deployed = await deployedOutputs(from);
                const next = await deployedOutputs(to);
                const sum = deployed.connectionBudget[0].used + next.connectionBudget[0].used;
                assert.ok(deployed.connectionBudget[0].used <= 70 && next.connectionBudget[0].used <= 70, "each mode fits the dev stack alone");
                const error = await programError(stackConfig("one-server-dev", { mode: to }), { deployedOutputs: deployed });
                assert.match(
                    error.message,
                    new RegExp(
                        `connection budget exceeded: during the switch from ${from} to ${to}, the two poolers together can open ${sum} server ` +
                            "connections to the primary, but it allows 70 \\(velure-pooling:databaseMaxConnections 80 - velure-pooling:databaseReservedConnections 10\\)",
                    ),
                );
                for (const line of deployed.connectionBudget[0].lines) {
                    assert.match(error.message, new RegExp(`  deployed ${from}: ${escape(line.name)}: .* = ${line.connections}\\n`));
                }
                for (const line of next.connectionBudget[0].lines) {
                    assert.match(error.message, new RegExp(`  new ${to}: ${escape(line.name)}: .* = ${line.connections}\\n`));
                }
                assert.match(error.message, new RegExp(`switch in two steps: first deploy mode ${from} with smaller pools`));
                assert.match(error.message, new RegExp(`pulumi config set velure-pooling:acceptSwitchOverBudget ${from}->${to}$`));
                assert.deepStrictEqual((error as any).declaredResources, [], "nothing is declared");

                const roomy = await runProgram(stackConfig("one-server-dev", { mode: to, ...HEADROOM }), { deployedOutputs: await deployedOutputs(from, HEADROOM) });
                assert.strictEqual(roomy.outputs.mode, to);
            });
        }
    }

    it("checks nothing on the first deployment, nor when the mode stays (a rollout is already counted)", async () => {
        assert.strictEqual((await runProgram(stackConfig("one-server-dev"), { deployedOutputs: {} })).outputs.mode, "pgbouncer-cluster");
        const deployed = await deployedOutputs("pgbouncer-cluster");
        assert.strictEqual((await runProgram(stackConfig("one-server-dev"), { deployedOutputs: deployed })).outputs.mode, "pgbouncer-cluster");
    });

    it("goes on over budget only for the one switch that acceptSwitchOverBudget names", async () => {
        const deployed = await deployedOutputs("pgbouncer-cluster");
        const accepted = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-sidecar", acceptSwitchOverBudget: "pgbouncer-cluster->pgbouncer-sidecar" }), {
            deployedOutputs: deployed,
        });
        assert.strictEqual(accepted.outputs.mode, "pgbouncer-sidecar");
        const other = await programError(stackConfig("one-server-dev", { mode: "pgbouncer-sidecar", acceptSwitchOverBudget: "rds-proxy->pgbouncer-sidecar" }), {
            deployedOutputs: deployed,
        });
        assert.match(other.message, /during the switch from pgbouncer-cluster to pgbouncer-sidecar/);
    });

    it("refuses an acceptSwitchOverBudget that is not two modes", async () => {
        for (const value of ["pgbouncer-cluster", "cluster->sidecar", "a->b->c"]) {
            const error = await programError(stackConfig("one-server-dev", { acceptSwitchOverBudget: value }));
            assert.match(
                error.message,
                new RegExp(
                    `acceptSwitchOverBudget: "${escape(value)}" is not allowed; expected <deployed mode>-><new mode> with modes of rds-proxy, pgbouncer-cluster, pgbouncer-sidecar ` +
                        "\\(the same mode twice for an update within a mode\\), or empty",
                ),
            );
        }
    });

    describe("the arithmetic and the warnings (pure)", () => {
        const limits = (server: string, limit: number) => ({
            server,
            limit,
            reserved: 10,
            limitKey: server === "primary" ? "databaseMaxConnections" : "databaseReplicaMaxConnections",
            reservedKey: "databaseReservedConnections",
            pools: [],
        });
        const budget = (primary: number, replica?: number): ConnectionBudget => [
            buildBudget(limits("primary", 100), [{ name: "pool", connections: primary, formula: `${primary}`, pods: 1, perPod: primary, placement: "ns/pool" }]),
            ...(replica === undefined
                ? []
                : [buildBudget(limits("read replica", 60), [{ name: "pool_ro", connections: replica, formula: `${replica}`, pods: 1, perPod: replica, placement: "ns/pool" }])]),
        ];

        it("adds the two poolers per server, the replica too, against the new config's limits", () => {
            const sum = switchBudget({ mode: "pgbouncer-sidecar", budget: budget(40, 30) }, { mode: "pgbouncer-cluster", budget: budget(20, 25) });
            assert.deepStrictEqual([sum[0].used, sum[0].available, sum[1].used, sum[1].available], [60, 90, 55, 50]);
            assert.deepStrictEqual(sum[1].lines.map((l) => l.name), ["deployed pgbouncer-sidecar: pool_ro", "new pgbouncer-cluster: pool_ro"]);
            // A replica only the deployed pooler used still carries its connections until that pooler is gone.
            assert.strictEqual(switchBudget({ mode: "a", budget: budget(1, 7) }, { mode: "b", budget: budget(1) })[1].used, 7);
        });

        it("warns when an accepted switch goes over, and when the key accepts nothing", () => {
            const config = (accept?: string) => ({ acceptSwitch: accept ? { from: accept.split("->")[0], to: accept.split("->")[1] } : undefined }) as VelureConfig;
            const deployed = { mode: "pgbouncer-cluster", budget: budget(50) };
            const next = { mode: "pgbouncer-sidecar", budget: budget(50) };
            assert.deepStrictEqual(checkSwitch(config("pgbouncer-cluster->pgbouncer-sidecar"), next, { kind: "pooler", pooler: deployed }), [
                "velure-pooling:acceptSwitchOverBudget: the update pgbouncer-cluster->pgbouncer-sidecar may open 100 server connections to the primary, " +
                    "which allows 90; accepted for this update (remove the key once it is done)",
            ]);
            assert.deepStrictEqual(checkSwitch(config("pgbouncer-cluster->pgbouncer-sidecar"), next, { kind: "pooler", pooler: next }), [
                'velure-pooling:acceptSwitchOverBudget: "pgbouncer-cluster->pgbouncer-sidecar" accepts nothing here (this deployment stays in pgbouncer-sidecar); ' +
                    "remove it: pulumi config rm velure-pooling:acceptSwitchOverBudget",
            ]);
            assert.deepStrictEqual(
                checkSwitch(config(), { mode: "pgbouncer-sidecar", budget: budget(40) }, { kind: "pooler", pooler: { mode: "pgbouncer-cluster", budget: budget(50) } }),
                [],
            );
        });

        it("reads the deployed pooler from the outputs: none without a mode (or with another program's), unreadable with a mode but a budget of another shape", () => {
            const outputs = { mode: "pgbouncer-cluster", connectionBudget: budget(10) };
            assert.deepStrictEqual(deployedFromOutputs(outputs), { kind: "pooler", pooler: { mode: "pgbouncer-cluster", budget: budget(10) }, urls: {} });
            assert.deepStrictEqual(deployedFromOutputs({}), { kind: "none" });
            assert.deepStrictEqual(deployedFromOutputs({ somethingElse: 1 }), { kind: "none" });
            assert.deepStrictEqual(deployedFromOutputs({ mode: "pgbouncer", connectionBudget: budget(10) }), {
                kind: "none",
                foreign: 'the stack\'s last outputs have a mode "pgbouncer", none of rds-proxy, pgbouncer-cluster, pgbouncer-sidecar: nothing deployed is counted',
            });
            assert.deepStrictEqual(deployedFromOutputs({ mode: "pgbouncer-cluster", connectionBudget: { used: "10" } }), {
                kind: "unreadable",
                mode: "pgbouncer-cluster",
                why: "its connectionBudget output is missing or of another shape",
            });
        });
    });
});
