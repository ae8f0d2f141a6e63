// The shipped chart under the real Helm: lint, then template it with the values that the program gives each
// release in every stack × mode (written by `npm run plan -- --out`), and check what Helm renders.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { MODES } from "../../config/schema";
import { modelFor } from "../../plan/kubernetes";
import { BIN, ROOT, assertToolchainBuilt, toolchainVersions } from "../toolchain";
import { PROBE_KINDS, allContainers, chartPod } from "../integration/kubelet";
import { appEnv, hasSidecar } from "./pods";
import { scratch } from "./pulumi";

const CHART = path.join(ROOT, "charts", "velure-service");

/** Helm's own cache and config, and the plan's output, live here for the run. */
let scratchHelm = "";

function helm(args: string[]): string {
    const home = { HELM_CACHE_HOME: scratchHelm, HELM_CONFIG_HOME: scratchHelm, HELM_DATA_HOME: scratchHelm };
    return execFileSync(BIN.helm, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...home } }).toString();
}

/** The project's stacks (velure's charts, the urlSecret contract) and the one-server fixtures (the shipped chart, env). */
const STACKS = [
    { stack: "dev", dir: ROOT },
    { stack: "prod", dir: ROOT },
    { stack: "one-server-dev", dir: path.join(ROOT, "tests", "fixtures", "stacks") },
    { stack: "one-server-prod", dir: path.join(ROOT, "tests", "fixtures", "stacks") },
];

