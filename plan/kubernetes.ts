// Turns the Kubernetes resources the program declares into plain manifests, with every Secret value redacted.
import { Declared } from "./runtime";

export const REDACTED = "<redacted>";

export interface Manifest {
    /** kind/namespace/name, for file names and messages. */
    id: string;
    object: Record<string, any>;
}

/** "kubernetes:apps/v1:Deployment" → apps/v1 Deployment; "kubernetes:core/v1:Secret" → v1 Secret. */
export function apiVersionAndKind(type: string): { apiVersion: string; kind: string } | undefined {
    const match = /^kubernetes:([^:]+):([^:]+)$/.exec(type);
    if (!match || match[1] === "helm.sh/v3" || type.startsWith("pulumi:")) {
        return undefined;
    }
    return { apiVersion: match[1].replace(/^core\//, ""), kind: match[2] };
}

function redact(values: Record<string, unknown> | undefined): Record<string, string> | undefined {
    return values && Object.fromEntries(Object.keys(values).map((key) => [key, REDACTED]));
}

/** The manifest of one declared resource, or undefined when it is not a plain Kubernetes object. */
export function manifestOf(resource: Declared, autoNameSuffix: string): Manifest | undefined {
    const gvk = apiVersionAndKind(resource.type);
    if (!gvk) {
        return undefined;
    }
    const { metadata = {}, ...rest } = resource.inputs;
    const object: Record<string, any> = {
        ...gvk,
        metadata: { ...metadata, name: metadata.name ?? `${resource.name}${autoNameSuffix}` },
        ...rest,
    };
    if (gvk.kind === "Secret") {
        object.stringData = redact(object.stringData);
        object.data = redact(object.data);
        if (object.data === undefined) {
            delete object.data;
        }
    }
    const namespace = object.metadata.namespace ? `${object.metadata.namespace}/` : "";
    return { id: `${gvk.kind}/${namespace}${object.metadata.name}`, object };
}

export function manifests(resources: Declared[], autoNameSuffix: string): Manifest[] {
    return resources.map((r) => manifestOf(r, autoNameSuffix)).filter((m): m is Manifest => m !== undefined);
}

/** The kubernetes-models class of an object, to validate it against the Kubernetes OpenAPI schema. */
/** A real dynamic import: TypeScript's CommonJS output would turn `import()` into a require, which ESM-only packages refuse. */
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<Record<string, any>>;

/** The kubernetes-models class of a manifest's apiVersion and kind, which validates an object against its schema. */
export async function modelFor(manifest: Manifest): Promise<{ validate(): void }> {
    const { apiVersion, kind } = manifest.object;
    // kubernetes-models lays its classes out as <group>/<version>/<Kind> (the core group as v1/<Kind>); the
    // Prometheus Operator's CRDs come from a package of its own of the same family, and External Secrets
    // Operator's from another, which is published as ES modules only.
    if (apiVersion.startsWith("external-secrets.io/")) {
        const module = await importEsm(`@kubernetes-models/external-secrets/${apiVersion}/${kind}`);
        return new module[kind](manifest.object);
    }
    const library = apiVersion.startsWith("monitoring.coreos.com/") ? "@kubernetes-models/prometheus-operator" : "kubernetes-models";
    const module = require(`${library}/${apiVersion}/${kind}`);
    return new module[kind](manifest.object);
}
