// velure's side of the dev stack as the e2e suites shape it from velure's own files: the releases and the Secrets
// their charts read, the ExternalSecrets of infrastructure/kubernetes/external-secrets, and the ClusterSecretStore
// aws-secrets-manager, whose fake provider stands in for Secrets Manager.

/** What Secrets Manager holds for each server (velure/dev/rds-auth, velure/dev/rds-orders): only the cluster sees it. */
export const SECRETS_MANAGER_PASSWORDS: Record<string, string> = { auth: 'sm-Auth P4ss+"q"@/?#%', orders: "sm-Orders-P4ss" };
export const SERVICE_NAMESPACES = ["authentication", "order"];
/**
 * velure's releases, the Secret each chart reads its URL from (key url), the ExternalSecret of velure's that writes it
 * (auth-service-secrets.yaml, publish-order-secrets.yaml) and the program's own URL Secret beside it.
 */
export const RELEASES = [
    { namespace: "authentication", name: "velure-auth", secret: "velure-auth-postgres", velureEs: "velure-auth-postgres-es", ours: "velure-auth-pooler-url", server: "auth", database: "velure_auth" },
    { namespace: "order", name: "velure-publish-order", secret: "order-database", velureEs: "order-database-es", ours: "velure-publish-order-pooler-url", server: "orders", database: "velure_orders" },
];

/**
 * A credential in the store's own spec, as a store with inline credentials (an access key in the provider's auth)
 * holds one: the program reads the store, and no form of this may reach the state.
 */
export const PLANTED_STORE_CREDENTIAL = "planted-AKIAVELURESTORE-credential-9f3b";

/** The name of a Secrets Manager secret in its ARN (…:secret:velure/dev/rds-auth-Ab12Cd): velure's ExternalSecrets' remote key. */
function secretNameOf(arn: string): string {
    return arn.split(":secret:")[1].replace(/-[A-Za-z0-9]{6}$/, "");
}

/**
 * velure's store for Secrets Manager, by its name; the fake provider holds each server's secret as Secrets Manager does
 * (JSON), under its ARN (the program's reference) and its name (velure's), and the planted credential.
 */
export function clusterSecretStore(servers: any[]): object {
    const data = servers.flatMap((s) => {
        const password = SECRETS_MANAGER_PASSWORDS[s.name];
        const url = `postgresql://velure_admin:${encodeURIComponent(password)}@${s.host}:5432/velure_${s.name}?sslmode=require`;
        const value = JSON.stringify({ username: "velure_admin", password, host: s.host, port: 5432, dbname: `velure_${s.name}`, url });
        return [{ key: s.secretsManagerSecret, value }, { key: secretNameOf(s.secretsManagerSecret), value }];
    });
    data.push({ key: "store-credential", value: PLANTED_STORE_CREDENTIAL });
    return { apiVersion: "external-secrets.io/v1", kind: "ClusterSecretStore", metadata: { name: "aws-secrets-manager" }, spec: { provider: { fake: { data } } } };
}

/** velure's own ExternalSecret for a chart's Secret, as its external-secrets manifests declare it: the URL straight to RDS. */
export function velureExternalSecret(release: (typeof RELEASES)[number], arn: string): object {
    return {
        apiVersion: "external-secrets.io/v1",
        kind: "ExternalSecret",
        metadata: { name: release.velureEs, namespace: release.namespace },
        spec: {
            refreshInterval: "1h",
            secretStoreRef: { name: "aws-secrets-manager", kind: "ClusterSecretStore" },
            target: { name: release.secret, creationPolicy: "Owner" },
            data: [{ secretKey: "url", remoteRef: { key: secretNameOf(arn), property: "url" } }],
        },
    };
}
