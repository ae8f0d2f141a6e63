// The Helm post-renderer's work: puts what the pooler needs (PgBouncer and its exporter as sidecars, their volumes,
// the RDS Proxy CA, the annotations that roll the pods, the grace period and the rollout the budget counts on) into
// the one Deployment of a chart that has no values for it (velure's own charts). Pure: manifests in, manifests out.
import * as YAML from "yaml";
import { AllowPolicy, renderAllowPolicy } from "../components/allowPolicy";

/**
 * What the pods need, in the shape of charts/velure-service's values (the pooler builds it once, for either way in):
 * initContainers go first, extraContainers after the chart's, extraVolumes beside the chart's, extraVolumeMounts into
 * each of the chart's containers.
 */
export interface PodPatch {
    initContainers?: Container[];
    extraContainers?: Container[];
    extraVolumes?: Named[];
    extraVolumeMounts?: Named[];
    podAnnotations?: Record<string, string>;
    podSecurityContext?: { fsGroup?: number };
    terminationGracePeriodSeconds?: number;
    strategy?: unknown;
    minReadySeconds?: number;
    autoscaling?: { behavior?: Record<string, unknown> };
    /**
     * The labels by which the pooler's own PodDisruptionBudget (the sidecar's: one pod at a time, as the budget counts)
     * and PodMonitor select these pods. They are put on the pods when the chart does not set them (velure-publish-order
     * labels its pods `app` only; the Deployment's selector stays), and the chart's PDBs are dropped: Kubernetes
     * refuses to evict a pod that two budgets select.
     */
    ownDisruptionBudget?: Record<string, string>;
    /**
     * The chart's container reads the URL from `key` (and the read replica's from `readKey`) of `secretName`, a
     * Secret its owner writes; its pods read `modeKey` (and `readKey`) of the program's own Secret `target` instead
     * (see poolerUrlSecretName and modeUrlKey in config/connection.ts).
     */
    urlKey?: { secretName: string; key: string; readKey?: string; target: string; modeKey: string };
    /**
     * The NetworkPolicy that opens the mode's path beside the chart's deny-all (serviceNetworkPolicies), put among the
     * chart's objects with the pods the Deployment selects.
     */
    allowPolicy?: AllowPolicy;
}

interface Named {
    name: string;
    [key: string]: unknown;
}

interface Container extends Named {
    ports?: { containerPort: number }[];
    volumeMounts?: Named[];
}

interface KubeObject {
    apiVersion?: string;
    kind?: string;
    metadata?: { name?: string; annotations?: Record<string, string> };
    spec?: Record<string, any>;
}

/** Kubernetes' default grace period, when the chart sets none. */
const DEFAULT_GRACE_SECONDS = 30;

export class PostRenderError extends Error {}

function names(list: Named[] | undefined): string[] {
    return (list ?? []).map((item) => item.name);
}

function refuseTaken(release: string, what: string, present: string[], added: string[]): void {
    const taken = added.filter((name) => present.includes(name));
    if (taken.length > 0) {
        throw new PostRenderError(`${release}: the chart's pod already has ${what} ${taken.join(", ")}, which the pooler adds; rename it in the chart`);
    }
}

function ports(containers: Container[]): number[] {
    return containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
}

/** What the chart's pod must still allow for the containers the pooler adds. */
function checkPod(release: string, pod: Record<string, any>, patch: PodPatch): void {
    const added = [...(patch.initContainers ?? []), ...(patch.extraContainers ?? [])];
    const chart: Container[] = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
    refuseTaken(release, "containers", names(chart), names(added));
    refuseTaken(release, "volumes", names(pod.volumes), names(patch.extraVolumes));
    refuseTaken(release, "mounts of", chart.flatMap((c) => names(c.volumeMounts)), names(patch.extraVolumeMounts));
    const clash = ports(added).filter((p) => ports(chart).includes(p));
    if (clash.length > 0) {
        throw new PostRenderError(`${release}: the chart's pod already listens on port ${clash.join(", ")}, which PgBouncer takes; set pgbouncerSidecarPort to another`);
    }
    if (pod.hostNetwork && added.length > 0) {
        throw new PostRenderError(`${release}: the chart's pod uses hostNetwork, where a PgBouncer sidecar on 127.0.0.1 would be the node's and clash between pods; use mode pgbouncer-cluster`);
    }
}

/** A label the chart gives its pods with another value than the pooler's objects select: neither can be changed safely. */
function refuseOtherLabels(release: string, chartLabels: Record<string, string>, podLabels: Record<string, string>): void {
    for (const [key, value] of Object.entries(podLabels)) {
        if (chartLabels[key] !== undefined && chartLabels[key] !== value) {
            throw new PostRenderError(`${release}: the chart labels its pods ${key}=${chartLabels[key]}, but the sidecar's PodDisruptionBudget and PodMonitor select ${key}=${value}`);
        }
    }
}

