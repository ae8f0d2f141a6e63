// mode = pgbouncer-sidecar: one PgBouncerSidecar per service, reached by the app on 127.0.0.1.
import * as pulumi from "@pulumi/pulumi";
import { NetworkPath, addressesEgress, exporterIngress } from "../components/allowPolicy";
import { assertWithinBudget } from "../components/connectionBudget";
import { EXPORTER_PORT } from "../components/specs";
import {
    PgBouncerSidecar,
    PgBouncerSidecarArgs,
    SIDECAR_HOST,
    renderSidecarIni,
    sidecarBudgetLine,
    validatePgBouncerSidecarArgs,
} from "../components/pgbouncerSidecar";
import { DatabaseSpec, ServiceSpec, VelureConfig, needsSessionPool, serverOf, serviceNamespaceNames } from "../config";
import { pgbouncerBudget, poolName } from "./budget";
import { pgbouncerConnection, serviceDatabaseEntries, sessionBudgetLine } from "./pgbouncerDatabases";
import { declareMonitoring } from "./pgbouncerMonitoring";
import { DeclarePooler, PoolerOption, ServiceConnection } from "./types";

export function pgbouncerSidecarArgs(config: VelureConfig, service: ServiceSpec, namespace: pulumi.Input<string>): PgBouncerSidecarArgs {
    const { pgbouncer, sidecar } = config;
    const server = serverOf(config, service);
    return {
        namespace,
        image: pgbouncer.image,
        version: pgbouncer.version,
        tuning: pgbouncer.tuning,
        databases: serviceDatabaseEntries(server, service, "sidecar"),
        user: server.user,
        credentials: server.credentials,
        serverCaBundle: pgbouncer.serverCaBundle,
        port: sidecar.port,
        resources: sidecar.resources,
        native: sidecar.native,
        appDrainSeconds: sidecar.appDrainSeconds,
        // The shipped chart's selector label; a chart of your own must set it too (see the README).
        podLabels: { "app.kubernetes.io/instance": service.releaseName },
        monitoring: config.monitoring,
    };
}

/**
 * The sidecar reaches the database itself (its subnets' CIDRs, or any address without them: a warning says so) and
 * Prometheus scrapes its exporter; the app's own traffic to it stays on the pod's loopback, which no policy sees.
 */
function sidecarPath(config: VelureConfig, server: DatabaseSpec): NetworkPath {
    return {
        egress: [addressesEgress(server.cidrs, server.port)],
        ingress: config.monitoring ? [exporterIngress(config.monitoring.namespace, EXPORTER_PORT)] : [],
    };
}

export const pgbouncerSidecarOption: PoolerOption = (config) => {
    for (const service of config.services) {
        const args = pgbouncerSidecarArgs(config, service, service.namespace);
        validatePgBouncerSidecarArgs(args);
        renderSidecarIni(args);
    }
    const maxDb = config.pgbouncer.tuning.maxDbConnections;
    const budget = pgbouncerBudget(config, (_server, services, readOnly) =>
        services.map((s) =>
            needsSessionPool(s.client)
                ? sessionBudgetLine(s, poolName(s.database, readOnly))
                : sidecarBudgetLine(readOnly ? `${s.name} → ${poolName(s.database, true)}` : s.name, `${s.namespace}/${s.releaseName}`, s.maxReplicas, maxDb),
        ),
    );
    assertWithinBudget(
        budget,
        "Every pod has its own pool: lower the services' maxReplicas, pgbouncerDefaultPoolSize + pgbouncerReservePoolSize " +
            "(or pgbouncerMaxDbConnections), or use mode pgbouncer-cluster, whose pool does not grow with the pods.",
    );
    const declare: DeclarePooler = ({ provider, serviceNamespaces }) => {
        const sidecars: PgBouncerSidecar[] = [];
        const connections = new Map<string, ServiceConnection>();
        for (const service of config.services) {
            const args = pgbouncerSidecarArgs(config, service, serviceNamespaces[service.namespace]);
            const sidecar = new PgBouncerSidecar(`${service.releaseName}-pgbouncer`, args, { providers: [provider] });
            sidecars.push(sidecar);
            const server = serverOf(config, service);
            const connection = pgbouncerConnection(server, service, sidecar.host, sidecar.port, sidecar.chartValues, sidecarPath(config, server));
            connections.set(service.name, { ...connection, ownDisruptionBudget: args.podLabels });
        }
        const namespaces = serviceNamespaceNames(config).join("|");
        const pods = config.services.map((s) => s.releaseName).join("|");
        declareMonitoring(config, "velure PgBouncer sidecars", `namespace=~"${namespaces}", pod=~"(${pods})-.*"`, budget, provider);
        return {
            host: pulumi.output(SIDECAR_HOST),
            port: pulumi.output(config.sidecar.port),
            ready: sidecars,
            connectionFor: (service) => connections.get(service.name) as ServiceConnection,
        };
    };
    return { budget, declare, warnings: [] };
};
