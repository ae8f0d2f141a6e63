// The unit tests' view of the program: the plan's mock runner, with the values a user adds outside the
// stack file (the secret password).
import * as assert from "assert";
import * as path from "path";
import { Declared, ProgramRun, RunOptions, StackConfig, podUrl, runProgram, stackConfig as planStackConfig, standInCharts } from "../../plan/runtime";
import { PodPatch } from "../../services/postRender";
import { readPostRenderPatch } from "../../services/postRendererCommand";

export { MOCK_ACCOUNT, MOCK_REGION, ProgramRun, ROOT, StackConfig, isWrappedSecret, mockRandomPassword, runProgram } from "../../plan/runtime";

export const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";

export const PASSWORD = 'S3cr3t-7731 "quoted" p@ss';
/** A part of the password that survives any quoting, to search for. */
export const PASSWORD_TOKEN = "S3cr3t-7731";

/** The tests' own stacks: the one-server shape (the databaseHost keys), which the project's stacks no longer use. */
export const FIXTURE_STACKS = path.join(__dirname, "..", "fixtures", "stacks");
/** The project's stacks, which describe velure's own two database servers. */
export const PROJECT_STACKS = ["dev", "prod"];

/**
 * A stack's config with the values a user adds outside the stack file: the password of a one-server stack (from the
 * fixtures, "one-server-<x>"); the project's stacks keep theirs in Secrets Manager, and name velure's charts, for
 * which the fixture chart of their contract stands in (standInCharts).
 */
export function stackConfig(stack: string, overrides: Record<string, unknown> = {}): StackConfig {
    if (PROJECT_STACKS.includes(stack)) {
        const config = planStackConfig(stack, overrides);
        standInCharts(config);
        return config;
    }
    return planStackConfig(stack, { databasePassword: PASSWORD, ...overrides }, FIXTURE_STACKS);
}

/** Runs the program and returns the error it fails with. */
export async function programError(config: StackConfig, options: RunOptions = {}): Promise<Error> {
    try {
        await runProgram(config, options);
    } catch (e) {
        return e as Error;
    }
    throw new Error("expected the program to fail, but it succeeded");
}

export const K8S = {
    namespace: "kubernetes:core/v1:Namespace",
    configMap: "kubernetes:core/v1:ConfigMap",
    secret: "kubernetes:core/v1:Secret",
    service: "kubernetes:core/v1:Service",
    deployment: "kubernetes:apps/v1:Deployment",
    pdb: "kubernetes:policy/v1:PodDisruptionBudget",
    networkPolicy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    release: "kubernetes:helm.sh/v3:Release",
    externalSecret: "kubernetes:external-secrets.io/v1:ExternalSecret",
};

/**
 * The URL a urlSecret release's pods will read (the mode's key, where the post-renderer points them), from the Secret
 * or ExternalSecret the program declares (its password template a stand-in).
 */
export function declaredUrl(run: ProgramRun, release: Declared): URL {
    const { secret, key, url } = podUrl(run, release);
    assert.ok(url, `${release.name}: the program declares ${secret} with key ${key}`);
    return new URL(url.replace(/\{\{[^}]*\}\}/, "password"));
}

/** The address a release is wired to: its env (POSTGRES_HOST/PORT), or the host and port of the URL its chart reads. */
export function wiredAddress(run: ProgramRun, release: Declared): { host: string; port: string } {
    const env = release.inputs.values.env;
    if (env) {
        return { host: env.POSTGRES_HOST, port: env.POSTGRES_PORT };
    }
    const url = declaredUrl(run, release);
    return { host: url.hostname, port: url.port };
}

/** What the post-renderer puts into a urlSecret release's pods: the patch file its command reads. */
export function postRenderPatch(release: Declared): PodPatch {
    assert.ok(release.inputs.postrender, `${release.name} has a post-renderer`);
    return readPostRenderPatch(release.inputs.postrender);
}
