// velure:pooling:PgBouncerCluster: one highly available PgBouncer Deployment in its own namespace,
// behind the Service pgbouncer.<namespace>.svc.cluster.local, shared by all services.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { DNS_EGRESS } from "./allowPolicy";
import { BudgetLine, boundedRollout, podsLine, rolloutPods, rolloutWaitSeconds } from "./connectionBudget";
import { PoolTuning } from "./pgbouncerIni";
import { RESTRICTED_POD_SECURITY } from "./podSecurity";
import {
    PgBouncerConfigArgs,
    assertServerCaBundle,
    PgBouncerConfigObjects,
    exporterContainer,
    podScrapeAnnotations,
    pgbouncerConfigObjects,
    pgbouncerContainer,
    pgbouncerVolumes,
    renderPoolerIni,
    restrictedPodSecurityContext,
    sleepCommand,
    StopSequence,
    stopSeconds,
    tcpProbe,
} from "./pgbouncerPod";
import { EXPORTER_PORT, ResourceSpec } from "./specs";

export const CLUSTER_PORT = 5432;
export const SERVICE_NAME = "pgbouncer";
/** The central pod's PgBouncer container (the tests exec into it). */
export const CENTRAL_CONTAINER = "pgbouncer";
/** Time for the endpoints controller and kube-proxy to take a stopping pod out of the Service. */
export const ENDPOINT_REMOVAL_SECONDS = 10;

export interface PgBouncerClusterArgs extends PgBouncerConfigArgs {
    namespace: string;
    replicas: number;
    image: string;
    /** Namespaces whose pods may reach PgBouncer. */
    clientNamespaces: string[];
    databasePort: number;
    /** The database's addresses; empty: PgBouncer may reach the database port on any address. */
    databaseCidrs: string[];
    resources: ResourceSpec;
    /** How long a stopping pod waits for in-flight transactions. */
    drainSeconds: number;
    /**
     * How long a stopping pod lets its clients leave by themselves first (their pools' connection lifetime, with
     * CLIENT_EXPIRY_MARGIN_SECONDS); 0: no such wait.
     */
    clientsLeaveSeconds: number;
}

/**
 * How a pod stops, in order: the preStop hook waits for the pod to leave the Service's endpoints (PgBouncer
 * still serves whatever arrives meanwhile) and ends; the kubelet then sends SIGTERM, and the entrypoint gives the
 * clients their time to leave by themselves (clientsLeaveSeconds: PgBouncer serves them on, no new client arrives),
 * then PgBouncer's safe shutdown (in-flight transactions finish) and past the drain time its immediate one (a
 * session pool's listener holds its server connection until then); the grace period covers all of it, with a
 * margin before the kubelet's SIGKILL.
 */
export interface ShutdownSequence extends StopSequence {
    endpointRemovalSeconds: number;
    terminationGracePeriodSeconds: number;
}

export const SHUTDOWN_MARGIN_SECONDS = 5;

/**
 * What a database/sql pool may take past its ConnMaxLifetime to close a connection: it closes an expired one the
 * next time it takes it, or at its cleaner's next run (at least a second apart).
 */
export const CLIENT_EXPIRY_MARGIN_SECONDS = 5;

export function shutdownSequence(drainSeconds: number, clientsLeaveSeconds: number): ShutdownSequence {
    const stop = { clientsLeaveSeconds, safeShutdownSeconds: drainSeconds };
    return {
        ...stop,
        endpointRemovalSeconds: ENDPOINT_REMOVAL_SECONDS,
        terminationGracePeriodSeconds: ENDPOINT_REMOVAL_SECONDS + stopSeconds(stop) + SHUTDOWN_MARGIN_SECONDS,
    };
}

/** The central pods' stop, from the component's args: what the Deployment renders, and what the tests run. */
export function clusterShutdownSequence(args: Pick<PgBouncerClusterArgs, "drainSeconds" | "clientsLeaveSeconds">): ShutdownSequence {
    return shutdownSequence(args.drainSeconds, args.clientsLeaveSeconds);
}

/** The clients' time to leave: the longest connection lifetime of the pools that reach the pod, 0 when none has one. */
export function clientsLeaveSeconds(lifetimes: (number | undefined)[]): number {
    const declared = lifetimes.filter((l): l is number => l !== undefined);
    return declared.length === 0 ? 0 : Math.max(...declared) + CLIENT_EXPIRY_MARGIN_SECONDS;
}

/** The preStop hook: only the wait to leave the endpoints, so that it always ends, with status 0, before SIGTERM. */
export function preStopCommand(sequence: ShutdownSequence): string[] {
    return sleepCommand(sequence.endpointRemovalSeconds);
}

/**
 * Between two steps of a rollout the Deployment waits minReadySeconds: the stop without the clients' time to leave,
 * so that a rollout takes minutes, not one connection lifetime per pod (and a first install is not held for one). A
 * pod whose clients take their time to leave may then still be stopping when the next is replaced: the budget
 * counts every old pod as draining (clusterBudgetLines).
 */