function patchPod(template: Record<string, any>, patch: PodPatch): void {
    const pod = template.spec;
    const chartContainers: Container[] = pod.containers ?? [];
    for (const container of chartContainers) {
        if (patch.extraVolumeMounts?.length) {
            container.volumeMounts = [...(container.volumeMounts ?? []), ...patch.extraVolumeMounts];
        }
    }
    if (patch.initContainers?.length) {
        pod.initContainers = [...patch.initContainers, ...(pod.initContainers ?? [])];
    }
    if (patch.extraContainers?.length) {
        pod.containers = [...chartContainers, ...patch.extraContainers];
    }
    if (patch.extraVolumes?.length) {
        pod.volumes = [...(pod.volumes ?? []), ...patch.extraVolumes];
    }
    if (patch.ownDisruptionBudget) {
        template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...patch.ownDisruptionBudget } };
    }
    if (patch.podAnnotations) {
        template.metadata = { ...template.metadata, annotations: { ...template.metadata?.annotations, ...patch.podAnnotations } };
    }
    // A chart's own fsGroup stays: every container of the pod runs with it as a supplementary group, so PgBouncer can
    // read the group-readable userlist under either.
    if (patch.podSecurityContext?.fsGroup !== undefined && pod.securityContext?.fsGroup === undefined) {
        pod.securityContext = { ...pod.securityContext, fsGroup: patch.podSecurityContext.fsGroup };
    }
    if (patch.terminationGracePeriodSeconds !== undefined) {
        pod.terminationGracePeriodSeconds = Math.max(pod.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS, patch.terminationGracePeriodSeconds);
    }
}

/** The chart's containers' references to `key` of Secret `name`. */
function secretKeyRefs(pod: Record<string, any>, name: string, key: string): { name: string; key: string }[] {
    return [...(pod.initContainers ?? []), ...(pod.containers ?? [])]
        .flatMap((c: Container & { env?: any[] }) => c.env ?? [])
        .map((e) => e.valueFrom?.secretKeyRef)
        .filter((ref) => ref?.name === name && ref?.key === key);
}

/**
 * Points every chart container that reads the URL at the mode's key of the program's Secret (and the read URL at its
 * read key there); refuses a chart that does not read the URL at all.
 */
function redirectUrl(release: string, pod: Record<string, any>, urlKey: NonNullable<PodPatch["urlKey"]>): void {
    const refs = secretKeyRefs(pod, urlKey.secretName, urlKey.key);
    if (refs.length === 0) {
        throw new PostRenderError(
            `${release}: no container of the chart's pod reads key ${urlKey.key} of Secret ${urlKey.secretName}, which services[].connection names; ` +
                "set secretName and key to the Secret and key the chart reads its database URL from",
        );
    }
    for (const ref of refs) {
        Object.assign(ref, { name: urlKey.target, key: urlKey.modeKey });
    }
    for (const ref of urlKey.readKey ? secretKeyRefs(pod, urlKey.secretName, urlKey.readKey) : []) {
        ref.name = urlKey.target;
    }
}

function patchDeployment(release: string, deployment: KubeObject, patch: PodPatch): void {
    const spec = deployment.spec as Record<string, any>;
    if (patch.urlKey) {
        redirectUrl(release, spec.template.spec, patch.urlKey);
    }
    patchPod(spec.template, patch);
    if (patch.strategy !== undefined) {
        spec.strategy = patch.strategy;
    }
    if (patch.minReadySeconds !== undefined) {
        spec.minReadySeconds = patch.minReadySeconds;
    }
}

function scalesDeployment(object: KubeObject, deployment: string): boolean {
    const target = object.spec?.scaleTargetRef;
    return object.kind === "HorizontalPodAutoscaler" && target?.kind === "Deployment" && target?.name === deployment;
}

/** A PodDisruptionBudget whose selector picks the Deployment's pods (matchLabels within the pod's labels). */
function selectsPods(object: KubeObject, podLabels: Record<string, string>): boolean {
    if (object.kind !== "PodDisruptionBudget") {
        return false;
    }
    const selector = object.spec?.selector ?? {};
    const labels: Record<string, string> = selector.matchLabels ?? {};
    const noExpressions = (selector.matchExpressions ?? []).length === 0;
    return noExpressions && Object.entries(labels).every(([k, v]) => podLabels[k] === v);
}

function parseManifests(release: string, manifests: string): KubeObject[] {
    const docs = YAML.parseAllDocuments(manifests);
    const errors = docs.flatMap((d) => d.errors);
    if (errors.length > 0) {
        throw new PostRenderError(`${release}: the chart rendered YAML that does not parse: ${errors[0].message}`);
    }
    return docs.map((d) => d.toJS() as KubeObject | null).filter((o): o is KubeObject => o !== null && typeof o === "object");
}

/** The chart's manifests with the patch in its Deployment, its HPA and (with ownDisruptionBudget) without its PDBs. */
export function postRender(release: string, manifests: string, patch: PodPatch): string {
    const objects = parseManifests(release, manifests);
    const deployments = objects.filter((o) => o.kind === "Deployment");
    if (deployments.length !== 1) {
        const found = deployments.map((d) => d.metadata?.name).join(", ") || "none";
        throw new PostRenderError(`${release}: expected the chart to render exactly one Deployment (the service's pods) to put the pooler into, found ${found}`);
    }
    const [deployment] = deployments;
    const name = deployment.metadata?.name ?? "";
    checkPod(release, deployment.spec?.template?.spec ?? {}, patch);
    refuseOtherLabels(release, deployment.spec?.template?.metadata?.labels ?? {}, patch.ownDisruptionBudget ?? {});
    patchDeployment(release, deployment, patch);
    for (const hpa of objects.filter((o) => scalesDeployment(o, name))) {
        if (patch.autoscaling?.behavior) {
            (hpa.spec as Record<string, any>).behavior = { ...hpa.spec?.behavior, ...patch.autoscaling.behavior };
        }
    }
    const podLabels = deployment.spec?.template?.metadata?.labels ?? {};
    const kept = patch.ownDisruptionBudget ? objects.filter((o) => !selectsPods(o, podLabels)) : objects;
    const namespace = release.split("/")[0];
    const added = patch.allowPolicy ? [renderAllowPolicy(patch.allowPolicy, namespace, deployment.spec?.selector?.matchLabels ?? {})] : [];
    return [...kept, ...added].map((o) => YAML.stringify(o, { lineWidth: 0 })).join("---\n");
}
