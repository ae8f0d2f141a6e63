// The worst-case count of server connections a pooler can open, set against the database's limit.
// Every option reports one, and every option fails the run when it does not fit.

export interface BudgetLine {
    /** What holds these connections: a database, a service, a proxy. */
    name: string;
    connections: number;
    /** How the figure was computed, for the error message and the README's arithmetic. */
    formula: string;
}

/** A database server's limit, and the config keys that set it (named in the error). */
export interface ServerLimits {
    /** "primary" or "read replica". */
    server: string;
    limit: number;
    reserved: number;
    limitKey: string;
}

export interface ConnectionBudget {
    server: string;
    /** The server's max_connections. */
    limit: number;
    /** Kept free for RDS, superusers, migrations. */
    reserved: number;
    /** limit - reserved: what the pooler may use. */
    available: number;
    /** The sum of the lines: the pooler's worst case. */
    used: number;
    lines: BudgetLine[];
    limitKey: string;
    /** The read replica's own budget, when it is a server of its own. */
    replica?: ConnectionBudget;
}

export const PRIMARY_LIMITS_KEY = "databaseMaxConnections";

/**
 * A rolling update adds one pod at a time (maxSurge 1, maxUnavailable 0), and the pod it replaces keeps its server
 * connections while it drains. minReadySeconds of a grace period makes the next replacement wait until that pod is
 * gone, so a rollout holds at most one surge pod and one draining pod beyond the replicas.
 */
export const ROLLOUT = { surge: 1, draining: 1 } as const;

/** The pods a rollout may run at once, as a count and as the words of a budget formula. */
export function rolloutPods(pods: number, what: string): { pods: number; formula: string } {
    return {
        pods: pods + ROLLOUT.surge + ROLLOUT.draining,
        formula: `(${pods} ${what} + ${ROLLOUT.surge} surge + ${ROLLOUT.draining} draining)`,
    };
}

/** The Deployment settings that bound a rollout to ROLLOUT, for pods with this grace period. */
export function boundedRollout(gracePeriodSeconds: number) {
    return {
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: ROLLOUT.surge, maxUnavailable: 0 } },
        minReadySeconds: gracePeriodSeconds,
    };
}

export function buildBudget(server: ServerLimits, lines: BudgetLine[]): ConnectionBudget {
    const used = lines.reduce((sum, line) => sum + line.connections, 0);
    return { ...server, available: server.limit - server.reserved, used, lines };
}

/**
 * The pooler's budgets: the primary's and, with a read replica, the replica's. The <database>_ro pools count against
 * the replica's limit, or against the primary's when the replica host is the primary's (the same server).
 */
export function buildBudgets(
    primary: ServerLimits,
    primaryLines: BudgetLine[],
    replica: (ServerLimits & { sameHost: boolean }) | undefined,
    replicaLines: BudgetLine[],
): ConnectionBudget {
    if (!replica) {
        return buildBudget(primary, primaryLines);
    }
    if (replica.sameHost) {
        return buildBudget(primary, [...primaryLines, ...replicaLines]);
    }
    return { ...buildBudget(primary, primaryLines), replica: buildBudget(replica, replicaLines) };
}

/** A pooler as a stack runs it: its mode and its worst case (the stack outputs `mode` and `connectionBudget`). */
export interface PoolerBudget {
    mode: string;
    budget: ConnectionBudget;
}

function servers(budget: ConnectionBudget): ConnectionBudget[] {
    return budget.replica ? [budget, budget.replica] : [budget];
}

/**
 * The budget of a switch: until the old pooler is deleted, it and the new one both hold server connections, so
 * each server carries the sum of their worst cases, against the limits of the new config.
 */
export function switchBudget(deployed: PoolerBudget, next: PoolerBudget): ConnectionBudget {
    const named = (pooler: PoolerBudget, role: string) => (line: BudgetLine) => ({ ...line, name: `${role} ${pooler.mode}: ${line.name}` });
    const server = (name: string): ConnectionBudget => {
        const old = servers(deployed.budget).find((s) => s.server === name);
        const now = servers(next.budget).find((s) => s.server === name);
        const limits = (now ?? old) as ConnectionBudget;
        return buildBudget(
            { server: name, limit: limits.limit, reserved: limits.reserved, limitKey: limits.limitKey },
            [...(old?.lines ?? []).map(named(deployed, "deployed")), ...(now?.lines ?? []).map(named(next, "new"))],
        );
    };
    const primary = server(next.budget.server);
    const replica = next.budget.replica ?? deployed.budget.replica;
    return replica ? { ...primary, replica: server(replica.server) } : primary;
}

function assertServerFits(budget: ConnectionBudget, advice: string, who: string): void {
    if (budget.used <= budget.available) {
        return;
    }
    const shares = budget.lines.map((l) => `  ${l.name}: ${l.formula} = ${l.connections}`).join("\n");
    throw new Error(
        `connection budget exceeded: ${who} can open ${budget.used} server connections to the ${budget.server}, but it allows ` +
            `${budget.available} (velure-pooling:${budget.limitKey} ${budget.limit} - ` +
            `velure-pooling:databaseReservedConnections ${budget.reserved}).\n${shares}\n${advice}`,
    );
}

/** Throws when a budget does not fit, naming every share and what to change; `who` holds the connections. */
export function assertWithinBudget(budget: ConnectionBudget, advice: string, who = "the pooler"): void {
    for (const server of servers(budget)) {
        assertServerFits(server, advice, who);
    }
}

/** The first server of a budget that does not fit, or undefined when all do. */
export function overBudget(budget: ConnectionBudget): ConnectionBudget | undefined {
    return servers(budget).find((s) => s.used > s.available);
}
