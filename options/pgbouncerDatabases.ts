// The [databases] entries and the env that both PgBouncer options give a service.
import * as pulumi from "@pulumi/pulumi";
import { DatabaseEntry } from "../components/pgbouncerIni";
import { READ_ONLY_SUFFIX } from "../components/specs";
import { DatabaseSpec, ServiceSpec } from "../config";

/** A service's pooler entries on its own server: its database, and <database>_ro on the server's read replica. */
export function serviceDatabaseEntries(server: DatabaseSpec, service: ServiceSpec): DatabaseEntry[] {
    const primary = { name: service.database, host: server.host, port: server.port, dbname: service.database };
    if (!server.replicaHost) {
        return [primary];
    }
    return [primary, { ...primary, name: `${service.database}${READ_ONLY_SUFFIX}`, host: server.replicaHost }];
}

/**
 * The env of a service behind PgBouncer. PgBouncer does not terminate client TLS here (the traffic stays
 * on the pod network or on loopback), so the app connects without TLS; PgBouncer uses TLS towards RDS.
 */
export function pgbouncerServiceEnv(
    server: DatabaseSpec,
    service: ServiceSpec,
    host: pulumi.Input<string>,
    port: pulumi.Input<number>,
): Record<string, pulumi.Input<string>> {
    const env: Record<string, pulumi.Input<string>> = { POSTGRES_SSLMODE: "disable" };
    if (server.replicaHost) {
        env.POSTGRES_READ_HOST = host;
        env.POSTGRES_READ_PORT = pulumi.output(port).apply(String);
        env.POSTGRES_READ_DB = `${service.database}${READ_ONLY_SUFFIX}`;
    }
    return env;
}
