// What the stack runs now: the outputs of its own last deployment, read from the backend before anything is declared.
import * as pulumi from "@pulumi/pulumi";
import { ConnectionBudget, PoolerBudget, ServerBudget } from "../components/connectionBudget";
import { MODES } from "../config/schema";

function isServerBudget(value: unknown): value is ServerBudget {
    const b = value as ServerBudget;
    return typeof b === "object" && b !== null && typeof b.server === "string" && typeof b.used === "number" && typeof b.limit === "number" && Array.isArray(b.lines);
}

/**
 * The deployed budget: a list of server budgets, or (outputs of the version before database servers were a list) one
 * budget with its read replica's nested, which counts against the servers of the same names.
 */
function readBudget(value: unknown): ConnectionBudget | undefined {
    if (Array.isArray(value)) {
        return value.every(isServerBudget) ? value.map((b) => ({ ...b, pools: b.pools ?? [], reservedKey: b.reservedKey ?? "databaseReservedConnections" })) : undefined;
    }
    if (!isServerBudget(value)) {
        return undefined;
    }
    const { replica, ...primary } = value as ServerBudget & { replica?: unknown };
    const servers = [primary, ...(replica === undefined ? [] : [replica])];
    return servers.every(isServerBudget) ? readBudget(servers) : undefined;
}

/**
 * What the last outputs say of the deployed pooler:
 * - none: nothing of this program is deployed (no outputs, or outputs without `mode`); `foreign` when a `mode`
 *   output names none of this program's modes (another program's outputs: nothing of ours to count);
 * - a pooler: its mode and worst case;
 * - unreadable: a mode of this program with a budget this version cannot read, so a switch cannot be checked.
 */
export type Deployed =
    | { kind: "none"; foreign?: string }
    | { kind: "pooler"; pooler: PoolerBudget; urls?: Record<string, DeployedUrl> }
    | { kind: "unreadable"; mode: string; why: string };

/** Where a deployed service's pods connect (the `services` output): a urlSecret release's pods of that mode still read it. */
export interface DeployedUrl {
    host: string;
    port: number;
    sslmode: string;
    sslrootcert?: string;
}

function isDeployedUrl(value: unknown): value is DeployedUrl {
    const u = value as DeployedUrl;
    return typeof u === "object" && u !== null && typeof u.host === "string" && typeof u.port === "number" && typeof u.sslmode === "string";
}

/** Per service, from the `services` output; outputs of a version before it had sslmode say nothing. */
function readUrls(services: unknown): Record<string, DeployedUrl> {
    if (typeof services !== "object" || services === null) {
        return {};
    }
    return Object.fromEntries(Object.entries(services).filter(([, s]) => isDeployedUrl(s)));
}

/** The deployed pooler from a stack's outputs (`mode`, `connectionBudget`, `services`). */
export function deployedFromOutputs(outputs: Record<string, unknown>): Deployed {
    const { mode, connectionBudget, services } = outputs;
    if (mode === undefined) {
        return { kind: "none" };
    }
    if (typeof mode !== "string" || !(MODES as readonly string[]).includes(mode)) {
        return { kind: "none", foreign: `the stack's last outputs have a mode ${JSON.stringify(mode)}, none of ${MODES.join(", ")}: nothing deployed is counted` };
    }
    const budget = readBudget(connectionBudget);
    if (!budget) {
        return { kind: "unreadable", mode, why: "its connectionBudget output is missing or of another shape" };
    }
    return { kind: "pooler", pooler: { mode, budget }, urls: readUrls(services) };
}

const READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs";

/** A stack's last outputs from the backend, with secrets revealed (only the switch check reads them). */
async function readOutputs(name: string): Promise<Record<string, unknown>> {
    const result = await pulumi.runtime.invoke(READ_STACK_OUTPUTS, { name });
    return (result?.outputs ?? {}) as Record<string, unknown>;
}

/**
 * Reads this stack's last outputs through the engine's own stack-reference function, an invoke: nothing enters the
 * state, and a name the backend refuses is an error the program can handle (a StackReference resource would end the
 * run instead). Backends name a stack <organization>/<project>/<stack>, except a file backend in the legacy layout
 * (stacks not grouped by project), which refuses that and takes the bare <stack>: in that layout a stack name is
 * unique in the backend, so the bare name is this very stack. A backend that refuses both ends the run, because a
 * switch it cannot check could open more connections than the database allows.
 */
export async function readDeployedPooler(): Promise<Deployed> {
    const stack = pulumi.getStack();
    const names = [`${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`, stack];
    const errors: string[] = [];
    for (const name of names) {
        try {
            return deployedFromOutputs(await readOutputs(name));
        } catch (e) {
            errors.push(`${name}: ${(e as Error).message}`);
        }
    }
    throw new Error(
        "velure-pooling reads the stack's own last outputs to check a switch of mode, and the backend refused both names:\n" +
            errors.map((e) => `  ${e}`).join("\n"),
    );
}
