// velure as it is: the project's dev stack (two database servers, their passwords in AWS Secrets Manager, the
// services in the namespaces `authentication` and `order` that already exist) on the real engine and API server,
// with External Secrets Operator's CRDs and its ClusterSecretStore installed. No password is given to Pulumi. The
// operator itself is not run here (nothing here reaches Secrets Manager): the test writes the Secrets it would
// write, with a known password, and shows that this password is nowhere in the stack's state.
import * as assert from "assert";
import { LocalCluster } from "./cluster";
import { appEnv, hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { assertPodReferencesExist, cleanUp, harnessConfig, helmList, stackFileConfig } from "./stacks";
import { EXTERNAL_SECRETS_CRDS, assertToolchainBuilt } from "../toolchain";

/** What Secrets Manager would hold for each server (velure/dev/rds-auth, velure/dev/rds-orders): only the cluster sees it. */
const SECRETS_MANAGER_PASSWORDS: Record<string, string> = { auth: 'sm-Auth-P4ss "q"', orders: "sm-Orders-P4ss" };
const SERVICE_NAMESPACES = ["authentication", "order"];

/** velure's store for Secrets Manager, as its external-secrets manifests declare it. */
const CLUSTER_SECRET_STORE = {
    apiVersion: "external-secrets.io/v1",
    kind: "ClusterSecretStore",
    metadata: { name: "aws-secrets-manager" },
    spec: { provider: { aws: { service: "SecretsManager", region: "us-east-1" } } },
};

/** The Go-template pieces the program's ExternalSecrets use, rendered as External Secrets Operator would. */
function renderTemplate(template: string, password: string): string {
    return template
        .replace(/\{\{ \.password \| replace "\\"" "\\"\\"" \}\}/g, password.replace(/"/g, '""'))
        .replace(/\{\{ \.password \}\}/g, password);
}

/**
 * Plays External Secrets Operator for every ExternalSecret of the stack: reads the template (inline, or the keys of
 * the Secret it names), renders it with the server's password, and writes the target Secret.
 */
function syncExternalSecrets(cluster: LocalCluster, arnToServer: Record<string, string>): string[] {
    const written: string[] = [];
    for (const external of cluster.list("externalsecrets.external-secrets.io")) {
        const { namespace } = external.metadata;
        const spec = external.spec;
        const server = arnToServer[spec.data[0].remoteRef.key];
        assert.ok(server, `${namespace}/${external.metadata.name} reads a secret of the stack's servers`);
        assert.deepStrictEqual(spec.secretStoreRef, { kind: "ClusterSecretStore", name: "aws-secrets-manager" });
        const password = SECRETS_MANAGER_PASSWORDS[server];
        const templates: Record<string, string> = spec.target.template.data ?? {};
        for (const from of spec.target.template.templateFrom ?? []) {
            const source = cluster.get("secret", from.secret.name, namespace);
            for (const item of from.secret.items) {
                templates[item.key] = Buffer.from(source.data[item.key], "base64").toString();
            }
        }
        const data = Object.fromEntries(Object.entries(templates).map(([key, t]) => [key, renderTemplate(t, password)]));
        const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: spec.target.name, namespace }, type: "Opaque", stringData: data };
        cluster.kubectl(["apply", "-f", "-"], JSON.stringify(secret));
        written.push(`${namespace}/${spec.target.name}`);
    }
    return written.sort();
}

