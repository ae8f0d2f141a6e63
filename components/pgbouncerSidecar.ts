// velure:pooling:PgBouncerSidecar: the PgBouncer that runs inside each pod of one service, on 127.0.0.1.
// The component declares its config and userlist in the service's namespace, and hands the container
// and volumes to the service's Helm release through the chart's hooks (chartValues).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { BudgetLine, boundedRollout, podsLine, rolloutPods } from "./connectionBudget";
import {
    PGBOUNCER_UID,
    PgBouncerConfigArgs,
    assertServerCaBundle,
    exporterContainer,
    pgbouncerConfigObjects,
    podScrapeAnnotations,
    pgbouncerContainer,
    pgbouncerVolumes,
    renderPoolerIni,
    pgIsReadyProbe,
    sleepCommand,
    StopSequence,
} from "./pgbouncerPod";
import { POD_NAMES, ResourceSpec, SIDECAR_MARGIN_SECONDS, SIDECAR_SAFE_SHUTDOWN_SECONDS, sidecarGracePeriod } from "./specs";

/**
 * The sidecar's stop: no wait for its clients, which are the app's (stopped before it, or drained during its
 * preStop), then the safe shutdown's few seconds.
 */
export const SIDECAR_STOP: StopSequence = { clientsLeaveSeconds: 0, safeShutdownSeconds: SIDECAR_SAFE_SHUTDOWN_SECONDS };

export { SIDECAR_MARGIN_SECONDS, sidecarGracePeriod } from "./specs";

export const SIDECAR_HOST = "127.0.0.1";
export const SIDECAR_CONTAINER = POD_NAMES.containers.sidecar;

export interface PgBouncerSidecarArgs extends PgBouncerConfigArgs {
    namespace: pulumi.Input<string>;
    image: string;
    port: number;
    resources: ResourceSpec;
    /** true: a native sidecar (init container, restartPolicy Always); false: a classic container. */
    native: boolean;
    /** Seconds the app takes to drain after SIGTERM. */
    appDrainSeconds: number;
    /** Labels that select the service's pods (for the PodMonitor). */
    podLabels: Record<string, string>;
}

export function validatePgBouncerSidecarArgs(args: PgBouncerSidecarArgs): void {
    if (!Number.isInteger(args.port) || args.port < 1024 || args.port > 65535) {
        throw new Error(`PgBouncerSidecar: port must be an unprivileged TCP port (1024..65535), got ${args.port}`);
    }
    assertServerCaBundle("PgBouncerSidecar", args);
}

export function renderSidecarIni(args: PgBouncerSidecarArgs): string {
    return renderPoolerIni(args, { addr: SIDECAR_HOST, port: args.port });
}


/**
 * Worst case of one service: every pod it may ever run (HPA max, a rollout's surge and draining pod, an evicted one)
 * at its per-pod cap. `placement` is the pods' namespace/release.
 */
export function sidecarBudgetLine(service: string, placement: string, maxReplicas: number, maxDbConnections: number): BudgetLine {
    return podsLine(service, placement, rolloutPods(maxReplicas, "max pods"), maxDbConnections, "max_db_connections");
}

/**
 * Probes and stop of the sidecar. PgBouncer listens on 127.0.0.1 only, so every probe runs inside the container
 * (a tcpSocket probe would go to the pod's IP, where nothing listens).
 */
export function sidecarLifecycle(args: Pick<PgBouncerSidecarArgs, "native" | "port" | "appDrainSeconds">): Partial<k8s.types.input.core.v1.Container> {
    const probe = (period: number, failures: number) => pgIsReadyProbe(SIDECAR_HOST, args.port, period, failures);
    if (args.native) {
        // A native sidecar starts before the app (once its startup probe passes) and stops after it.
        return { restartPolicy: "Always", startupProbe: probe(1, 30), livenessProbe: probe(10, 6) };
    }
    return {
        // A classic sidecar starts together with the app: the pod is not Ready until PgBouncer answers.
        readinessProbe: probe(5, 2),
        livenessProbe: probe(10, 6),
        // It gets SIGTERM together with the app, so it waits out the app's drain first.
        lifecycle: { preStop: { exec: { command: sleepCommand(args.appDrainSeconds + SIDECAR_MARGIN_SECONDS) } } },
    };
}

export class PgBouncerSidecar extends pulumi.ComponentResource {
    public readonly host: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    public readonly ini: string;
    /** Values for the service's chart: the sidecar, its volumes, the checksum and the grace period. */
    public readonly chartValues: Record<string, unknown>;

    constructor(name: string, args: PgBouncerSidecarArgs, opts?: pulumi.ComponentResourceOptions) {
        super("velure:pooling:PgBouncerSidecar", name, {}, opts);
        validatePgBouncerSidecarArgs(args);
        this.ini = renderSidecarIni(args);
        const labels = { "app.kubernetes.io/name": "pgbouncer-sidecar", "app.kubernetes.io/instance": name, "app.kubernetes.io/part-of": "velure" };
        const files = pgbouncerConfigObjects(name, args.namespace, labels, this.ini, args, args.port, { parent: this });
        const container = this.container(args);
        const exporter = args.monitoring ? [exporterContainer(args.monitoring.exporterImage, files.authSecretName)] : [];
        const placement = args.native ? { initContainers: [container], extraContainers: exporter } : { extraContainers: [container, ...exporter] };
        const grace = sidecarGracePeriod(args.appDrainSeconds);
        this.chartValues = {
            ...placement,
            extraVolumes: pgbouncerVolumes(files.configMap.metadata.name, files.authSecretName),
            podAnnotations: { ...files.annotations, ...podScrapeAnnotations(args.monitoring) },
            // The userlist Secret is group-readable by PgBouncer's group only.
            podSecurityContext: { fsGroup: PGBOUNCER_UID },
            terminationGracePeriodSeconds: grace,
            // Every pod holds a pool: rollouts and scale-downs drain one pod at a time, as the budget counts.
            ...boundedRollout(grace),
            autoscaling: { behavior: { scaleDown: { policies: [{ type: "Pods", value: 1, periodSeconds: grace }] } } },
        };
        // Each pod holds a pool: a drain evicts them one at a time, as the budget counts (EVICTION_BOUND).
        new k8s.policy.v1.PodDisruptionBudget(
            `${name}-pdb`,
            { metadata: { namespace: args.namespace, labels }, spec: { maxUnavailable: 1, selector: { matchLabels: args.podLabels } } },
            { parent: this },
        );
        if (args.monitoring?.prometheusOperator) {
            new k8s.apiextensions.CustomResource(
                `${name}-podmonitor`,
                {
                    apiVersion: "monitoring.coreos.com/v1",
                    kind: "PodMonitor",
                    metadata: { namespace: args.namespace, labels: { ...args.monitoring.selectorLabels, ...labels } },
                    spec: { selector: { matchLabels: args.podLabels }, podMetricsEndpoints: [{ port: "metrics", interval: "30s" }] },
                },
                { parent: this },
            );
        }
        this.host = pulumi.output(SIDECAR_HOST);
        this.port = pulumi.output(args.port);
        this.registerOutputs({ host: this.host, port: this.port });
    }

    private container(args: PgBouncerSidecarArgs): k8s.types.input.core.v1.Container {
        return pgbouncerContainer({
            name: SIDECAR_CONTAINER,
            image: args.image,
            port: args.port,
            resources: args.resources,
            version: args.version,
            stop: SIDECAR_STOP,
            overrides: sidecarLifecycle(args),
        });
    }
}
