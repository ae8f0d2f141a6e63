// The worst-case count of server connections a pooler can open, set against the database's limit.
// Every option reports one, and every option fails the run when it does not fit.

export interface BudgetLine {
    /** What holds these connections: a database, a service, a proxy. */
    name: string;
    connections: number;
    /** How the figure was computed, for the error message and the README's arithmetic. */
    formula: string;
    /** connections = pods × perPod: what a change within one mode compares, generation by generation. */
    pods?: number;
    perPod?: number;
    /** Where these pods run (namespace/name): a line of another placement is another generation of pods. */
    placement?: string;
    /**
     * The line counts the service's own client connections (a session pool: one server connection per client
     * connection), so in a switch the two poolers' lines are the same pods, rolled from one to the other.
     */
    clientBound?: boolean;
}

/** A database server's limit, and the config keys that set it (named in the error). */
export interface ServerLimits {
    /** Which server: "primary" and "read replica" for the one server of databaseHost, else "server <name>" (and its "read replica"). */
    server: string;
    limit: number;
    reserved: number;
    limitKey: string;
    reservedKey: string;
    /** The PgBouncer pools (database names) that open their connections to this server: the near-budget alert's scope. */
    pools: string[];
}

/** One database server's worst case: a primary, or a read replica with a limit of its own. */
export interface ServerBudget extends ServerLimits {
    /** limit - reserved: what the pooler may use. */
    available: number;
    /** The sum of the lines: the pooler's worst case. */
    used: number;
    lines: BudgetLine[];
}

/** A pooler's worst case: one entry per database server it opens connections to. */
export type ConnectionBudget = ServerBudget[];


/**
 * A rolling update adds one pod at a time (maxSurge 1, maxUnavailable 0), and the pod it replaces keeps its server
 * connections while it drains. minReadySeconds of a grace period makes the next replacement wait until that pod is
 * gone, so a rollout holds at most one surge pod and one draining pod beyond the replicas. A node drain or a
 * consolidation evicts pods too, whose replacements start while they drain: the pods' PodDisruptionBudget
 * (maxUnavailable 1) lets the eviction API take one pod at a time, counted as one evicted pod (EVICTION_BOUND says
 * what that bound rests on).
 */
export const ROLLOUT = { surge: 1, draining: 1, evicted: 1 } as const;

/** What the budget's "evicted" term rests on, and what it cannot bound: the plan and the README print it. */
export const EVICTION_BOUND =
    "1 evicted: the pods' PodDisruptionBudget (maxUnavailable 1) lets a drain or a consolidation evict one pod at a time, " +
    "and the next only once its replacement is Ready; an evicted pod whose replacement is Ready within its grace period " +
    "overlaps the next eviction, and pods deleted outside the eviction API (kubectl delete, a lost node) are not bounded at all";

/**
 * The pods a rollout may run at once, as a count and as the words of a budget formula; `draining`: the pods that
 * may still be stopping when the rollout ends (ROLLOUT's one, unless the pods outlive the wait between two steps).
 */
export function rolloutPods(pods: number, what: string, draining: number = ROLLOUT.draining): { pods: number; formula: string } {
    return {
        pods: pods + ROLLOUT.surge + draining + ROLLOUT.evicted,
        formula: `(${pods} ${what} + ${ROLLOUT.surge} surge + ${draining} draining + ${ROLLOUT.evicted} evicted)`,
    };
}

/** A line of `pods` pods at `perPod` server connections each. */
export function podsLine(name: string, placement: string, rollout: { pods: number; formula: string }, perPod: number, perPodWords: string): BudgetLine {
    return { name, placement, pods: rollout.pods, perPod, connections: rollout.pods * perPod, formula: `${rollout.formula} × ${perPodWords} ${perPod}` };
}

/** What one pod of a rollout may take to start and become Ready (image pull, probes), beyond minReadySeconds. */
const POD_START_SECONDS = 60;
/** Helm's and the provider's waits never go below the 10 minutes they had before. */
const MIN_ROLLOUT_WAIT_SECONDS = 600;
const ROLLOUT_WAIT_MARGIN_SECONDS = 120;

/**
 * How long a rollout of `pods` pods one at a time may take (each starts, is Ready, then waits minReadySeconds before
 * the next): what Helm's and the Kubernetes provider's waits allow it, so that a slow but healthy rollout is not
 * rolled back half-way.
 */
export function rolloutWaitSeconds(pods: number, minReadySeconds: number): number {
    return Math.max(MIN_ROLLOUT_WAIT_SECONDS, pods * (POD_START_SECONDS + minReadySeconds) + ROLLOUT_WAIT_MARGIN_SECONDS);
}

/** The Deployment settings that bound a rollout to ROLLOUT, for pods with this grace period. */
export function boundedRollout(gracePeriodSeconds: number) {
    return {
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: ROLLOUT.surge, maxUnavailable: 0 } },
        minReadySeconds: gracePeriodSeconds,
    };
}

export function buildBudget(server: ServerLimits, lines: BudgetLine[]): ServerBudget {
    const used = lines.reduce((sum, line) => sum + line.connections, 0);
    return { ...server, available: server.limit - server.reserved, used, lines };
}

/** A database server's primary and, when it has one, its read replica, with the lines that count against each. */
export interface ServerShares {
    primary: ServerLimits;
    primaryLines: BudgetLine[];
    /** sameHost: the replica host is the primary's (the same server), so its pools count against the primary. */
    replica?: ServerLimits & { sameHost: boolean };
    replicaLines: BudgetLine[];
}

