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

function planOut(stack: string, mode: string, dir: string): any {
    execFileSync("node_modules/.bin/ts-node", ["--transpile-only", "plan/cli.ts", "--stack", stack, "--mode", mode, "--out", dir], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    return JSON.parse(fs.readFileSync(path.join(dir, "summary.json"), "utf8"));
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

    for (const stack of ["dev", "prod"]) {
        for (const mode of MODES) {
            it(`${stack} × ${mode}: renders every release's values into objects that pass the Kubernetes schema`, async () => {
                const out = path.join(scratchHelm, `${stack}-${mode}`);
                const summary = planOut(stack, mode, out);
                assert.ok(summary.releases.length >= 2, "both services have a release");
                for (const release of summary.releases) {
                    const values = path.join(out, "helm", `${release.name}.values.yaml`);
                    const rendered = helm(["template", release.name, CHART, "-f", values, "--kube-version", toolchainVersions().KUBE, "--namespace", "velure"]);
                    const objects = YAML.parseAllDocuments(rendered).map((d) => d.toJSON()).filter(Boolean);
                    assert.deepStrictEqual(objects.map((o: any) => o.kind).sort(), renderedKinds(values), `${release.name}: the chart's objects`);
                    for (const object of objects) {
                        const model = await modelFor({ id: `${object.kind}/${object.metadata.name}`, object });
                        assert.doesNotThrow(() => model.validate(), `${release.name}: ${object.kind} is invalid`);
                    }
                    const deployment = objects.find((o: any) => o.kind === "Deployment");
                    const env = appEnv(deployment.spec.template.spec);
                    assert.strictEqual(env.POSTGRES_HOST, release.env.POSTGRES_HOST, `${release.name}: POSTGRES_HOST as the program wired it`);
                    assert.strictEqual(env.POSTGRES_PORT, String(release.env.POSTGRES_PORT), `${release.name}: POSTGRES_PORT as the program wired it`);
                    assertSidecarAsDeclared(mode, deployment.spec.template.spec, release.name);
                    assertProxyCaMounted(mode, deployment.spec.template.spec, release.name, out);
                    const model = chartPod(YAML.parse(fs.readFileSync(values, "utf8")));
                    assert.deepStrictEqual(
                        runtimeView(deployment.spec.template.spec),
                        runtimeView(model),
                        `${release.name}: the integration tests' model of the chart's pod (tests/integration/kubelet.ts) is what Helm renders`,
                    );
                }
            });
        }
    }
});

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
