// A cluster that already runs other people's things: `velure` and `velure-db` exist, each with a ConfigMap and a
// Deployment of someone else's, before the program ever runs. The stack lives on a file backend in the legacy
// layout (stacks not grouped by project), where the program reads its own last outputs by the bare stack name.
// Its `monitoring` namespace is missing at first, and its `services` key is set as a secret.
import * as assert from "assert";
import { LocalCluster } from "./cluster";
import { PulumiProject, scratch } from "./pulumi";
import { PASSWORD, PASSWORD_KEY, cleanUp, harnessConfig, helmList, roomyConfig, stackFileConfig, waitUntilGone } from "./stacks";
import { assertToolchainBuilt } from "../toolchain";

const FOREIGN_NAMESPACES = ["velure", "velure-db"];
const OWN_PGBOUNCER_NAMESPACE = "velure-pooler";
const SERVICE_SECRET = "svc-K3y-5150";

/** Someone else's workload in a namespace: a ConfigMap and a Deployment (kwok makes its pod Ready). */
function foreignObjects(namespace: string): object[] {
    const labels = { app: "someone-elses" };
    return [
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "someone-elses-config", namespace }, data: { owner: "another team" } },
        {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "someone-elses-app", namespace, labels },
            spec: {
                replicas: 1,
                selector: { matchLabels: labels },
                template: { metadata: { labels }, spec: { containers: [{ name: "app", image: "registry.example/app:1" }] } },
            },
        },
    ];
}

/** What the foreign namespaces look like: their uids and labels, and the uids of the objects in them. */
function foreignState(cluster: LocalCluster): Record<string, unknown> {
    return Object.fromEntries(
        FOREIGN_NAMESPACES.map((namespace) => {
            const ns = cluster.get("namespace", namespace);
            assert.ok(ns && !ns.metadata.deletionTimestamp, `namespace ${namespace} is there`);
            const objects = ["configmap/someone-elses-config", "deployment/someone-elses-app"].map((ref) => {
                const [kind, name] = ref.split("/");
                const object = cluster.get(kind, name, namespace);
                assert.ok(object && !object.metadata.deletionTimestamp, `${namespace}/${ref} is there`);
                return `${ref}:${object.metadata.uid}`;
            });
            return [namespace, { uid: ns.metadata.uid, labels: ns.metadata.labels, objects }];
        }),
    );
}

