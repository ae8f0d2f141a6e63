// The velure services' Helm releases, wired to whichever pooler the stack chose.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { rolloutWaitSeconds } from "../components/connectionBudget";
import { podVersionAnnotations } from "../components/pgbouncerPod";
import { RESTRICTED_POD_SECURITY } from "../components/podSecurity";
import { CREDENTIALS_PASSWORD_KEY, Credentials } from "../components/specs";
import { PASSWORD_TEMPLATE, externalSecret } from "../components/externalSecret";
import { ChartSource, ServiceSpec, VelureConfig, secretIf, serverOf, serviceNamespaceNames } from "../config";
import { PoolerOutputs, ServiceConnection, ServiceCredentials } from "../options/types";

export { CREDENTIALS_PASSWORD_KEY } from "../components/specs";

/** One Namespace per distinct service namespace, unless they already exist. */
export function serviceNamespaces(config: VelureConfig, provider: k8s.Provider): Record<string, pulumi.Input<string>> {
    return Object.fromEntries(
        serviceNamespaceNames(config).map((name) => {
            if (!config.kubernetes.createServiceNamespaces) {
                return [name, name];
            }
            const ns = new k8s.core.v1.Namespace(
                `velure-namespace-${name}`,
                { metadata: { name, labels: { ...RESTRICTED_POD_SECURITY } } },
                { provider },
            );
            return [name, ns.metadata.name];
        }),
    );
}

function chartArgs(chart: ChartSource): Pick<k8s.helm.v3.ReleaseArgs, "chart" | "version" | "repositoryOpts"> {
    if ("path" in chart) {
        return { chart: chart.path };
    }
    return { chart: chart.name, version: chart.version, repositoryOpts: { repo: chart.repo } };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value) && !pulumi.Output.isInstance(value);
}

/**
 * Merges chart values: `over` (the program's) wins, objects merge key by key, and lists are joined, `over`'s entries
 * first: a service's own init containers, extra containers, volumes and env stay beside the program's (whose names
 * the config keeps free, POD_NAMES), and a native sidecar starts before the service's own init containers.
 */
export function mergeValues(under: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
    const merged: Record<string, unknown> = { ...under };
    for (const [key, value] of Object.entries(over)) {
        const base = merged[key];
        if (Array.isArray(base) && Array.isArray(value)) {
            merged[key] = [...value, ...base];
        } else {
            merged[key] = isPlainObject(base) && isPlainObject(value) ? mergeValues(base, value) : value;
        }
    }
    return merged;
}

function releaseValues(
    config: VelureConfig,
    service: ServiceSpec,
    connection: ServiceConnection,
    credentials: ServiceCredentials,
): Record<string, unknown> {
    const wiring = {
        fullnameOverride: service.releaseName,
        image: service.image,
        replicaCount: service.replicas,
        containerPort: service.containerPort,
        ...(service.resources ? { resources: service.resources } : {}),
        autoscaling: {
            enabled: service.maxReplicas > service.replicas,
            minReplicas: service.replicas,
            maxReplicas: service.maxReplicas,
        },
        env: {
            POSTGRES_HOST: connection.host,
            POSTGRES_PORT: pulumi.output(connection.port).apply(String),
            POSTGRES_DB: service.database,
            POSTGRES_USER: serverOf(config, service).user,
            ...connection.env,
        },
        extraEnv: [{ name: CREDENTIALS_PASSWORD_KEY, valueFrom: { secretKeyRef: { name: credentials.name, key: CREDENTIALS_PASSWORD_KEY } } }],
        // The app reads the password from env at start: a new password rolls the pods.
        podAnnotations: podVersionAnnotations({}, { "db-credentials": credentials.resource }),
    };
    return mergeValues(mergeValues(service.values, wiring), connection.values);
}

/**
 * Helm's wait (and, with atomic, the moment it rolls back): the service's rollout at its largest (the HPA's maximum),
 * one pod at a time, each waiting the minReadySeconds the pooler's values set.
 */
function releaseTimeoutSeconds(service: ServiceSpec, connection: ServiceConnection): number {
    const minReadySeconds = connection.values.minReadySeconds;
    return rolloutWaitSeconds(service.maxReplicas, typeof minReadySeconds === "number" ? minReadySeconds : 0);
}

/**
 * The Secret the app reads its password from (key POSTGRES_PASSWORD), never a plain value in the release: ours from
 * Pulumi's config, or the one External Secrets Operator writes from Secrets Manager (then the password never passes
 * through Pulumi). Fixed name, updated in place: a replaced Secret would be deleted under the pods of a release that
 * Helm rolled back.
 */
function serviceCredentials(service: ServiceSpec, credentials: Credentials, namespace: pulumi.Input<string>, provider: k8s.Provider): ServiceCredentials {
    const name = `${service.releaseName}-db-credentials`;
    const labels = { "app.kubernetes.io/part-of": "velure" };
    if (credentials.source === "pulumi") {
        const secret = new k8s.core.v1.Secret(
            name,
            { metadata: { name, namespace, labels }, type: "Opaque", stringData: { [CREDENTIALS_PASSWORD_KEY]: credentials.password } },
            { provider },
        );
        return { name: secret.metadata.name, resource: secret };
    }
    const external = externalSecret(
        name,
        { namespace, labels, store: credentials.store, secretArn: credentials.secretArn, target: name, template: { data: { [CREDENTIALS_PASSWORD_KEY]: PASSWORD_TEMPLATE } } },
        { provider },
    );
    return { name: external.metadata.name, resource: external };
}

export function deployReleases(
    config: VelureConfig,
    pooler: PoolerOutputs,
    provider: k8s.Provider,
    namespaces: Record<string, pulumi.Input<string>>,
): Record<string, k8s.helm.v3.Release> {
    return Object.fromEntries(
        config.services.map((service) => {
            const namespace = namespaces[service.namespace];
            const connection = pooler.connectionFor(service);
            const credentials = serviceCredentials(service, serverOf(config, service).credentials, namespace, provider);
            const release = new k8s.helm.v3.Release(
                service.releaseName,
                {
                    name: service.releaseName,
                    namespace,
                    ...chartArgs(service.chart),
                    values: secretIf(config.secretServices, releaseValues(config, service, connection, credentials)),
                    atomic: true,
                    cleanupOnFail: true,
                    timeout: releaseTimeoutSeconds(service, connection),
                },
                // The pooler is ready (the central Deployment rolled out, the proxy's target registered) before a
                // release points at it. Pulumi deletes what the program no longer declares only after every create
                // and update has succeeded, so the old pooler outlives both releases' rollouts, and a failed
                // (atomic, rolled back) release leaves it in place. What a replaced object leaves behind is deleted
                // at the start of the next update, before any release can move off it: so nothing a pod reads is
                // ever replaced (fixed names, updated in place; see pgbouncerConfigObjects).
                { provider, dependsOn: [...pooler.ready, ...(pooler.readyFor?.(service, credentials) ?? [])] },
            );
            return [service.name, release];
        }),
    );
}
