// The [databases] entries and the env that both PgBouncer options give a service.
import * as pulumi from "@pulumi/pulumi";
import { NetworkPath } from "../components/allowPolicy";
import { BudgetLine, podsLine, rolloutPods } from "../components/connectionBudget";
import { DatabaseEntry } from "../components/pgbouncerIni";
import { READ_ONLY_SUFFIX } from "../components/specs";
import { DatabaseSpec, ServiceSpec, needsSessionPool, podClientConnections, podClientWords } from "../config";
import { ServiceConnection, serviceConnection } from "./types";

/**
 * The budget line of a service in a session pool: one server connection per client connection of its pods, its
 * database/sql pool's and its LISTEN connections'.
 */
export function sessionBudgetLine(service: ServiceSpec, pool: string): BudgetLine {
    const perPod = podClientConnections(service.client);
    const line = podsLine(service.name, `${service.namespace}/${service.releaseName}`, rolloutPods(service.maxReplicas, "max pods"), perPod, podClientWords(service.client));
    return { ...line, name: `${service.name} → ${pool} (session pool)`, clientBound: true };
}

/**
 * The client connections one PgBouncer of the service may hold at once: its sidecar serves one pod's pool; the
 * central one may get every pod's, in a rollout too (which replica a client lands on is the Service's choice), which
 * is what the budget line counts.
 */
function sessionClients(service: ServiceSpec, placement: "sidecar" | "cluster"): number {
    return placement === "sidecar" ? podClientConnections(service.client) : sessionBudgetLine(service, service.database).connections;
}

/**
 * A service's pooler entries on its own server: its database, and <database>_ro on the server's read replica; a
 * session pool sized for its clients when it needs session features.
 */
export function serviceDatabaseEntries(server: DatabaseSpec, service: ServiceSpec, placement: "sidecar" | "cluster"): DatabaseEntry[] {
    const primary = {
        name: service.database,
        host: server.host,
        port: server.port,
        dbname: service.database,
        ...(needsSessionPool(service.client) ? { sessionPoolSize: sessionClients(service, placement) } : {}),
    };
    if (!server.replicaHost) {
        return [primary];
    }
    return [primary, { ...primary, name: `${service.database}${READ_ONLY_SUFFIX}`, host: server.replicaHost }];
}

/**
 * A service's connection to a PgBouncer. PgBouncer does not terminate client TLS here (the traffic stays on the pod
 * network or on loopback), so the app connects without TLS; PgBouncer uses TLS towards RDS.
 */
export function pgbouncerConnection(
    server: DatabaseSpec,
    service: ServiceSpec,
    host: pulumi.Input<string>,
    port: pulumi.Input<number>,
    values: Record<string, unknown>,
    networkPath: NetworkPath,
): ServiceConnection {
    const read = server.replicaHost ? { host, port, database: `${service.database}${READ_ONLY_SUFFIX}` } : undefined;
    return serviceConnection({ host, port, database: service.database }, { sslmode: "disable" }, read, values, networkPath);
}
