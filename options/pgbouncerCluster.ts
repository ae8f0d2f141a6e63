// mode = pgbouncer-cluster: maps the validated config to one PgBouncerCluster shared by all services.
import { assertWithinBudget } from "../components/connectionBudget";
import {
    PgBouncerCluster,
    PgBouncerClusterArgs,
    clusterBudgetLines,
    renderClusterIni,
    validatePgBouncerClusterArgs,
} from "../components/pgbouncerCluster";
import { VelureConfig, serviceNamespaceNames } from "../config";
import { pgbouncerBudget, poolName } from "./budget";
import { pgbouncerServiceEnv, serviceDatabaseEntries } from "./pgbouncerDatabases";
import { declareMonitoring } from "./pgbouncerMonitoring";
import { DeclarePooler, PoolerOption, sharedEndpoint } from "./types";

export function pgbouncerClusterArgs(config: VelureConfig): PgBouncerClusterArgs {
    const { database, pgbouncer, services } = config;
    return {
        namespace: pgbouncer.namespace,
        replicas: pgbouncer.replicas,
        image: pgbouncer.image,
        version: pgbouncer.version,
        tuning: pgbouncer.tuning,
        databases: services.flatMap((s) => serviceDatabaseEntries(database, s)),
        user: database.user,
        password: database.password,
        serverCaBundle: pgbouncer.serverCaBundle,
        clientNamespaces: serviceNamespaceNames(config),
        databasePort: database.port,
        databaseCidrs: database.cidrs,
        resources: pgbouncer.resources,
        drainSeconds: pgbouncer.drainSeconds,
        monitoring: config.monitoring,
    };
}

/** Without databaseCidrs the NetworkPolicy cannot name the database (a DNS name), so it opens the port to every address. */
function openEgressWarning(args: PgBouncerClusterArgs): string[] {
    if (args.databaseCidrs.length > 0) {
        return [];
    }
    return [
        `databaseCidrs: empty, so the central PgBouncer's NetworkPolicy lets it reach port ${args.databasePort} on any address; ` +
            "set databaseCidrs to the database subnets' CIDR blocks",
    ];
}

export const pgbouncerClusterOption: PoolerOption = (config) => {
    const args = pgbouncerClusterArgs(config);
    validatePgBouncerClusterArgs(args);
    renderClusterIni(args);
    const budget = pgbouncerBudget(config, (readOnly) =>
        clusterBudgetLines(args.namespace, args.replicas, args.tuning, config.services.map((s) => poolName(s.database, readOnly))),
    );
    assertWithinBudget(
        budget,
        "Lower velure-pooling:pgbouncerReplicas, pgbouncerDefaultPoolSize + pgbouncerReservePoolSize " +
            "(or pgbouncerMaxDbConnections), or raise databaseMaxConnections to the instance's real limit.",
    );
    const declare: DeclarePooler = ({ provider }) => {
        const cluster = new PgBouncerCluster("velure-pgbouncer", args, { providers: [provider] });
        declareMonitoring(config, "velure PgBouncer", `namespace="${args.namespace}"`, budget, provider);
        return sharedEndpoint(cluster, (service) => pgbouncerServiceEnv(config.database, service, cluster.host, cluster.port));
    };
    return { budget, declare, warnings: openEgressWarning(args) };
};
