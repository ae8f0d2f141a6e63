// Where scripts/toolchain.sh puts the real tools, and the versions it builds them at.
import * as fs from "fs";
import * as path from "path";

export const ROOT = path.resolve(__dirname, "..");
const TOOLCHAIN = path.join(ROOT, ".toolchain");
const bin = (name: string) => path.join(TOOLCHAIN, "bin", name);

export const BIN = {
    pulumi: bin("pulumi"),
    languageHost: bin("pulumi-language-nodejs"),
    kubernetesProvider: bin("pulumi-resource-kubernetes"),
    randomProvider: bin("pulumi-resource-random"),
    helm: bin("helm"),
    etcd: bin("etcd"),
    kubeApiserver: bin("kube-apiserver"),
    kubeControllerManager: bin("kube-controller-manager"),
    kubeScheduler: bin("kube-scheduler"),
    kubelet: bin("kubelet"),
    kubeProxy: bin("kube-proxy"),
    kwok: bin("kwok"),
    pgbouncer_exporter: bin("pgbouncer_exporter"),
    externalSecrets: bin("external-secrets"),
};
export const KWOK_STAGES = path.join(TOOLCHAIN, "share", "kwok-stages.yaml");
/** External Secrets Operator's CRDs (ExternalSecret, ClusterSecretStore, SecretStore) at the version tools/external-secrets pins. */
export const EXTERNAL_SECRETS_CRDS = path.join(TOOLCHAIN, "share", "external-secrets-crds.yaml");

/** The X_VERSION=vN.N.N lines of scripts/toolchain.sh, without their "v". */
export function toolchainVersions(): Record<string, string> {
    const script = fs.readFileSync(path.join(ROOT, "scripts", "toolchain.sh"), "utf8");
    return Object.fromEntries([...script.matchAll(/^([A-Z_]+)_VERSION=v(\S+)$/gm)].map((m) => [m[1], m[2]]));
}

/** Fails with the command to run when a tool is missing, instead of a spawn error deep in a test. */
export function assertToolchainBuilt(): void {
    const missing = [...Object.values(BIN), KWOK_STAGES, EXTERNAL_SECRETS_CRDS].filter((file) => !fs.existsSync(file));
    if (missing.length > 0) {
        throw new Error(`the real tools are not built (${missing.map((f) => path.relative(ROOT, f)).join(", ")}): run npm run toolchain`);
    }
}
