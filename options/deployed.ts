// What the stack runs now: the outputs of its own last deployment, read through a stack reference to itself.
import * as pulumi from "@pulumi/pulumi";
import { ConnectionBudget, PoolerBudget } from "../components/connectionBudget";
import { MODES } from "../config/schema";

function isBudget(value: unknown): value is ConnectionBudget {
    const b = value as ConnectionBudget;
    return typeof b === "object" && b !== null && typeof b.used === "number" && typeof b.limit === "number" && Array.isArray(b.lines);
}

/** The deployed pooler from a stack's outputs (`mode`, `connectionBudget`), or undefined when there is none yet. */
export function deployedFromOutputs(outputs: Record<string, unknown>): PoolerBudget | undefined {
    const { mode, connectionBudget } = outputs;
    if (typeof mode !== "string" || !(MODES as readonly string[]).includes(mode) || !isBudget(connectionBudget)) {
        return undefined;
    }
    return { mode, budget: connectionBudget };
}

/**
 * Reads this stack's last outputs. On the first deployment there are none. The reference declares nothing: it is a
 * read of the backend's state, which the engine does before any resource of the program is created.
 */
export async function readDeployedPooler(): Promise<PoolerBudget | undefined> {
    const self = new pulumi.StackReference("velure-deployed", { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}` });
    const [mode, connectionBudget] = await Promise.all([self.getOutputDetails("mode"), self.getOutputDetails("connectionBudget")]);
    return deployedFromOutputs({ mode: mode.value, connectionBudget: connectionBudget.value });
}
