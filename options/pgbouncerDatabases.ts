// The [databases] entries and the env that both PgBouncer options give a service.
import * as pulumi from "@pulumi/pulumi";
import { DatabaseEntry } from "../components/pgbouncerIni";
import { READ_ONLY_SUFFIX } from "../components/specs";
import { DatabaseSpec, ServiceSpec } from "../config";
import { ServiceConnection, serviceConnection } from "./types";

/** A service's pooler entries on its own server: its database, and <database>_ro on the server's read replica. */
export function serviceDatabaseEntries(server: DatabaseSpec, service: ServiceSpec): DatabaseEntry[] {
    const primary = { name: service.database, host: server.host, port: server.port, dbname: service.database };
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
): ServiceConnection {
    const read = server.replicaHost ? { host, port, database: `${service.database}${READ_ONLY_SUFFIX}` } : undefined;
    return serviceConnection({ host, port, database: service.database }, { sslmode: "disable" }, read, values);
}
