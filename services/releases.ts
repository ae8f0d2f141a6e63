// The velure services' Helm releases, wired to whichever pooler the stack chose.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { allowPolicyName } from "../components/allowPolicy";
import { rolloutWaitSeconds } from "../components/connectionBudget";
import { podVersionAnnotations } from "../components/pgbouncerPod";
import { RESTRICTED_POD_SECURITY } from "../components/podSecurity";
import { CREDENTIALS_PASSWORD_KEY, Credentials } from "../components/specs";
import { PASSWORD_TEMPLATE, externalSecret } from "../components/externalSecret";
import { UrlTarget, postgresUrl, postgresUrlTemplate } from "../components/connectionUrl";
import { ChartSource, ConnectionContract, DatabaseSpec, ServiceSpec, VelureConfig, secretIf, serverOf, serviceNamespaceNames, urlDriverParams } from "../config";
import { credentialsSecretName, modeUrlKey, poolerUrlSecretName } from "../config/connection";
import { AppTls, PoolerOutputs, ServiceConnection, ServiceCredentials, ServiceEndpoint } from "../options/types";
import { Deployed, DeployedUrl } from "../options/deployed";
import { PodPatch } from "./postRender";
import { postRendererCommand } from "./postRendererCommand";

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

/** The values every chart the program runs takes: the image, the replicas and the HPA's range, the app's resources. */
function commonValues(service: ServiceSpec): Record<string, unknown> {
    return {
        image: service.image,
        replicaCount: service.replicas,
        ...(service.resources ? { resources: service.resources } : {}),
        autoscaling: {
            enabled: service.maxReplicas > service.replicas,
            minReplicas: service.replicas,
            maxReplicas: service.maxReplicas,
        },
    };
}

