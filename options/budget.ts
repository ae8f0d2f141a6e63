// The database servers the options count server connections against, from the validated config.
import { BudgetLine, ConnectionBudget, PRIMARY_LIMITS_KEY, ServerLimits, buildBudgets } from "../components/connectionBudget";
import { READ_ONLY_SUFFIX } from "../components/specs";
import { DatabaseSpec, VelureConfig } from "../config";

export function primaryLimits(database: DatabaseSpec): ServerLimits {
    return { server: "primary", limit: database.maxConnections, reserved: database.reservedConnections, limitKey: PRIMARY_LIMITS_KEY };
}

function replicaLimits(database: DatabaseSpec): (ServerLimits & { sameHost: boolean }) | undefined {
    if (!database.replicaHost) {
        return undefined;
    }
    return {
        server: "read replica",
        limit: database.replicaMaxConnections,
        reserved: database.reservedConnections,
        limitKey: "databaseReplicaMaxConnections",
        sameHost: database.replicaHost.toLowerCase() === database.host.toLowerCase(),
    };
}

/** A service's pool name: its database, or the read-only entry <database>_ro. */
export function poolName(database: string, readOnly: boolean): string {
    return readOnly ? `${database}${READ_ONLY_SUFFIX}` : database;
}

/** The budget of a PgBouncer option, whose `lines` count the primary pools, or the read-only pools. */
export function pgbouncerBudget(config: VelureConfig, lines: (readOnly: boolean) => BudgetLine[]): ConnectionBudget {
    const replica = replicaLimits(config.database);
    return buildBudgets(primaryLimits(config.database), lines(false), replica, replica ? lines(true) : []);
}
