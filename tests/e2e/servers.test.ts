// velure as it is: the project's dev stack (two database servers, their passwords in AWS Secrets Manager, the
// services in the namespaces `authentication` and `order` that already exist, run by velure's own charts as its
// deploy workflow installed them) on the real engine and API server, with External Secrets Operator's controller
// running (its fake provider stands in for Secrets Manager, in velure's ClusterSecretStore aws-secrets-manager).
// The fixture chart tests/fixtures/charts/url-service stands in for velure's charts: POSTGRES_URL from the Secret
// the chart fixes, no hooks, a read-only root filesystem, velure's deny-all NetworkPolicy. velure's ExternalSecrets
// are shaped as its infrastructure/kubernetes/external-secrets files have them (`-es` names, creationPolicy Owner,
// the secret's name as the remote key) and applied the way its README applies them (kubectl apply), again later. No
// password is given to Pulumi.
import * as assert from "assert";
import { LocalCluster } from "./cluster";
import { hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { assertPodReferencesExist, cleanUp, harnessConfig, helm, helmList, stackFileConfig } from "./stacks";
import { assertToolchainBuilt } from "../toolchain";
import { STAND_IN_CHART } from "../../plan/runtime";
import { PLANTED_STORE_CREDENTIAL, RELEASES, SECRETS_MANAGER_PASSWORDS, SERVICE_NAMESPACES, clusterSecretStore, velureExternalSecret } from "./velure";

/** What velure's side of a release is: its Secret (uid, data, owner) and its ExternalSecret's spec. */
function velureSide(cluster: LocalCluster, release: (typeof RELEASES)[number]): unknown {
    const secret = cluster.get("secret", release.secret, release.namespace);
    const es = cluster.get("externalsecret", release.velureEs, release.namespace);
    return { uid: secret.metadata.uid, data: secret.data, owners: secret.metadata.ownerReferences.map((o: any) => o.name), es: es.spec };
}

/** A key of a Secret in the cluster, decoded; undefined while it is not there. */
function secretKey(cluster: LocalCluster, namespace: string, name: string, key: string): string | undefined {
    const data = cluster.get("secret", name, namespace)?.data?.[key];
    return data === undefined ? undefined : Buffer.from(data, "base64").toString();
}

/** The URL that a release's pods read, once External Secrets Operator has written it: the key their POSTGRES_URL names. */
async function podUrl(cluster: LocalCluster, release: (typeof RELEASES)[number], expectHost: string): Promise<URL> {
    const app = cluster.get("deployment", release.name, release.namespace).spec.template.spec.containers[0];
    const ref = app.env.find((e: any) => e.name === "POSTGRES_URL").valueFrom.secretKeyRef;
    const secret = hasPooler(app) ? release.ours : release.secret;
    assert.strictEqual(ref.name, secret, `${release.name} reads ${secret}`);
    let url: URL | undefined;
    await cluster.waitFor(`${release.namespace}/${secret} key ${ref.key} with host ${expectHost}`, () => {
        const text = secretKey(cluster, release.namespace, secret, ref.key);
        url = text ? new URL(text) : undefined;
        return url?.hostname === expectHost;
    }, 60000);
    // For the record of what each mode's pods resolve POSTGRES_URL to (the password masked).
    console.log(`      ${release.namespace}/${release.name} reads ${ref.key}: ${(url as URL).href.replace(/:[^:@/]*@/, ":***@")}`);
    return url as URL;
}

/** Whether the app container reads its URL from the program's Secret (the post-renderer's work) rather than its chart's. */
function hasPooler(app: any): boolean {
    return app.env.some((e: any) => e.valueFrom?.secretKeyRef?.name?.endsWith("-pooler-url"));
}

describe("velure as it runs: its charts' Secrets and releases taken over, External Secrets Operator rendering the URLs (the project's dev stack)", function () {
    this.timeout(25 * 60 * 1000);
    let cluster: LocalCluster;
    let project: PulumiProject;
    let dir: string;
    let config: Record<string, unknown>;
    const servers = stackFileConfig("dev")["velure-pooling:databaseServers"] as any[];
    const arnOf = (server: string) => servers.find((s) => s.name === server).secretsManagerSecret;

    before(async () => {
        assertToolchainBuilt();
        dir = scratch("servers");
        cluster = await new LocalCluster().start();
        await cluster.startExternalSecrets();
        cluster.kubectl(["apply", "-f", "-"], JSON.stringify(clusterSecretStore(servers)));
        // velure as its deploy workflow leaves it: the namespaces, its ExternalSecrets, its releases (helm upgrade --install).
        for (const namespace of [...SERVICE_NAMESPACES, "monitoring"]) {
            cluster.kubectl(["create", "namespace", namespace]);
        }
        for (const release of RELEASES) {
            cluster.kubectl(["apply", "-f", "-"], JSON.stringify(velureExternalSecret(release, arnOf(release.server))));
            helm(cluster, ["upgrade", "--install", release.name, STAND_IN_CHART, "-n", release.namespace, "--wait", "--timeout", "120s"]);
        }
        const services = (stackFileConfig("dev")["velure-pooling:services"] as any[]).map((s) => ({ ...s, chart: { path: STAND_IN_CHART } }));
        project = new PulumiProject("servers", dir);
        config = { ...stackFileConfig("dev"), "velure-pooling:services": services, ...harnessConfig(cluster) };
        await project.init(config, {});
    });

    after(async function () {
        await cleanUp(this, cluster, dir);
    });

    it("starts from velure's own state: ESO writes the charts' Secrets with URLs straight to RDS", async () => {
        for (const release of RELEASES) {
            await cluster.waitFor(`${release.secret} from velure's ExternalSecret`, () => Boolean(secretKey(cluster, release.namespace, release.secret, "url")), 60000);
            assert.match(secretKey(cluster, release.namespace, release.secret, "url") as string, /\.rds\.amazonaws\.com:5432\//);
        }
        assert.deepStrictEqual(helmList(cluster).map((r) => `${r.namespace}/${r.name}:${r.revision}`).sort(), ["authentication/velure-auth:1", "order/velure-publish-order:1"]);
    });

    it("takes the releases over as the README says, beside velure's ExternalSecrets: no second copy, the pods rolled onto the sidecar, velure's Secrets untouched", async () => {
        const velureBefore = RELEASES.map((r) => velureSide(cluster, r));
        // The hand-over (README "Taking over velure's releases"). 1: an up: the pooler and the program's own URL
        // Secrets; Helm refuses a second release of each name.
        const first = await project.run(["up", "--yes", "--skip-preview"]);
        assert.notStrictEqual(first.code, 0);
        assert.match(first.stdout + first.stderr, /cannot re-use a name that is still in use/);
        assert.doesNotMatch(first.stdout + first.stderr, /already exists/, "no object of the program's clashes with velure's");
        for (const release of RELEASES) {
            await podUrl(cluster, release, servers.find((s) => s.name === release.server).host);
            assert.ok(secretKey(cluster, release.namespace, release.ours, "url.pgbouncer-sidecar"), `${release.ours} is written beside velure's Secret`);
        }
        // 2: the releases into the stack, as they are; 3: an up upgrades them.
        const stack = JSON.parse((await project.ok(["stack", "export"])).stdout);
        const provider = stack.deployment.resources.find((r: any) => r.type === "pulumi:providers:kubernetes").urn;
        for (const release of RELEASES) {
            await project.ok(["import", "kubernetes:helm.sh/v3:Release", release.name, `${release.namespace}/${release.name}`, "--provider", `velure-k8s=${provider}`, "--yes", "--protect=false", "--generate-code=false"]);
        }
        await project.ok(["up", "--yes", "--skip-preview"]);
        assert.deepStrictEqual(helmList(cluster).map((r) => `${r.namespace}/${r.name}:${r.status}`).sort(), [
            "authentication/velure-auth:deployed",
            "order/velure-publish-order:deployed",
        ], "the same releases, upgraded: no second copy");
        for (const release of RELEASES) {
            const url = await podUrl(cluster, release, "127.0.0.1");
            assert.strictEqual(url.port, "6432");
            assert.strictEqual(url.pathname, `/${release.database}`);
            assert.strictEqual(decodeURIComponent(url.username), "velure_admin");
            assert.strictEqual(decodeURIComponent(url.password), SECRETS_MANAGER_PASSWORDS[release.server], "ESO rendered the password, percent-encoded");
            const deployment = cluster.get("deployment", release.name, release.namespace);
            assert.ok(hasSidecar(deployment.spec.template.spec), `${release.name}'s pods carry the PgBouncer sidecar`);
            const owner = cluster.get("secret", release.ours, release.namespace).metadata.ownerReferences;
            assert.deepStrictEqual(owner.map((o: any) => o.uid), [cluster.get("externalsecret", release.ours, release.namespace).metadata.uid], "the program's ExternalSecret owns its own Secret");
            const pdbs = cluster.list("poddisruptionbudgets", release.namespace);
            assert.strictEqual(pdbs.length, 1, "one PDB over the pods (the sidecar's)");
            const podLabels = deployment.spec.template.metadata.labels;
            assert.ok(Object.entries(pdbs[0].spec.selector.matchLabels).every(([k, v]) => podLabels[k] === v), `${release.name}: the sidecar's PDB selects the chart's pods`);
        }
        assert.deepStrictEqual(RELEASES.map((r) => velureSide(cluster, r)), velureBefore, "velure's Secrets and ExternalSecrets as they were: one writer each");
        for (const release of RELEASES) {
            assert.match(secretKey(cluster, release.namespace, release.secret, "url") as string, /\.rds\.amazonaws\.com:5432\/.*sslmode=require/, "velure's url, straight to RDS, for a pod the post-renderer never saw");
        }
        for (const namespace of SERVICE_NAMESPACES) {
            assertPodReferencesExist(cluster, namespace, "after the takeover");
        }
    });

    it("velure re-applies its external-secrets folder (its README's step): nothing the pods read changes", async () => {
        const read = () => RELEASES.map((r) => ({ generation: cluster.get("deployment", r.name, r.namespace).metadata.generation, ours: cluster.get("secret", r.ours, r.namespace).data }));
        const before = read();
        for (const release of RELEASES) {
            cluster.kubectl(["apply", "-f", "-"], JSON.stringify(velureExternalSecret(release, arnOf(release.server))));
            cluster.kubectl(["annotate", "externalsecret", release.velureEs, "-n", release.namespace, "force-sync=" + Date.now(), "--overwrite"]);
        }
        await cluster.waitFor("velure's ExternalSecrets synced again", () => RELEASES.every((r) => cluster.get("externalsecret", r.velureEs, r.namespace).status?.conditions?.some((c: any) => c.type === "Ready" && c.status === "True")), 60000);
        assert.deepStrictEqual(read(), before, "the pods' template and the program's Secrets are the same");
        for (const namespace of SERVICE_NAMESPACES) {
            assertPodReferencesExist(cluster, namespace, "after velure re-applied its ExternalSecrets");
        }
    });

    it("keeps the Secrets Manager passwords and the store's own credential out of the state, even after a refresh and another up, which roll no pod", async () => {
        const generations = () => RELEASES.map((r) => cluster.get("deployment", r.name, r.namespace).metadata.generation);
        const before = generations();
        await project.ok(["refresh", "--yes"]);
        await project.ok(["up", "--yes", "--skip-preview"]);
        // The operator writes the ExternalSecrets' status at every sync; their spec, which the pods roll on, is the same.
        assert.deepStrictEqual(generations(), before, "no pod template changed");
        // The run reads the ClusterSecretStore, whose spec (the fake provider's data, and its copy in kubectl's
        // last-applied-configuration) holds the passwords and the planted credential: every field of that read is a
        // secret in the state, so no form of them is there, in the read or anywhere else.
        const exported = JSON.parse((await project.ok(["stack", "export"])).stdout);
        const store = exported.deployment.resources.find((r: any) => r.type === "kubernetes:external-secrets.io/v1:ClusterSecretStore");
        assert.ok(store, "the store's read is in the state");
        const state = JSON.stringify(exported);
        for (const secret of [...Object.values(SECRETS_MANAGER_PASSWORDS), PLANTED_STORE_CREDENTIAL]) {
            for (const form of [secret, encodeURIComponent(secret), secret.replace(/"/g, '""'), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString("base64")]) {
                assert.ok(!state.includes(form), `a credential of the store is in the state (${form.slice(0, 6)}…)`);
            }
        }
    });

    it("switches to pgbouncer-cluster: the URLs point at each server's central PgBouncer, the sidecar's URL kept for the pods still on it", async () => {
        project.setConfig({ ...config, "velure-pooling:mode": "pgbouncer-cluster" });
        await project.ok(["up", "--yes", "--skip-preview"]);
        for (const release of RELEASES) {
            const host = `pgbouncer.velure-db-${release.server}.svc.cluster.local`;
            const url = await podUrl(cluster, release, host);
            assert.strictEqual(url.port, "5432");
            assert.strictEqual(url.searchParams.get("sslmode"), "disable");
            assert.ok(!hasSidecar(cluster.get("deployment", release.name, release.namespace).spec.template.spec), "no sidecar any more");
            assert.match(secretKey(cluster, release.namespace, release.ours, "url.pgbouncer-sidecar") as string, /@127\.0\.0\.1:6432\//, "the sidecar pods' key, while they drain");
            assert.match(secretKey(cluster, release.namespace, release.secret, "url") as string, /\.rds\.amazonaws\.com:5432\//, "velure's own key: velure's URL");
        }
        for (const server of ["auth", "orders"]) {
            assert.strictEqual(cluster.get("deployment", "pgbouncer", `velure-db-${server}`).status.readyReplicas, 2, `the ${server} server's PgBouncer is ready`);
        }
        const outputs = JSON.parse((await project.ok(["stack", "output", "--json"])).stdout);
        assert.deepStrictEqual(outputs.services["auth-service"].connection, { contract: "urlSecret", secret: "authentication/velure-auth-pooler-url", key: "url", chartSecret: "authentication/velure-auth-postgres" });
    });

    it("destroys what it made, and leaves the services' namespaces and velure's ExternalSecrets and Secrets, which it did not create", async () => {
        await project.ok(["destroy", "--yes", "--skip-preview"]);
        for (const namespace of SERVICE_NAMESPACES) {
            assert.ok(cluster.get("namespace", namespace), `${namespace} is still there`);
        }
        for (const release of RELEASES) {
            assert.deepStrictEqual(cluster.list("externalsecrets.external-secrets.io", release.namespace).map((e: any) => e.metadata.name), [release.velureEs], "velure's own ExternalSecret only");
            assert.ok(secretKey(cluster, release.namespace, release.secret, "url"), `${release.secret} is still velure's`);
        }
        assert.deepStrictEqual(helmList(cluster), [], "the adopted releases are the stack's now: destroy uninstalls them (README)");
    });
});