export function replacementGapSeconds(sequence: ShutdownSequence): number {
    return sequence.terminationGracePeriodSeconds - sequence.clientsLeaveSeconds;
}

/**
 * Worst-case server connections: every pod a rollout may run, at its max_db_connections, for every pool. The pods
 * draining: one when a pod stops within the wait between two steps; every replica when the clients are given
 * their time to leave (replacementGapSeconds).
 */
export function clusterBudgetLines(namespace: string, replicas: number, tuning: PoolTuning, pools: string[], clientsLeaveSeconds: number): BudgetLine[] {
    const rollout = rolloutPods(replicas, "replicas", clientsLeaveSeconds > 0 ? replicas : undefined);
    return pools.map((name) => podsLine(`pgbouncer → ${name}`, `${namespace}/${SERVICE_NAME}`, rollout, tuning.maxDbConnections, "max_db_connections"));
}

export function validatePgBouncerClusterArgs(args: PgBouncerClusterArgs): void {
    if (!Number.isInteger(args.replicas) || args.replicas < 1) {
        throw new Error(`PgBouncerCluster: replicas must be an integer >= 1, got ${args.replicas}`);
    }
    if (args.clientNamespaces.length === 0) {
        throw new Error("PgBouncerCluster: clientNamespaces must name at least one namespace");
    }
    assertServerCaBundle("PgBouncerCluster", args);
    if (!Number.isInteger(args.drainSeconds) || args.drainSeconds < 1) {
        throw new Error(`PgBouncerCluster: drainSeconds must be an integer >= 1, got ${args.drainSeconds}`);
    }
    if (!Number.isInteger(args.clientsLeaveSeconds) || args.clientsLeaveSeconds < 0) {
        throw new Error(`PgBouncerCluster: clientsLeaveSeconds must be an integer >= 0, got ${args.clientsLeaveSeconds}`);
    }
}

/** The rendered pgbouncer.ini of the central PgBouncer (pure: used by the component and by tests). */
export function renderClusterIni(args: PgBouncerClusterArgs): string {
    // "*": every address of the pod, IPv4 and IPv6 (dual-stack and IPv6-only clusters).
    return renderPoolerIni(args, { addr: "*", port: CLUSTER_PORT });
}

/** The provider's wait for the Deployment: its rollout one pod at a time, each a grace period (minReadySeconds) apart. */
function rolloutTimeouts(replicas: number, minReadySeconds: number): pulumi.CustomTimeouts {
    const wait = `${rolloutWaitSeconds(replicas, minReadySeconds)}s`;
    return { create: wait, update: wait };
}

/** The central PgBouncer's pods' labels (its Service, PDB and NetworkPolicy select them; so do the apps' allow policies). */
export function clusterPodLabels(name: string): Record<string, string> {
    return { "app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/instance": name, "app.kubernetes.io/part-of": "velure" };
}

function namespaceIn(namespaces: string[]) {
    return { namespaceSelector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: [...namespaces].sort() }] } };
}

export class PgBouncerCluster extends pulumi.ComponentResource {
    /** pgbouncer.<namespace>.svc.cluster.local */
    public readonly host: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    public readonly ini: string;

    constructor(name: string, args: PgBouncerClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("velure:pooling:PgBouncerCluster", name, {}, opts);
        validatePgBouncerClusterArgs(args);
        this.ini = renderClusterIni(args);
        const labels = clusterPodLabels(name);
        const child = { parent: this };

        const namespace = new k8s.core.v1.Namespace(
            `${name}-namespace`,
            { metadata: { name: args.namespace, labels: { ...labels, ...RESTRICTED_POD_SECURITY } } },
            child,
        );
        const ns = namespace.metadata.name;
        const files = pgbouncerConfigObjects(name, ns, labels, this.ini, args, CLUSTER_PORT, child);
        const deployment = this.deployment(name, args, ns, labels, files);
        const service = new k8s.core.v1.Service(
            `${name}-service`,
            {
                metadata: { name: SERVICE_NAME, namespace: ns, labels },
                spec: {
                    type: "ClusterIP",
                    selector: labels,
                    ports: [{ name: "postgres", port: CLUSTER_PORT, targetPort: "postgres", protocol: "TCP" }],
                },
            },
            child,
        );
        new k8s.policy.v1.PodDisruptionBudget(
            `${name}-pdb`,
            { metadata: { namespace: ns, labels }, spec: { maxUnavailable: 1, selector: { matchLabels: labels } } },
            child,
        );
        this.networkPolicy(name, args, ns, labels);
        this.scraping(name, args, ns, labels);

        this.host = pulumi.interpolate`${service.metadata.name}.${ns}.svc.cluster.local`;
        this.port = pulumi.output(CLUSTER_PORT);
        this.registerOutputs({ host: this.host, port: this.port, deployment: deployment.metadata.name });
    }

