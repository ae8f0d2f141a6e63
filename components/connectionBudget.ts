// The worst-case count of server connections a pooler can open, set against the database's limit.
// Every option reports one, and every option fails the run when it does not fit.

export interface BudgetLine {
    /** What holds these connections: a database, a service, a proxy. */
    name: string;
    connections: number;
    /** How the figure was computed, for the error message and the README's arithmetic. */
    formula: string;
}

export interface ConnectionBudget {
    /** The database's max_connections. */
    limit: number;
    /** Kept free for RDS, superusers, migrations. */
    reserved: number;
    /** limit - reserved: what the pooler may use. */
    available: number;
    /** The sum of the lines: the pooler's worst case. */
    used: number;
    lines: BudgetLine[];
}

export function buildBudget(limit: number, reserved: number, lines: BudgetLine[]): ConnectionBudget {
    const used = lines.reduce((sum, line) => sum + line.connections, 0);
    return { limit, reserved, available: limit - reserved, used, lines };
}

/** Throws when the budget does not fit, naming every share and what to change. */
export function assertWithinBudget(budget: ConnectionBudget, advice: string): void {
    if (budget.used <= budget.available) {
        return;
    }
    const shares = budget.lines.map((l) => `  ${l.name}: ${l.formula} = ${l.connections}`).join("\n");
    throw new Error(
        `connection budget exceeded: the pooler can open ${budget.used} server connections, but the database allows ` +
            `${budget.available} (velure-pooling:databaseMaxConnections ${budget.limit} - ` +
            `velure-pooling:databaseReservedConnections ${budget.reserved}).\n${shares}\n${advice}`,
    );
}