/** The env contract (charts/velure-service): the connection as env, the pooler's containers through the chart's hooks. */
function envContractValues(
    config: VelureConfig,
    service: ServiceSpec,
    connection: ServiceConnection,
    credentials: ServiceCredentials,
): Record<string, unknown> {
    const wiring = {
        ...commonValues(service),
        fullnameOverride: service.releaseName,
        containerPort: service.containerPort,
        env: {
            POSTGRES_HOST: connection.host,
            POSTGRES_PORT: pulumi.output(connection.port).apply(String),
            POSTGRES_DB: service.database,
            // What auth-service's own DSN reads (it ignores POSTGRES_DB).
            POSTGRES_DATABASE_NAME: service.database,
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
    const name = credentialsSecretName(service.releaseName);
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

type UrlContract = Extract<ConnectionContract, { contract: "urlSecret" }>;

/** The URL's parts for one of the service's pools: the pooler's address, the server's user, the app's TLS. */
function urlTarget(server: DatabaseSpec, tls: AppTls, endpoint: ServiceEndpoint, driverParams: Record<string, string>): pulumi.Output<UrlTarget> {
    return pulumi.all([endpoint.host, endpoint.port]).apply(([host, port]) => ({
        user: server.user,
        host,
        port,
        database: endpoint.database,
        sslmode: tls.sslmode,
        ...(tls.rootCert ? { sslrootcert: tls.rootCert } : {}),
        ...(Object.keys(driverParams).length > 0 ? { driverParams } : {}),
    }));
}

/** The deployed mode and the URL a service's pods of it read, when the run switches away from it. */
function switchedFrom(deployed: Deployed, mode: string, service: ServiceSpec): { mode: string; url: DeployedUrl } | undefined {
    if (deployed.kind !== "pooler" || deployed.pooler.mode === mode) {
        return undefined;
    }
    const url = deployed.urls?.[service.name];
    return url ? { mode: deployed.pooler.mode, url } : undefined;
}

/**
 * The program's URL Secret's keys: the mode's key with this mode's URL, which the post-renderer points the pods at
 * (the read replica's under readKey); while a switch is deployed, the deployed mode's key with its URL, which the
 * old pods read until they are gone (its pooler lives as long: Pulumi deletes it after every update has succeeded).
 * The chart's own Secret is not among them: its owner keeps it, for any pod the post-renderer never saw.
 */
function urlKeys(
    config: VelureConfig,
    service: ServiceSpec,
    contract: UrlContract,
    connection: ServiceConnection,
    deployed: Deployed,
    render: (target: UrlTarget) => pulumi.Output<string> | string,
): Record<string, pulumi.Output<string>> {
    const server = serverOf(config, service);
    // The driver's parameters for a mode's pooler (none for the proxy reached directly).
    const paramsOf = (mode: string) => urlDriverParams(service.client, mode, config.pgbouncer.tuning.poolMode);
    const keyOf = (tls: AppTls, endpoint: ServiceEndpoint, params = paramsOf(config.mode)) =>
        urlTarget(server, tls, endpoint, params).apply((target) => pulumi.output(render(target)));
    const keys: Record<string, pulumi.Output<string>> = { [modeUrlKey(contract.key, config.mode)]: keyOf(connection.tls, connection) };
    if (contract.readKey && connection.read) {
        keys[contract.readKey] = keyOf(connection.tls, connection.read);
    }
    const before = switchedFrom(deployed, config.mode, service);
    if (before) {
        const { host, port, sslmode, sslrootcert } = before.url;
        keys[modeUrlKey(contract.key, before.mode)] = keyOf({ sslmode, ...(sslrootcert ? { rootCert: sslrootcert } : {}) }, { host, port, database: service.database }, paramsOf(before.mode));
    }
    return keys;
}

/**
 * The program's own Secret of the service's URLs (poolerUrlSecretName), updated in place when the pooler changes;
 * the Secret the chart names stays its owner's (velure's ExternalSecret's). With the password in Secrets Manager it
 * is an ExternalSecret's (the URL a template ESO fills in): the password never reaches Pulumi's state. Otherwise a
 * Secret of ours, its URL a Pulumi secret.
 */
function urlSecret(config: VelureConfig, service: ServiceSpec, contract: UrlContract, connection: ServiceConnection, deployed: Deployed, namespace: pulumi.Input<string>, provider: k8s.Provider): ServiceCredentials {
    const name = poolerUrlSecretName(service.releaseName);
    const labels = { "app.kubernetes.io/part-of": "velure", "app.kubernetes.io/managed-by": "velure-pooling" };
    const credentials = serverOf(config, service).credentials;
    const keys = (render: (target: UrlTarget) => pulumi.Output<string> | string) => urlKeys(config, service, contract, connection, deployed, render);
    if (credentials.source === "pulumi") {
        const password = credentials.password;
        const stringData = keys((target) => password.apply((p) => postgresUrl(target, p)));
        const secret = new k8s.core.v1.Secret(
            name,
            { metadata: { name, namespace, labels }, type: "Opaque", stringData: pulumi.secret(pulumi.output(stringData)) },
            { provider },
        );
        return { name: secret.metadata.name, resource: secret };
    }
    const external = externalSecret(
        name,
        { namespace, labels, store: credentials.store, secretArn: credentials.secretArn, target: name, template: { data: keys(postgresUrlTemplate) } },
        { provider },
    );
    return { name: external.metadata.name, resource: external };
}

/**
 * The urlSecret contract (velure's charts): the values every chart takes, the URL in the Secret the chart reads, and
 * the pooler's containers put into the chart's Deployment by a post-renderer, with an annotation that rolls the pods
 * when the URL changes (the app reads it at start).
 */
function urlContractRelease(
    config: VelureConfig,
    service: ServiceSpec,
    contract: UrlContract,
    connection: ServiceConnection,
    url: ServiceCredentials,
): { values: Record<string, unknown>; postrender: pulumi.Output<string> } {
    const values = connection.values as PodPatch;
    const patch = {
        ...values,
        ...(config.kubernetes.serviceNetworkPolicies ? { allowPolicy: pulumi.output(connection.networkPath).apply((path) => ({ name: allowPolicyName(service.releaseName), ...path })) } : {}),
        podAnnotations: { ...values.podAnnotations, ...podVersionAnnotations({}, { "db-url": url.resource }) },
        ...(connection.ownDisruptionBudget ? { ownDisruptionBudget: connection.ownDisruptionBudget } : {}),
        urlKey: {
            secretName: contract.secretName,
            key: contract.key,
            ...(contract.readKey ? { readKey: contract.readKey } : {}),
            target: poolerUrlSecretName(service.releaseName),
            modeKey: modeUrlKey(contract.key, config.mode),
        },
    };
    const release = `${service.namespace}/${service.releaseName}`;
    const postrender = pulumi.output(patch).apply((p) => postRendererCommand(release, p as PodPatch));
    return { values: mergeValues(service.values, commonValues(service)), postrender };
}

interface ReleaseWiring {
    /** The password Secret: the app's (env contract), or the proxy's login check's (rds-proxy); none otherwise. */
    credentials?: ServiceCredentials;
    values: Record<string, unknown>;
    /** The post-renderer's path (the urlSecret contract). */
    postrender?: pulumi.Output<string>;
    /** What the release's pods read, made before it: the URL Secret. */
    reads: pulumi.Resource[];
}

/** What a release of either contract gets: its values, the post-renderer (urlSecret), and the Secret its pods roll on. */
function releaseWiring(
    config: VelureConfig,
    service: ServiceSpec,
    pooler: PoolerOutputs,
    deployed: Deployed,
    namespace: pulumi.Input<string>,
    provider: k8s.Provider,
): ReleaseWiring {
    const connection = pooler.connectionFor(service);
    const credentialsSecret = () => serviceCredentials(service, serverOf(config, service).credentials, namespace, provider);
    const contract = service.connection;
    if (contract.contract === "urlSecret") {
        const url = urlSecret(config, service, contract, connection, deployed, namespace, provider);
        // The app reads only the URL: a password Secret of its own is made only for a check that logs in as it does.
        const credentials = pooler.readyFor ? credentialsSecret() : undefined;
        return { credentials, ...urlContractRelease(config, service, contract, connection, url), reads: [url.resource] };
    }
    const credentials = credentialsSecret();
    return { credentials, values: envContractValues(config, service, connection, credentials), reads: [] };
}

export function deployReleases(
    config: VelureConfig,
    pooler: PoolerOutputs,
    provider: k8s.Provider,
    namespaces: Record<string, pulumi.Input<string>>,
    deployed: Deployed,
): Record<string, k8s.helm.v3.Release> {
    return Object.fromEntries(
        config.services.map((service) => {
            const namespace = namespaces[service.namespace];
            const connection = pooler.connectionFor(service);
            const wiring = releaseWiring(config, service, pooler, deployed, namespace, provider);
            const checks = wiring.credentials ? (pooler.readyFor?.(service, wiring.credentials) ?? []) : [];
            const release = new k8s.helm.v3.Release(
                service.releaseName,
                {
                    name: service.releaseName,
                    namespace,
                    ...chartArgs(service.chart),
                    values: secretIf(config.secretServices, wiring.values),
                    ...(wiring.postrender ? { postrender: wiring.postrender } : {}),
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
                { provider, dependsOn: [...pooler.ready, ...wiring.reads, ...checks] },
            );
            return [service.name, release];
        }),
    );
}
