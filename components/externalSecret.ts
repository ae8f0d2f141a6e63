// ExternalSecrets (external-secrets.io/v1) that make a Kubernetes Secret from an AWS Secrets Manager secret, so
// that a database password the program never reads reaches PgBouncer's userlist and the apps' env. The program
// declares the ExternalSecret; External Secrets Operator (which velure already runs) writes, owns and refreshes
// the Secret it names.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { SecretStoreRef } from "./specs";

export const EXTERNAL_SECRET_API_VERSION = "external-secrets.io/v1";
export const EXTERNAL_SECRET_CRD = "externalsecrets.external-secrets.io";

/** The key of a Secrets Manager secret that holds the password (velure's secrets and RDS Proxy's SECRETS auth). */
export const SECRETS_MANAGER_PASSWORD_PROPERTY = "password";
/** How often External Secrets Operator re-reads Secrets Manager (velure's own ExternalSecrets: 1h). */
const EXTERNAL_SECRET_REFRESH = "1h";

/** The Go template (ESO's engine v2, with sprig) of the password, quoted for a PgBouncer userlist ("" for "). */
export const USERLIST_PASSWORD_TEMPLATE = `{{ .${SECRETS_MANAGER_PASSWORD_PROPERTY} | replace "\\"" "\\"\\"" }}`;
/** The Go template of the password as it is. */
export const PASSWORD_TEMPLATE = `{{ .${SECRETS_MANAGER_PASSWORD_PROPERTY} }}`;

export interface ExternalSecretArgs {
    namespace: pulumi.Input<string>;
    labels: Record<string, string>;
    store: SecretStoreRef;
    /** The Secrets Manager secret (its ARN), whose `password` property is read. */
    secretArn: string;
    /** The Secret that External Secrets Operator writes (and owns: it goes with the ExternalSecret). */
    target: string;
    /**
     * The target's keys, each from a template: either literal templates in the ExternalSecret, or (for templates that
     * hold a secret of their own, such as the stats password) the keys of a Secret of ours in the same namespace.
     */
    template: { data: Record<string, pulumi.Input<string>> } | { fromSecret: { name: pulumi.Input<string>; keys: string[] } };
}

/** The ExternalSecret's spec: one value read from Secrets Manager, the target's keys rendered from templates. */
function externalSecretSpec(args: ExternalSecretArgs) {
    const template =
        "data" in args.template
            ? { engineVersion: "v2", mergePolicy: "Replace", data: args.template.data }
            : {
                  engineVersion: "v2",
                  mergePolicy: "Replace",
                  templateFrom: [{ target: "Data", secret: { name: args.template.fromSecret.name, items: args.template.fromSecret.keys.map((key) => ({ key })) } }],
              };
    return {
        refreshInterval: EXTERNAL_SECRET_REFRESH,
        secretStoreRef: { kind: args.store.kind, name: args.store.name },
        target: { name: args.target, creationPolicy: "Owner", deletionPolicy: "Retain", template },
        data: [{ secretKey: SECRETS_MANAGER_PASSWORD_PROPERTY, remoteRef: { key: args.secretArn, property: SECRETS_MANAGER_PASSWORD_PROPERTY } }],
    };
}

/**
 * An ExternalSecret of fixed name (the target's), updated in place like every object a pod reads: a replaced one
 * would take its Secret with it (ESO's ownerReference) while pods of a rolled-back release still mount it.
 */
export function externalSecret(name: string, args: ExternalSecretArgs, opts: pulumi.CustomResourceOptions): k8s.apiextensions.CustomResource {
    return new k8s.apiextensions.CustomResource(
        name,
        {
            apiVersion: EXTERNAL_SECRET_API_VERSION,
            kind: "ExternalSecret",
            // The provider waits for the operator's Ready (the target written) before what reads the Secret goes on.
            // ESO sets no observedGeneration, so an update's wait may see the Ready of the spec before.
            metadata: { name: args.target, namespace: args.namespace, labels: args.labels, annotations: { "pulumi.com/waitFor": "condition=Ready" } },
            spec: externalSecretSpec(args),
        },
        opts,
    );
}
