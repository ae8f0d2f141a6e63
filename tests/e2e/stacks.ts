// What the end-to-end tests' stacks share: the password, the harness's config, and the checks of what the cluster holds.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { LocalCluster } from "./cluster";
import { podReferences } from "./pods";
import { BIN, ROOT } from "../toolchain";
import { FIXTURE_STACKS, PROJECT_STACKS } from "../unit/harness";

export const PASSWORD = 'e2e-S3cr3t "quoted" p@ss';
export const PASSWORD_KEY = "velure-pooling:databasePassword";

/**
 * What the test's stacks set beyond their stack file, and why (the README lists these):
 * - kubeconfig/kubernetesContext: the test's own API server instead of the stack's cluster.
 */
export function harnessConfig(cluster: LocalCluster): Record<string, string> {
    return {
        "velure-pooling:kubeconfig": cluster.kubeconfig,
        "velure-pooling:kubernetesContext": cluster.context,
    };
}

/** A stack file's config: the project's (dev, prod) or the tests' one-server fixtures (one-server-dev, one-server-prod). */
export function stackFileConfig(stack: string): Record<string, unknown> {
    const dir = PROJECT_STACKS.includes(stack) ? ROOT : FIXTURE_STACKS;
    return YAML.parse(fs.readFileSync(path.join(dir, `Pulumi.${stack}.yaml`), "utf8")).config;
}

/** Whether a test of the hook's suite, or of a suite inside it, failed or did not run. */
export function suiteFailed(context: Mocha.Context): boolean {
    const failedIn = (suite: Mocha.Suite): boolean => suite.tests.some((t) => t.state !== "passed") || suite.suites.some(failedIn);
    return context.test?.parent ? failedIn(context.test.parent) : true;
}

/** Stops the cluster and removes the scratch folders, unless a test failed or did not run, or E2E_KEEP is set: then says where they are. */
export async function cleanUp(context: Mocha.Context, cluster: LocalCluster | undefined, dir: string | undefined): Promise<void> {
    const keep = suiteFailed(context) || Boolean(process.env.E2E_KEEP);
    await cluster?.stop(keep);
    if (keep) {
        console.log(`e2e: kept ${dir}/pulumi.log and the control plane's logs in ${cluster?.dir}`);
    } else if (dir) {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** The real Helm on the test's cluster. */
export function helm(cluster: LocalCluster, args: string[]): string {
    return execFileSync(BIN.helm, [...args, "--kubeconfig", cluster.kubeconfig], { stdio: ["ignore", "pipe", "pipe"] }).toString();
}

export function helmList(cluster: LocalCluster): any[] {
    return JSON.parse(helm(cluster, ["list", "--all-namespaces", "--all", "-o", "json"]));
}

export async function waitUntilGone(cluster: LocalCluster, kind: string, name: string, timeoutMs = 120000): Promise<void> {
    await cluster.waitFor(`${kind}/${name} to be gone`, () => !cluster.get(kind, name), timeoutMs);
}

/** The dev stack with room for both poolers at once during a switch: 70 + 70 of 190. */
export function roomyConfig(config: Record<string, unknown>): Record<string, unknown> {
    return { ...config, "velure-pooling:databaseMaxConnections": 200 };
}

/**
 * Every ConfigMap and Secret that the pod templates of a namespace's Deployments (and of their ReplicaSets, which
 * hold older templates that a stuck or rolled-back rollout still runs) refer to exists: a new pod of any of them can
 * start. kwok would mark a pod Ready without its volumes, so the references themselves are what is checked.
 */
export function assertPodReferencesExist(cluster: LocalCluster, namespace: string, when: string): string[] {
    const templates = [...cluster.list("deployments", namespace), ...cluster.list("replicasets", namespace).filter((r) => r.spec.replicas > 0)];
    const wanted = templates.flatMap((t) => podReferences(t.spec.template.spec));
    assert.ok(wanted.length > 0, `${namespace}: the pods refer to ConfigMaps and Secrets`);
    for (const { kind, name } of wanted) {
        assert.ok(cluster.get(kind, name, namespace), `${when}: ${kind}/${name}, which a pod template in ${namespace} reads, is gone`);
    }
    return wanted.map(({ kind, name }) => `${kind}/${name}`);
}
