// mode = pgbouncer-cluster: maps the validated config to one PgBouncerCluster per database server, shared by the
// services whose database is there. One PgBouncer cannot serve two servers whose users share a name (both of
// velure's are velure_admin) with different passwords: its auth_file holds one password per user name.
import { podsEgress } from "../components/allowPolicy";
import { assertWithinBudget } from "../components/connectionBudget";
import {
    CLUSTER_PORT,
    PgBouncerCluster,
    PgBouncerClusterArgs,
    clientsLeaveSeconds,
    clusterBudgetLines,
    clusterPodLabels,
    renderClusterIni,
    validatePgBouncerClusterArgs,
} from "../components/pgbouncerCluster";
import { DatabaseSpec, VelureConfig, needsSessionPool, serverOf } from "../config";
import { pgbouncerBudget, poolName, serversInUse, servicesOn } from "./budget";
import { pgbouncerConnection, serviceDatabaseEntries, sessionBudgetLine } from "./pgbouncerDatabases";
import { declareMonitoring } from "./pgbouncerMonitoring";
import { DeclarePooler, PoolerOption, PoolerOutputs, soleAddress } from "./types";

/** The component's name and namespace: velure-pgbouncer in pgbouncerNamespace, or per server <…>-<server>. */
function clusterPlacement(config: VelureConfig, server: DatabaseSpec): { name: string; namespace: string } {
    const suffix = server.name ? `-${server.name}` : "";
    return { name: `velure-pgbouncer${suffix}`, namespace: `${config.pgbouncer.namespace}${suffix}` };
}

export function pgbouncerClusterArgs(config: VelureConfig, server: DatabaseSpec): PgBouncerClusterArgs {
    const { pgbouncer } = config;
    const services = servicesOn(config, server);
    return {
        namespace: clusterPlacement(config, server).namespace,
        replicas: pgbouncer.replicas,
        image: pgbouncer.image,
        version: pgbouncer.version,
        tuning: pgbouncer.tuning,
        databases: services.flatMap((s) => serviceDatabaseEntries(server, s, "cluster")),
        user: server.user,
        credentials: server.credentials,
        serverCaBundle: pgbouncer.serverCaBundle,
        clientNamespaces: [...new Set(services.map((s) => s.namespace))],
        databasePort: server.port,
        databaseCidrs: server.cidrs,
        resources: pgbouncer.resources,
        drainSeconds: pgbouncer.drainSeconds,
        clientsLeaveSeconds: clientsLeaveSeconds(services.map((s) => s.client.maxLifetimeSeconds)),
        monitoring: config.monitoring,
    };
}

/** Without cidrs the NetworkPolicy cannot name the database (a DNS name), so it opens the port to every address. */
function openEgressWarning(server: DatabaseSpec, args: PgBouncerClusterArgs): string[] {
    if (args.databaseCidrs.length > 0) {
        return [];
    }
    const key = server.name ? `${server.at}.cidrs` : "databaseCidrs";
    return [
        `${key}: empty, so the central PgBouncer's NetworkPolicy lets it reach port ${args.databasePort} on any address; ` +
            `set ${key} to the database subnets' CIDR blocks`,
    ];
}

export const pgbouncerClusterOption: PoolerOption = (config) => {
    const servers = serversInUse(config);
    const args = new Map(servers.map((server) => [server.name, pgbouncerClusterArgs(config, server)]));
    for (const a of args.values()) {
        validatePgBouncerClusterArgs(a);
        renderClusterIni(a);
    }
    const budget = pgbouncerBudget(config, (server, services, readOnly) => {
        const pooled = services.filter((s) => !needsSessionPool(s.client));
        const session = services.filter((s) => needsSessionPool(s.client));
        return [
            ...clusterBudgetLines(
                clusterPlacement(config, server).namespace,
                config.pgbouncer.replicas,
                config.pgbouncer.tuning,
                pooled.map((s) => poolName(s.database, readOnly)),
                (args.get(server.name) as PgBouncerClusterArgs).clientsLeaveSeconds,
            ),
            // Each client connection holds one server connection, on whichever replica it reached: the pods' clients bound them.
            ...session.map((s) => sessionBudgetLine(s, poolName(s.database, readOnly))),
        ];
    });
    assertWithinBudget(
        budget,
        "Lower velure-pooling:pgbouncerReplicas, pgbouncerDefaultPoolSize + pgbouncerReservePoolSize " +
            "(or pgbouncerMaxDbConnections), or raise the server's max connections to the instance's real limit.",
    );
    const declare: DeclarePooler = ({ provider }) => {
        const clusters = new Map(
            servers.map((server) => [server.name, new PgBouncerCluster(clusterPlacement(config, server).name, args.get(server.name) as PgBouncerClusterArgs, { providers: [provider] })]),
        );
        const namespaces = servers.map((server) => clusterPlacement(config, server).namespace);
        const selector = namespaces.length === 1 ? `namespace="${namespaces[0]}"` : `namespace=~"${namespaces.join("|")}"`;
        declareMonitoring(config, "velure PgBouncer", selector, budget, provider);
        const outputs: PoolerOutputs = {
            ...soleAddress([...clusters.values()]),
            ready: [...clusters.values()],
            connectionFor: (service) => {
                const server = serverOf(config, service);
                const cluster = clusters.get(server.name) as PgBouncerCluster;
                const placement = clusterPlacement(config, server);
                // The apps reach the central PgBouncer's pods, in its namespace, on its port: nothing else.
                const path = { egress: [podsEgress(placement.namespace, clusterPodLabels(placement.name), CLUSTER_PORT)], ingress: [] };
                return pgbouncerConnection(server, service, cluster.host, cluster.port, {}, path);
            },
        };
        return outputs;
    };
    return { budget, declare, warnings: servers.flatMap((server) => openEgressWarning(server, args.get(server.name) as PgBouncerClusterArgs)) };
};