/** The budgets of one database server: the primary's and, with a read replica of its own, the replica's. */
export function buildServerBudgets(shares: ServerShares): ServerBudget[] {
    const { primary, primaryLines, replica, replicaLines } = shares;
    if (!replica) {
        return [buildBudget(primary, primaryLines)];
    }
    if (replica.sameHost) {
        return [buildBudget({ ...primary, pools: [...primary.pools, ...replica.pools] }, [...primaryLines, ...replicaLines])];
    }
    const { sameHost: _, ...limits } = replica;
    return [buildBudget(primary, primaryLines), buildBudget(limits, replicaLines)];
}

/** A pooler as a stack runs it: its mode and its worst case (the stack outputs `mode` and `connectionBudget`). */
export interface PoolerBudget {
    mode: string;
    budget: ConnectionBudget;
}

/** A server's budget with these lines, under the limits of `limits`. */
function withLines(limits: ServerBudget, lines: BudgetLine[]): ServerBudget {
    const { available: _a, used: _u, lines: _l, ...server } = limits;
    return buildBudget(server, lines);
}

/**
 * The budget of a switch: until the old pooler is deleted, it and the new one both hold server connections, so
 * each server carries the sum of their worst cases, against the limits of the new config.
 */
export function switchBudget(deployed: PoolerBudget, next: PoolerBudget): ConnectionBudget {
    const named = (pooler: PoolerBudget, role: string) => (line: BudgetLine) => ({ ...line, name: `${role} ${pooler.mode}: ${line.name}` });
    const names = [...new Set([...next.budget, ...deployed.budget].map((s) => s.server))];
    return names.map((name) => {
        const old = deployed.budget.find((s) => s.server === name);
        const now = next.budget.find((s) => s.server === name);
        const oldLines = old?.lines ?? [];
        const nowLines = now?.lines ?? [];
        const rolled = (line: BudgetLine) => line.clientBound === true && oldLines.some(sameLine(line));
        return withLines((now ?? old) as ServerBudget, [
            ...oldLines.filter((line) => !nowLines.some((n) => rolled(n) && sameLine(n)(line))).map(named(deployed, "deployed")),
            ...nowLines.flatMap((line) => (rolled(line) ? rolledLine(oldLines.find(sameLine(line)) as BudgetLine, line) : [named(next, "new")(line)])),
        ]);
    });
}

/** The same pods: a line of the same name and placement. */
const sameLine = (a: BudgetLine) => (b: BudgetLine) => a.name === b.name && a.placement === b.placement;

const hasShape = (line: BudgetLine): line is BudgetLine & { pods: number; perPod: number } => line.pods !== undefined && line.perPod !== undefined;

/**
 * One line of a change within a mode. The same pods (name and placement) are rolled: old pods keep the deployed pool
 * size while new ones start, so the worst case is the larger pod count at the larger pool size. A deployed line
 * without its pod count (an older program's output) counts both generations in full.
 */
function rolledLine(before: BudgetLine, after: BudgetLine): BudgetLine[] {
    if (!hasShape(before) || !hasShape(after)) {
        return [{ ...before, name: `deployed: ${before.name}` }, { ...after, name: `new: ${after.name}` }];
    }
    if (before.pods === after.pods && before.perPod === after.perPod) {
        return [after];
    }
    const pods = Math.max(before.pods, after.pods);
    const perPod = Math.max(before.perPod, after.perPod);
    return [
        {
            ...after,
            pods,
            perPod,
            connections: pods * perPod,
            formula: `max(${before.pods}, ${after.pods}) pods × max(${before.perPod}, ${after.perPod}) per pod (deployed and new pools during the rollout)`,
        },
    ];
}

/** The lines of a change within one mode: rolled lines merged, and the pods that move or go away counted until they are gone. */
function changeLines(deployed: BudgetLine[], next: BudgetLine[]): BudgetLine[] {
    const lines = next.flatMap((line) => {
        const before = deployed.find(sameLine(line));
        return before ? rolledLine(before, line) : [line];
    });
    const leaving = deployed.filter((line) => !next.some(sameLine(line))).map((line) => ({ ...line, name: `deployed: ${line.name}` }));
    return [...lines, ...leaving];
}

/**
 * The budget of an update from what is deployed to the new config: a switch of mode adds both poolers; within a mode,
 * the generations of pods that a rollout or a replacement (a new namespace or name) runs side by side.
 */
export function transitionBudget(deployed: PoolerBudget, next: PoolerBudget): ConnectionBudget {
    if (deployed.mode !== next.mode) {
        return switchBudget(deployed, next);
    }
    return next.budget.map((now) => withLines(now, changeLines(deployed.budget.find((s) => s.server === now.server)?.lines ?? [], now.lines)));
}

function assertServerFits(budget: ServerBudget, advice: string, who: string): void {
    if (budget.used <= budget.available) {
        return;
    }
    const shares = budget.lines.map((l) => `  ${l.name}: ${l.formula} = ${l.connections}`).join("\n");
    throw new Error(
        `connection budget exceeded: ${who} can open ${budget.used} server connections to the ${budget.server}, but it allows ` +
            `${budget.available} (velure-pooling:${budget.limitKey} ${budget.limit} - ` +
            `velure-pooling:${budget.reservedKey} ${budget.reserved}).\n${shares}\n${advice}`,
    );
}

/** Throws when a budget does not fit, naming every share and what to change; `who` holds the connections. */
export function assertWithinBudget(budget: ConnectionBudget, advice: string, who = "the pooler"): void {
    for (const server of budget) {
        assertServerFits(server, advice, who);
    }
}

/** The first server of a budget that does not fit, or undefined when all do. */
export function overBudget(budget: ConnectionBudget): ServerBudget | undefined {
    return budget.find((s) => s.used > s.available);
}
