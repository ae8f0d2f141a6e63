// The database servers the options count server connections against, from the validated config.
import { BudgetLine, ConnectionBudget, ServerLimits, buildServerBudgets } from "../components/connectionBudget";
import { READ_ONLY_SUFFIX } from "../components/specs";
import { DatabaseSpec, ServiceSpec, VelureConfig } from "../config";

/** The server's name in messages and tables: "primary" for the one server of databaseHost, else "server <name>". */
function serverLabel(server: DatabaseSpec): string {
    return server.name ? `server ${server.name}` : "primary";
}

/** A service's pool name: its database, or the read-only entry <database>_ro. */
export function poolName(database: string, readOnly: boolean): string {
    return readOnly ? `${database}${READ_ONLY_SUFFIX}` : database;
}

/** The services whose database is on this server. */
export function servicesOn(config: VelureConfig, server: DatabaseSpec): ServiceSpec[] {
    return config.services.filter((s) => s.server === server.name);
}

/** The servers that some service uses: a server without services gets no pooler and no budget (the config warns). */
export function serversInUse(config: VelureConfig): DatabaseSpec[] {
    return config.servers.filter((server) => servicesOn(config, server).length > 0);
}

export function primaryLimits(server: DatabaseSpec, pools: string[]): ServerLimits {
    return {
        server: serverLabel(server),
        limit: server.maxConnections,
        reserved: server.reservedConnections,
        limitKey: server.keys.maxConnections,
        reservedKey: server.keys.reservedConnections,
        pools,
    };
}

function replicaLimits(server: DatabaseSpec, pools: string[]): (ServerLimits & { sameHost: boolean }) | undefined {
    if (!server.replicaHost) {
        return undefined;
    }
    return {
        server: server.name ? `${serverLabel(server)} read replica` : "read replica",
        limit: server.replicaMaxConnections,
        reserved: server.reservedConnections,
        limitKey: server.keys.replicaMaxConnections,
        reservedKey: server.keys.reservedConnections,
        pools,
        sameHost: server.replicaHost.toLowerCase() === server.host.toLowerCase(),
    };
}

/**
 * The budget of a PgBouncer option, per database server: `lines(server, services, readOnly)` counts the pools of the
 * server's services, the primary's or the read-only ones.
 */
export function pgbouncerBudget(
    config: VelureConfig,
    lines: (server: DatabaseSpec, services: ServiceSpec[], readOnly: boolean) => BudgetLine[],
): ConnectionBudget {
    return serversInUse(config).flatMap((server) => {
        const services = servicesOn(config, server);
        const pools = (readOnly: boolean) => services.map((s) => poolName(s.database, readOnly));
        const replica = replicaLimits(server, pools(true));
        return buildServerBudgets({
            primary: primaryLimits(server, pools(false)),
            primaryLines: lines(server, services, false),
            replica,
            replicaLines: replica ? lines(server, services, true) : [],
        });
    });
}