describe("velure's two database servers, their passwords in Secrets Manager (the project's dev stack)", function () {
    this.timeout(20 * 60 * 1000);
    let cluster: LocalCluster;
    let project: PulumiProject;
    let dir: string;
    let config: Record<string, unknown>;
    const servers = stackFileConfig("dev")["velure-pooling:databaseServers"] as any[];
    const arnToServer = Object.fromEntries(servers.map((s) => [s.secretsManagerSecret, s.name]));

    before(async () => {
        assertToolchainBuilt();
        dir = scratch("servers");
        cluster = await new LocalCluster().start();
        cluster.kubectl(["apply", "-f", EXTERNAL_SECRETS_CRDS]);
        cluster.kubectl(["wait", "--for=condition=Established", "crd/externalsecrets.external-secrets.io", "crd/clustersecretstores.external-secrets.io", "--timeout=60s"]);
        cluster.kubectl(["apply", "-f", "-"], JSON.stringify(CLUSTER_SECRET_STORE));
        // velure's deploy workflow creates the services' namespaces; Prometheus has its own.
        for (const namespace of [...SERVICE_NAMESPACES, "monitoring"]) {
            cluster.kubectl(["create", "namespace", namespace]);
        }
        project = new PulumiProject("servers", dir);
        config = { ...stackFileConfig("dev"), ...harnessConfig(cluster) };
        await project.init(config, {});
    });

    after(async function () {
        await cleanUp(this, cluster, dir);
    });

    it("deploys pgbouncer-sidecar: each service's sidecar on its own server, with that server's user, and ExternalSecrets for every password", async () => {
        await project.ok(["up", "--yes", "--skip-preview"]);
        const written = syncExternalSecrets(cluster, arnToServer);
        assert.deepStrictEqual(written, [
            "authentication/velure-auth-service-db-credentials",
            "authentication/velure-auth-service-pgbouncer-auth",
            "order/velure-publish-order-service-db-credentials",
            "order/velure-publish-order-service-pgbouncer-auth",
        ]);
        for (const namespace of SERVICE_NAMESPACES) {
            assertPodReferencesExist(cluster, namespace, "after up");
        }
        const auth = cluster.get("deployment", "velure-auth-service", "authentication");
        assert.ok(hasSidecar(auth.spec.template.spec));
        assert.strictEqual(appEnv(auth.spec.template.spec).POSTGRES_USER, "velure_admin");
        const ini = cluster.get("configmap", "velure-auth-service-pgbouncer-config", "authentication").data["pgbouncer.ini"];
        assert.match(ini, /^velure_auth = host=velure-dev-auth\.c9akciq32\.us-east-1\.rds\.amazonaws\.com port=5432 dbname=velure_auth$/m);
        assert.doesNotMatch(ini, /velure_orders/, "the auth sidecar knows only its own server");
        const userlist = Buffer.from(cluster.get("secret", "velure-auth-service-pgbouncer-auth", "authentication").data["userlist.txt"], "base64").toString();
        assert.match(userlist, /^"velure_admin" "sm-Auth-P4ss ""q"""$/m, "the userlist ESO renders quotes the password as PgBouncer reads it");
        assert.match(userlist, /^"pgbouncer_stats" "[A-Za-z0-9]{32}"$/m);
    });

    it("keeps the Secrets Manager passwords out of the state, even after a refresh and another up", async () => {
        await project.ok(["refresh", "--yes"]);
        await project.ok(["up", "--yes", "--skip-preview"]);
        const state = (await project.ok(["stack", "export"])).stdout;
        for (const password of Object.values(SECRETS_MANAGER_PASSWORDS)) {
            assert.ok(!state.includes(password) && !state.includes(password.replace(/"/g, '""')), "a Secrets Manager password is in the state");
            assert.ok(!state.includes(Buffer.from(password).toString("base64")), "a Secrets Manager password is in the state (base64)");
        }
        const types = JSON.parse(state).deployment.resources.map((r: any) => r.type);
        assert.ok(types.includes("kubernetes:external-secrets.io/v1:ExternalSecret"));
    });

    it("switches to pgbouncer-cluster: a central PgBouncer per server, each service wired to its own server's", async () => {
        project.setConfig({ ...config, "velure-pooling:mode": "pgbouncer-cluster" });
        await project.ok(["up", "--yes", "--skip-preview"]);
        syncExternalSecrets(cluster, arnToServer);
        for (const server of ["auth", "orders"]) {
            const deployment = cluster.get("deployment", "pgbouncer", `velure-db-${server}`);
            assert.strictEqual(deployment.status.readyReplicas, 2, `the ${server} server's PgBouncer is ready`);
            assertPodReferencesExist(cluster, `velure-db-${server}`, "after the switch");
        }
        const hosts = Object.fromEntries(
            [["authentication", "velure-auth-service"], ["order", "velure-publish-order-service"]].map(([namespace, name]) => [
                name,
                appEnv(cluster.get("deployment", name, namespace).spec.template.spec).POSTGRES_HOST,
            ]),
        );
        assert.deepStrictEqual(hosts, {
            "velure-auth-service": "pgbouncer.velure-db-auth.svc.cluster.local",
            "velure-publish-order-service": "pgbouncer.velure-db-orders.svc.cluster.local",
        });
        const outputs = JSON.parse((await project.ok(["stack", "output", "--json"])).stdout);
        assert.deepStrictEqual(
            outputs.connectionBudget.map((s: any) => [s.server, s.used, s.available]),
            [["server auth", 40, 90], ["server orders", 40, 90]],
        );
        assert.deepStrictEqual(helmList(cluster).map((r) => `${r.namespace}/${r.name}:${r.status}`).sort(), [
            "authentication/velure-auth-service:deployed",
            "order/velure-publish-order-service:deployed",
        ]);
    });

    it("destroys what it made, and leaves the services' namespaces that it did not create", async () => {
        await project.ok(["destroy", "--yes", "--skip-preview"]);
        for (const namespace of SERVICE_NAMESPACES) {
            assert.ok(cluster.get("namespace", namespace), `${namespace} is still there`);
            assert.deepStrictEqual(cluster.list("externalsecrets.external-secrets.io", namespace), []);
        }
    });
});