describe("on a cluster that already runs other people's things (file backend, legacy layout)", function () {
    this.timeout(20 * 60 * 1000);
    let cluster: LocalCluster;
    let project: PulumiProject;
    let dir: string;
    let devConfig: Record<string, unknown>;
    let untouched: Record<string, unknown>;

    before(async () => {
        assertToolchainBuilt();
        dir = scratch("shared");
        cluster = await new LocalCluster().start();
        for (const namespace of FOREIGN_NAMESPACES) {
            cluster.kubectl(["create", "namespace", namespace]);
            cluster.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: foreignObjects(namespace) }));
        }
        untouched = foreignState(cluster);
        project = new PulumiProject("shared", dir, { PULUMI_DIY_BACKEND_LEGACY_LAYOUT: "true" });
        devConfig = { ...stackFileConfig("one-server-dev"), ...harnessConfig(cluster) };
        await project.init(devConfig, { [PASSWORD_KEY]: PASSWORD });
    });

    after(async function () {
        await cleanUp(this, cluster, dir);
    });

    it("refuses at preview, naming the key, while monitoringNamespace does not exist (the program never creates it)", async () => {
        const result = await project.run(["preview"]);
        assert.notStrictEqual(result.code, 0);
        // The engine ends the run at the failed read, with its own words; the read's name says which key needs it.
        assert.match(result.stdout + result.stderr, /kubernetes:core\/v1:Namespace required-by-monitoringNamespace +error: Preview failed: resource 'monitoring' does not exist/);
        assert.deepStrictEqual(foreignState(cluster), untouched);
        cluster.kubectl(["create", "namespace", "monitoring"]);
    });

    it("refuses to create a namespace that exists: up fails with the API server's word, and neither namespace is relabelled", async () => {
        const result = await project.run(["up", "--yes", "--skip-preview"]);
        assert.notStrictEqual(result.code, 0, "up fails");
        const printed = result.stdout + result.stderr;
        // The engine stops at the first failed create (the other namespace is not tried).
        assert.match(printed, /was not successfully created by the Kubernetes API server: namespaces "(velure|velure-db)" already exists/);
        assert.deepStrictEqual(foreignState(cluster), untouched, "same uids, same labels (no PodSecurity label), same objects");
        assert.deepStrictEqual(helmList(cluster), [], "no release was installed");
        const state = JSON.parse((await project.ok(["stack", "export"])).stdout);
        const namespaces = (state.deployment.resources ?? []).filter((r: any) => r.type === "kubernetes:core/v1:Namespace" && !r.external);
        assert.deepStrictEqual(namespaces, [], "no namespace entered the state as the program's");
    });

    it("deploys into the existing service namespace (createServiceNamespaces false) and a PgBouncer namespace of its own, touching neither foreign one", async () => {
        devConfig = { ...devConfig, "velure-pooling:createServiceNamespaces": false, "velure-pooling:pgbouncerNamespace": OWN_PGBOUNCER_NAMESPACE };
        project.setConfig(devConfig);
        // services set as a secret, with a value of the service's own that must stay one.
        const services = structuredClone(devConfig["velure-pooling:services"]) as any[];
        services[0].values = { env: { API_KEY: SERVICE_SECRET } };
        await project.ok(["config", "set", "--secret", "velure-pooling:services", JSON.stringify(services)]);
        await project.ok(["up", "--yes", "--skip-preview"]);
        assert.deepStrictEqual(foreignState(cluster), untouched);
        assert.strictEqual(cluster.get("namespace", OWN_PGBOUNCER_NAMESPACE).metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert.deepStrictEqual(helmList(cluster).map((r) => `${r.namespace}/${r.name}:${r.status}`).sort(), [
            "velure/velure-auth-service:deployed",
            "velure/velure-publish-order-service:deployed",
        ]);
    });

    it("keeps a key set as a secret a secret: the service's value is nowhere in the exported state, and the services output is secret", async () => {
        const state = (await project.ok(["stack", "export"])).stdout;
        assert.ok(!state.includes(SERVICE_SECRET), "the value of the secret services key is in the state in plain text");
        assert.ok(!state.includes("e2e-S3cr3t"), "the password is in the state in plain text");
        const outputs = JSON.parse((await project.ok(["stack", "output", "--json"])).stdout);
        assert.strictEqual(outputs.services, "[secret]");
        const auth = cluster.get("deployment", "velure-auth-service", "velure");
        const app = auth.spec.template.spec.containers.find((c: any) => c.name === "app");
        assert.ok(app.env.some((e: any) => e.name === "API_KEY" && e.value === SERVICE_SECRET), "the release still gets the value");
    });

    it("gives the exporter a random stats password through the random provider: in the cluster's userlist, a secret in the state", async () => {
        const secret = cluster.get("secret", "velure-pgbouncer-auth", OWN_PGBOUNCER_NAMESPACE);
        const userlist = Buffer.from(secret.data["userlist.txt"], "base64").toString();
        const stats = /^"pgbouncer_stats" "([^"]*)"$/m.exec(userlist)?.[1] ?? "";
        assert.match(stats, /^[A-Za-z0-9]{32}$/, "32 letters and digits");
        const state = JSON.parse((await project.ok(["stack", "export"])).stdout);
        const random = state.deployment.resources.filter((r: any) => r.type === "random:index/randomPassword:RandomPassword");
        assert.deepStrictEqual(random.map((r: any) => r.urn.split("::").pop()), ["velure-pgbouncer-stats-password"]);
        assert.strictEqual(random[0].outputs.result["4dabf18193072939515e22adb298388d"], "1b47061264138c4ac30d75fd1eb44270", "result is a secret");
        assert.ok(!JSON.stringify(state).includes(stats), "the stats password is in the state in plain text");
    });

    it("reads its own last outputs on this backend: the switch check refuses 70 + 70 of 70 at preview", async () => {
        project.setConfig({ ...devConfig, "velure-pooling:mode": "pgbouncer-sidecar" });
        const result = await project.run(["preview"]);
        assert.notStrictEqual(result.code, 0);
        assert.match(result.stdout + result.stderr, /during the switch from pgbouncer-cluster to pgbouncer-sidecar, the two poolers together can open 140 server connections/);
    });

    it("switches to pgbouncer-sidecar: its own PgBouncer namespace is deleted, the foreign ones stay as they were", async () => {
        project.setConfig({ ...roomyConfig(devConfig), "velure-pooling:mode": "pgbouncer-sidecar" });
        await project.ok(["up", "--yes", "--skip-preview"]);
        await waitUntilGone(cluster, "namespace", OWN_PGBOUNCER_NAMESPACE);
        assert.deepStrictEqual(foreignState(cluster), untouched);
    });

    it("destroys what it made and nothing else: both foreign namespaces and their workloads are still there", async () => {
        await project.ok(["destroy", "--yes", "--skip-preview"]);
        assert.deepStrictEqual(helmList(cluster), []);
        assert.deepStrictEqual(foreignState(cluster), untouched);
        const ours = cluster.list("configmaps,secrets,deployments,poddisruptionbudgets", "velure").map((o) => `${o.kind}/${o.metadata.name}`).sort();
        assert.deepStrictEqual(ours, ["ConfigMap/kube-root-ca.crt", "ConfigMap/someone-elses-config", "Deployment/someone-elses-app"]);
    });
});