function planOut(stack: { stack: string; dir: string }, mode: string, out: string): any {
    const args = ["--swc", "plan/cli.ts", "--stack", stack.stack, "--dir", stack.dir, "--mode", mode, "--out", out];
    execFileSync("node_modules/.bin/ts-node", args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    return JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8"));
}

/** The chart a release names, rendered by Helm with the values (and the post-renderer) the program gives it. */
function renderRelease(release: any, out: string): any[] {
    const values = path.join(out, "helm", `${release.name}.values.yaml`);
    const args = ["template", release.name, release.chart, "-f", values, "--kube-version", toolchainVersions().KUBE, "--namespace", release.namespace];
    const rendered = helm([...args, ...(release.postrender ? ["--post-renderer", release.postrender] : [])]);
    return YAML.parseAllDocuments(rendered).map((d) => d.toJSON()).filter(Boolean);
}

describe("Helm: the shipped chart", function () {
    this.timeout(120000);
    before(() => {
        assertToolchainBuilt();
        scratchHelm = scratch("helm");
    });
    after(() => fs.rmSync(scratchHelm, { recursive: true, force: true }));

    it(`is Helm ${toolchainVersions().HELM} and the chart lints clean`, () => {
        assert.match(helm(["version", "--short"]), new RegExp(`^v${toolchainVersions().HELM.replace(/\./g, "\\.")}`));
        const lint = helm(["lint", "--strict", CHART]);
        assert.match(lint, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    it("refuses autoscaling without the CPU request that the HPA scales on", () => {
        assert.throws(
            () => helm(["template", "x", CHART, "--set", "autoscaling.enabled=true"]),
            (e: any) => /autoscaling.enabled needs resources.requests.cpu/.test(String(e.stderr)),
        );
        assert.match(helm(["template", "x", CHART, "--set", "autoscaling.enabled=true", "--set", "resources.requests.cpu=100m"]), /kind: HorizontalPodAutoscaler/);
    });

    for (const stack of STACKS) {
        for (const mode of MODES) {
            it(`${stack.stack} × ${mode}: renders every release's chart into objects that pass the Kubernetes schema, wired to the pooler`, async () => {
                const out = path.join(scratchHelm, `${stack.stack}-${mode}`);
                const summary = planOut(stack, mode, out);
                assert.ok(summary.releases.length >= 2, "both services have a release");
                for (const release of summary.releases) {
                    const objects = renderRelease(release, out);
                    for (const object of objects) {
                        const model = await modelFor({ id: `${object.kind}/${object.metadata.name}`, object });
                        assert.doesNotThrow(() => model.validate(), `${release.name}: ${object.kind} is invalid`);
                    }
                    const deployment = objects.find((o: any) => o.kind === "Deployment");
                    const pod = deployment.spec.template.spec;
                    assertSidecarAsDeclared(mode, pod, release.name);
                    if (release.postrender) {
                        assertUrlContract(mode, summary, release, objects, out);
                    } else {
                        assertEnvContract(mode, release, objects, out);
                    }
                }
            });
        }
    }
});

/** Our chart: the env the program wired, the CA it mounts, and the pod the integration tests model. */
function assertEnvContract(mode: string, release: any, objects: any[], out: string): void {
    const values = path.join(out, "helm", `${release.name}.values.yaml`);
    assert.deepStrictEqual(objects.map((o: any) => o.kind).sort(), renderedKinds(values), `${release.name}: the chart's objects`);
    const pod = objects.find((o: any) => o.kind === "Deployment").spec.template.spec;
    const env = appEnv(pod);
    assert.strictEqual(env.POSTGRES_HOST, release.env.POSTGRES_HOST, `${release.name}: POSTGRES_HOST as the program wired it`);
    assert.strictEqual(env.POSTGRES_PORT, String(release.env.POSTGRES_PORT), `${release.name}: POSTGRES_PORT as the program wired it`);
    assert.strictEqual(env.POSTGRES_DATABASE_NAME, env.POSTGRES_DB, `${release.name}: the database under the name auth-service reads too`);
    assertProxyCaMounted(mode, pod, release.name, out);
    assert.deepStrictEqual(
        runtimeView(pod),
        runtimeView(chartPod(YAML.parse(fs.readFileSync(values, "utf8")))),
        `${release.name}: the integration tests' model of the chart's pod (tests/integration/kubelet.ts) is what Helm renders`,
    );
}

/** A manifest the plan wrote (kubernetes/<Kind>_<namespace>_<name>.yaml), or undefined. */
function planManifest(out: string, kind: string, namespace: string, name: string): any {
    const file = path.join(out, "kubernetes", `${kind}_${namespace}_${name}.yaml`);
    return fs.existsSync(file) ? YAML.parse(fs.readFileSync(file, "utf8")) : undefined;
}

/** The URL the Secret a chart reads will hold: our Secret's, or the ExternalSecret's template (its password a stand-in). */
function declaredUrl(out: string, namespace: string, secret: { name: string; key: string }): URL {
    const ours = planManifest(out, "Secret", namespace, secret.name);
    const external = planManifest(out, "ExternalSecret", namespace, secret.name);
    const url: string = ours?.stringData?.[secret.key] ?? external?.spec.target.template.data[secret.key];
    assert.ok(url, `the program declares ${namespace}/${secret.name} with key ${secret.key}`);
    return new URL(url.replace(/\{\{[^}]*\}\}/, "password"));
}

/**
 * velure's contract: the app's POSTGRES_URL comes from the Secret the chart fixes, which the program declares with
 * the pooler's address; the sidecar is in the pod in sidecar mode (the chart's PDB gone: the sidecar's is the one),
 * and the RDS Proxy CA is mounted where the URL's sslrootcert says.
 */
function assertUrlContract(mode: string, summary: any, release: any, objects: any[], out: string): void {
    const service: any = Object.values(summary.outputs.services).find((s: any) => s.release === release.name);
    const pod = objects.find((o: any) => o.kind === "Deployment").spec.template.spec;
    const [app] = pod.containers;
    const ref = app.env.find((e: any) => e.name === "POSTGRES_URL").valueFrom.secretKeyRef;
    assert.strictEqual(`${release.namespace}/${ref.name}`, service.connection.secret, `${release.name}: the chart reads the Secret the program writes`);
    const url = declaredUrl(out, release.namespace, ref);
    assert.strictEqual(url.hostname, service.host, `${release.name}: POSTGRES_URL's host is the pooler's`);
    assert.strictEqual(url.port, String(service.port), `${release.name}: POSTGRES_URL's port is the pooler's`);
    assert.strictEqual(url.pathname, `/${service.database}`);
    assert.strictEqual(objects.some((o: any) => o.kind === "PodDisruptionBudget"), mode !== "pgbouncer-sidecar", `${release.name}: the chart's PDB only beside no sidecar`);
    if (mode === "pgbouncer-sidecar") {
        const labels = objects.find((o: any) => o.kind === "Deployment").spec.template.metadata.labels;
        assert.strictEqual(labels["app.kubernetes.io/instance"], release.name, `${release.name}: the pods carry the label the sidecar's PDB and PodMonitor select`);
    }
    const rootCert = url.searchParams.get("sslrootcert");
    if (mode !== "rds-proxy") {
        assert.strictEqual(rootCert, null, `${release.name}: no CA file outside rds-proxy`);
        return;
    }
    assert.strictEqual(url.searchParams.get("sslmode"), "verify-full", `${release.name}: verify-full behind RDS Proxy`);
    const mount = (app.volumeMounts ?? []).find((m: any) => path.posix.dirname(rootCert as string) === m.mountPath);
    assert.ok(mount?.readOnly, `${release.name}: the app mounts ${path.posix.dirname(rootCert as string)} read-only`);
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    const configMap = planManifest(out, "ConfigMap", release.namespace, volume.configMap.name);
    assert.match(configMap.data[path.posix.basename(rootCert as string)], /BEGIN CERTIFICATE/, `${release.name}: the ConfigMap holds the file sslrootcert names`);
}

/** What the kubelet acts on, per container: processes, ports, probes, hooks; and the grace period. */
function runtimeView(pod: any): Record<string, unknown> {
    const fields = ["image", "command", "args", "restartPolicy", ...PROBE_KINDS, "lifecycle"];
    const containers = allContainers(pod).map((c: any) => ({
        name: c.name,
        ports: (c.ports ?? []).map((p: any) => `${p.name}:${p.containerPort}`),
        ...Object.fromEntries(fields.filter((f) => c[f] !== undefined).map((f) => [f, c[f]])),
    }));
    return { terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds, containers };
}

/** Deployment and Service always; the HPA when the values turn autoscaling on. */
function renderedKinds(valuesFile: string): string[] {
    const values = YAML.parse(fs.readFileSync(valuesFile, "utf8"));
    return ["Deployment", "Service", ...(values.autoscaling?.enabled ? ["HorizontalPodAutoscaler"] : [])].sort();
}

/** Behind RDS Proxy, the file PGSSLROOTCERT names is in a mounted volume, from a declared ConfigMap that has that key. */
function assertProxyCaMounted(mode: string, pod: any, release: string, planDir: string): void {
    const env = appEnv(pod);
    if (mode !== "rds-proxy") {
        assert.strictEqual(env.PGSSLROOTCERT, undefined, `${release}: no proxy CA outside rds-proxy`);
        return;
    }
    assert.strictEqual(env.POSTGRES_SSLMODE, "verify-full", `${release}: verify-full behind RDS Proxy`);
    assert.strictEqual(env.POSTGRES_SSLROOTCERT, env.PGSSLROOTCERT);
    const app = pod.containers.find((c: any) => c.name === "app");
    const mount = (app.volumeMounts ?? []).find((m: any) => path.posix.dirname(env.PGSSLROOTCERT) === m.mountPath);
    assert.ok(mount?.readOnly, `${release}: the app mounts ${path.posix.dirname(env.PGSSLROOTCERT)} read-only`);
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    // The plan names the file ConfigMap_<namespace>_<name>.yaml; the namespace is the release's (velure's: authentication, order).
    const manifest = fs.readdirSync(path.join(planDir, "kubernetes")).find((f) => f.startsWith("ConfigMap_") && f.endsWith(`_${volume.configMap.name}.yaml`));
    assert.ok(manifest, `${release}: the plan wrote the ConfigMap ${volume.configMap.name}`);
    const file = path.join(planDir, "kubernetes", manifest);
    const configMap = YAML.parse(fs.readFileSync(file, "utf8"));
    assert.match(configMap.data[path.posix.basename(env.PGSSLROOTCERT)], /BEGIN CERTIFICATE/, `${release}: the ConfigMap holds the file PGSSLROOTCERT names`);
}

function assertSidecarAsDeclared(mode: string, pod: any, release: string): void {
    assert.strictEqual(hasSidecar(pod), mode === "pgbouncer-sidecar", `${release}: the sidecar is in the rendered pod exactly in sidecar mode`);
}