    private deployment(
        name: string,
        args: PgBouncerClusterArgs,
        ns: pulumi.Output<string>,
        labels: Record<string, string>,
        files: PgBouncerConfigObjects,
    ): k8s.apps.v1.Deployment {
        const sequence = clusterShutdownSequence(args);
        const container = pgbouncerContainer({
            name: CENTRAL_CONTAINER,
            image: args.image,
            port: CLUSTER_PORT,
            resources: args.resources,
            version: args.version,
            stop: sequence,
            overrides: {
                // Both probes only check that PgBouncer accepts TCP: tying them to the database would
                // restart every pod during an RDS failover.
                readinessProbe: tcpProbe(CLUSTER_PORT, 5, 2),
                livenessProbe: tcpProbe(CLUSTER_PORT, 10, 6),
                lifecycle: { preStop: { exec: { command: preStopCommand(sequence) } } },
            },
        });
        const spread = (topologyKey: string, whenUnsatisfiable: string) => ({
            maxSkew: 1,
            topologyKey,
            whenUnsatisfiable,
            labelSelector: { matchLabels: labels },
        });
        return new k8s.apps.v1.Deployment(
            `${name}-deployment`,
            {
                metadata: { name: SERVICE_NAME, namespace: ns, labels },
                spec: {
                    replicas: args.replicas,
                    selector: { matchLabels: labels },
                    ...boundedRollout(replacementGapSeconds(sequence)),
                    template: {
                        metadata: { labels, annotations: { ...files.annotations, ...podScrapeAnnotations(args.monitoring) } },
                        spec: {
                            automountServiceAccountToken: false,
                            enableServiceLinks: false,
                            terminationGracePeriodSeconds: sequence.terminationGracePeriodSeconds,
                            securityContext: restrictedPodSecurityContext(),
                            topologySpreadConstraints: [
                                spread("kubernetes.io/hostname", "DoNotSchedule"),
                                spread("topology.kubernetes.io/zone", "ScheduleAnyway"),
                            ],
                            containers: args.monitoring ? [container, exporterContainer(args.monitoring.exporterImage, files.authSecretName)] : [container],
                            volumes: pgbouncerVolumes(files.configMap.metadata.name, files.authSecretName),
                        },
                    },
                },
            },
            { parent: this, customTimeouts: rolloutTimeouts(args.replicas, replacementGapSeconds(sequence)) },
        );
    }

    /** Only the services' namespaces reach port 5432; PgBouncer itself reaches the cluster's DNS and the database. */
    private networkPolicy(name: string, args: PgBouncerClusterArgs, ns: pulumi.Output<string>, labels: Record<string, string>): void {
        new k8s.networking.v1.NetworkPolicy(
            `${name}-netpol`,
            {
                metadata: { namespace: ns, labels },
                spec: {
                    podSelector: { matchLabels: labels },
                    policyTypes: ["Ingress", "Egress"],
                    ingress: [
                        {
                            from: [namespaceIn(args.clientNamespaces)],
                            ports: [{ protocol: "TCP", port: CLUSTER_PORT }],
                        },
                        ...(args.monitoring
                            ? [{ from: [namespaceIn([args.monitoring.namespace])], ports: [{ protocol: "TCP", port: EXPORTER_PORT }] }]
                            : []),
                    ],
                    egress: [
                        DNS_EGRESS,
                        {
                            ...(args.databaseCidrs.length > 0 ? { to: args.databaseCidrs.map((cidr) => ({ ipBlock: { cidr } })) } : {}),
                            ports: [{ protocol: "TCP", port: args.databasePort }],
                        },
                    ],
                },
            },
            { parent: this },
        );
    }

    /** With the Prometheus Operator: a metrics Service and its ServiceMonitor. Without: pod annotations. */
    private scraping(name: string, args: PgBouncerClusterArgs, ns: pulumi.Output<string>, labels: Record<string, string>): void {
        if (!args.monitoring?.prometheusOperator) {
            return;
        }
        const metricsLabels = { ...labels, "app.kubernetes.io/component": "metrics" };
        new k8s.core.v1.Service(
            `${name}-metrics`,
            {
                metadata: { name: `${SERVICE_NAME}-metrics`, namespace: ns, labels: metricsLabels },
                spec: { type: "ClusterIP", selector: labels, ports: [{ name: "metrics", port: EXPORTER_PORT, targetPort: "metrics", protocol: "TCP" }] },
            },
            { parent: this },
        );
        new k8s.apiextensions.CustomResource(
            `${name}-servicemonitor`,
            {
                apiVersion: "monitoring.coreos.com/v1",
                kind: "ServiceMonitor",
                metadata: { namespace: ns, labels: { ...args.monitoring.selectorLabels, ...labels } },
                spec: { selector: { matchLabels: metricsLabels }, endpoints: [{ port: "metrics", interval: "30s" }] },
            },
            { parent: this },
        );
    }
}
