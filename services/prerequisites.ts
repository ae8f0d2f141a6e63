// What the program counts on finding in the cluster without creating it: read before anything is declared in it,
// so that a missing namespace or CRD fails `pulumi preview` with a message, not `pulumi up` half-way through.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { EXTERNAL_SECRET_API_VERSION, EXTERNAL_SECRET_CRD } from "../components/externalSecret";
import { VelureConfig } from "../config";

/** The Prometheus Operator's CRDs that each PgBouncer mode declares objects of. */
const OPERATOR_CRDS: Record<string, string[]> = {
    "pgbouncer-cluster": ["servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"],
    "pgbouncer-sidecar": ["podmonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"],
};

/** Every field a read of a custom resource returns: all of them secrets in the state (see the store's read). */
const STORE_OUTPUTS = ["apiVersion", "kind", "metadata", "spec", "status"];

interface Prerequisite {
    /** The config key that makes the program need it, and what it is. */
    key: string;
    what: string;
    fix: string;
    read: () => pulumi.CustomResource;
}

/**
 * The read's resource name names the config key: when the object is missing, the engine ends the run at the read
 * with its own message (`<type> required-by-monitoringNamespace error: … resource 'monitoring' does not exist`),
 * before the program's fuller one can reach it.
 */
function readName(key: string): string {
    return `required-by-${key}`;
}

/** With a server's password in Secrets Manager: External Secrets Operator's ExternalSecret CRD and the store it reads through. */
function externalSecretsPrerequisites(config: VelureConfig, provider: k8s.Provider): Prerequisite[] {
    const server = config.servers.find((s) => s.credentials.source === "secretsManager");
    if (!server || server.credentials.source !== "secretsManager") {
        return [];
    }
    const store = server.credentials.store;
    const key = `${server.at}.secretsManagerSecret`;
    const fix = "install External Secrets Operator (external-secrets.io/v1) and its store for AWS Secrets Manager first, or give the password with databasePasswords";
    const crd: Prerequisite = {
        key,
        what: `CustomResourceDefinition ${EXTERNAL_SECRET_CRD}`,
        fix,
        read: () => k8s.apiextensions.v1.CustomResourceDefinition.get(readName(`${key}-crd`), EXTERNAL_SECRET_CRD, { provider }),
    };
    if (store.kind !== "ClusterSecretStore") {
        return [crd];
    }
    const clusterStore: Prerequisite = {
        key: "externalSecretsStore",
        what: `ClusterSecretStore ${store.name}`,
        fix,
        // The program needs only that the store exists; a store may hold credentials inline (an access key, a token) in
        // its spec, and kubectl apply copies the spec into metadata's last-applied-configuration: every field of
        // what the read keeps in the state is a secret (encrypted), so none of them is there in the clear.
        read: () =>
            k8s.apiextensions.CustomResource.get(readName("externalSecretsStore"), {
                apiVersion: EXTERNAL_SECRET_API_VERSION,
                kind: "ClusterSecretStore",
                id: store.name,
                provider,
                additionalSecretOutputs: STORE_OUTPUTS,
            }),
    };
    return [crd, clusterStore];
}

function monitoringPrerequisites(config: VelureConfig, provider: k8s.Provider): Prerequisite[] {
    const monitoring = config.monitoring;
    if (!monitoring) {
        return [];
    }
    const namespace: Prerequisite = {
        key: "monitoringNamespace",
        what: `namespace ${monitoring.namespace}`,
        fix: "the program never creates (nor deletes) Prometheus's namespace: set monitoringNamespace to it, or monitoringExporter to false",
        read: () => k8s.core.v1.Namespace.get(readName("monitoringNamespace"), monitoring.namespace, { provider }),
    };
    const crds: Prerequisite[] = monitoring.prometheusOperator
        ? (OPERATOR_CRDS[config.mode] ?? []).map((crd) => ({
              key: "monitoringPrometheusOperator",
              what: `CustomResourceDefinition ${crd}`,
              fix: "install the Prometheus Operator's CRDs first, or set monitoringPrometheusOperator to false",
              read: () => k8s.apiextensions.v1.CustomResourceDefinition.get(readName(`monitoringPrometheusOperator-${crd}`), crd, { provider }),
          }))
        : [];
    return [namespace, ...crds];
}

function prerequisites(config: VelureConfig, provider: k8s.Provider): Prerequisite[] {
    return [...monitoringPrerequisites(config, provider), ...externalSecretsPrerequisites(config, provider)];
}

/** Resolves an Output's value, or rejects with its error (a failed read): `apply` would never call back. */
function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
    return (output as unknown as { promise(): Promise<T> }).promise();
}

/** Reads every prerequisite from the cluster; throws one error that names each missing one, its key and the fix. */
export async function assertPrerequisites(config: VelureConfig, provider: k8s.Provider): Promise<void> {
    const missing: string[] = [];
    await Promise.all(
        prerequisites(config, provider).map(async (p) => {
            try {
                await valueOf(p.read().id);
            } catch (e) {
                missing.push(`  - velure-pooling:${p.key}: ${p.what} was not found in the cluster (${(e as Error).message}); ${p.fix}`);
            }
        }),
    );
    if (missing.length > 0) {
        throw new Error(`the cluster lacks what the config counts on:\n${missing.sort().join("\n")}`);
    }
}
