// velure as it is: the project's dev stack (two database servers, their passwords in AWS Secrets Manager, the
// services in the namespaces `authentication` and `order` that already exist, run by velure's own charts as its
// deploy workflow installed them) on the real engine and API server, with External Secrets Operator's controller
// running (its fake provider stands in for Secrets Manager, in velure's ClusterSecretStore aws-secrets-manager).
// The fixture chart tests/fixtures/charts/url-service stands in for velure's charts: POSTGRES_URL from the Secret
// the chart fixes, no hooks, a read-only root filesystem. No password is given to Pulumi.
import * as assert from "assert";
import { LocalCluster } from "./cluster";
import { hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { assertPodReferencesExist, cleanUp, harnessConfig, helm, helmList, stackFileConfig } from "./stacks";
import { assertToolchainBuilt } from "../toolchain";
import { STAND_IN_CHART } from "../../plan/runtime";

/** What Secrets Manager holds for each server (velure/dev/rds-auth, velure/dev/rds-orders): only the cluster sees it. */
const SECRETS_MANAGER_PASSWORDS: Record<string, string> = { auth: 'sm-Auth P4ss+"q"@/?#%', orders: "sm-Orders-P4ss" };
const SERVICE_NAMESPACES = ["authentication", "order"];
/** velure's releases and the Secret each chart reads its URL from (key url). */
const RELEASES = [
    { namespace: "authentication", name: "velure-auth", secret: "velure-auth-postgres", server: "auth", database: "velure_auth" },
    { namespace: "order", name: "velure-publish-order", secret: "order-database", server: "orders", database: "velure_orders" },
];

/** velure's store for Secrets Manager, by its name; the fake provider holds each server's secret as Secrets Manager does (JSON). */
function clusterSecretStore(servers: any[]): object {
    const data = servers.map((s) => {
        const password = SECRETS_MANAGER_PASSWORDS[s.name];
        const url = `postgresql://velure_admin:${encodeURIComponent(password)}@${s.host}:5432/velure_${s.name}?sslmode=require`;
        return { key: s.secretsManagerSecret, value: JSON.stringify({ username: "velure_admin", password, host: s.host, port: 5432, dbname: `velure_${s.name}`, url }) };
    });
    return { apiVersion: "external-secrets.io/v1", kind: "ClusterSecretStore", metadata: { name: "aws-secrets-manager" }, spec: { provider: { fake: { data } } } };
}

/** velure's own ExternalSecret for a chart's Secret (as its external-secrets manifests declare it): the URL straight to RDS. */
function velureExternalSecret(release: (typeof RELEASES)[number], arn: string): object {
    return {
        apiVersion: "external-secrets.io/v1",
        kind: "ExternalSecret",
        metadata: { name: release.secret, namespace: release.namespace },
        spec: {
            refreshInterval: "1h",
            secretStoreRef: { kind: "ClusterSecretStore", name: "aws-secrets-manager" },
            target: { name: release.secret, creationPolicy: "Owner" },
            data: [{ secretKey: "url", remoteRef: { key: arn, property: "url" } }],
        },
    };
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
    assert.strictEqual(ref.name, release.secret, `${release.name} still reads the Secret its chart fixes`);
    let url: URL | undefined;
    await cluster.waitFor(`${release.namespace}/${release.secret} key ${ref.key} with host ${expectHost}`, () => {
        const text = secretKey(cluster, release.namespace, release.secret, ref.key);
        url = text ? new URL(text) : undefined;
        return url?.hostname === expectHost;
    }, 60000);
    // For the record of what each mode's pods resolve POSTGRES_URL to (the password masked).
    console.log(`      ${release.namespace}/${release.name} reads ${ref.key}: ${(url as URL).href.replace(/:[^:@/]*@/, ":***@")}`);
    return url as URL;
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

    it("refuses to run beside velure's ExternalSecrets, and takes the releases over as the README says: no second copy, the pods rolled onto the sidecar", async () => {
        const beside = await project.run(["up", "--yes", "--skip-preview"]);
        assert.notStrictEqual(beside.code, 0, "an up beside velure's own ExternalSecrets fails");
        assert.match(beside.stdout + beside.stderr, /velure-auth-postgres.*already exists|already exists.*velure-auth-postgres/);
        // The hand-over (README "Taking over velure's releases"). 1: velure's ExternalSecrets go, their Secrets stay
        // (the running pods read them at start).
        for (const release of RELEASES) {
            cluster.kubectl(["delete", "externalsecret", release.secret, "-n", release.namespace, "--cascade=orphan"]);
            assert.ok(secretKey(cluster, release.namespace, release.secret, "url"), "the Secret outlives velure's ExternalSecret");
        }
        // 2: an up: the program's ExternalSecrets adopt the Secrets; Helm refuses a second release of each name.
        const second = await project.run(["up", "--yes", "--skip-preview"]);
        assert.notStrictEqual(second.code, 0);
        assert.match(second.stdout + second.stderr, /cannot re-use a name that is still in use/);
        for (const release of RELEASES) {
            await podUrl(cluster, release, servers.find((s) => s.name === release.server).host);
            const unpatched = new URL(secretKey(cluster, release.namespace, release.secret, "url") as string);
            assert.strictEqual(unpatched.searchParams.get("sslmode"), "require", "velure's pods, still without the sidecar, reach the database itself");
        }
        // 3: the releases into the stack, as they are; 4: an up upgrades them.
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
            const owner = cluster.get("secret", release.secret, release.namespace).metadata.ownerReferences;
            const ours = cluster.get("externalsecret", release.secret, release.namespace);
            assert.deepStrictEqual(owner.map((o: any) => o.uid), [ours.metadata.uid], "the program's ExternalSecret owns the Secret now");
            const pdbs = cluster.list("poddisruptionbudgets", release.namespace);
            assert.strictEqual(pdbs.length, 1, "one PDB over the pods (the sidecar's)");
            const podLabels = deployment.spec.template.metadata.labels;
            assert.ok(Object.entries(pdbs[0].spec.selector.matchLabels).every(([k, v]) => podLabels[k] === v), `${release.name}: the sidecar's PDB selects the chart's pods`);
        }
        for (const namespace of SERVICE_NAMESPACES) {
            assertPodReferencesExist(cluster, namespace, "after the takeover");
        }
    });

    it("keeps the Secrets Manager passwords out of the state, even after a refresh and another up, which roll no pod", async () => {
        const generations = () => RELEASES.map((r) => cluster.get("deployment", r.name, r.namespace).metadata.generation);
        const before = generations();
        await project.ok(["refresh", "--yes"]);
        await project.ok(["up", "--yes", "--skip-preview"]);
        // The operator writes the ExternalSecrets' status at every sync; their spec, which the pods roll on, is the same.
        assert.deepStrictEqual(generations(), before, "no pod template changed");
        // The run's read of the ClusterSecretStore keeps its spec in the state, and the fake provider's spec is the test's
        // stand-in for Secrets Manager itself: it holds the passwords (velure's AWS store holds none). Everything else
        // in the state must not.
        const exported = JSON.parse((await project.ok(["stack", "export"])).stdout);
        const resources = exported.deployment.resources.filter((r: any) => r.type !== "kubernetes:external-secrets.io/v1:ClusterSecretStore");
        assert.ok(resources.length < exported.deployment.resources.length, "the store's read is in the state");
        const state = JSON.stringify(resources);
        for (const password of Object.values(SECRETS_MANAGER_PASSWORDS)) {
            for (const form of [password, encodeURIComponent(password), password.replace(/"/g, '""'), Buffer.from(password).toString("base64")]) {
                assert.ok(!state.includes(form), "a Secrets Manager password is in the state");
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
            assert.match(secretKey(cluster, release.namespace, release.secret, "url.pgbouncer-sidecar") as string, /@127\.0\.0\.1:6432\//, "the sidecar pods' key, while they drain");
            assert.match(secretKey(cluster, release.namespace, release.secret, "url") as string, new RegExp(`@${host.replace(/\./g, "\\.")}:5432/`), "the chart's own key: the current URL");
        }
        for (const server of ["auth", "orders"]) {
            assert.strictEqual(cluster.get("deployment", "pgbouncer", `velure-db-${server}`).status.readyReplicas, 2, `the ${server} server's PgBouncer is ready`);
        }
        const outputs = JSON.parse((await project.ok(["stack", "output", "--json"])).stdout);
        assert.deepStrictEqual(outputs.services["auth-service"].connection, { contract: "urlSecret", secret: "authentication/velure-auth-postgres", key: "url" });
    });

    it("destroys what it made, and leaves the services' namespaces that it did not create", async () => {
        await project.ok(["destroy", "--yes", "--skip-preview"]);
        for (const namespace of SERVICE_NAMESPACES) {
            assert.ok(cluster.get("namespace", namespace), `${namespace} is still there`);
            assert.deepStrictEqual(cluster.list("externalsecrets.external-secrets.io", namespace), []);
        }
        assert.deepStrictEqual(helmList(cluster), [], "the adopted releases are the stack's now: destroy uninstalls them (README)");
    });
});
