// velure's dev stack on a real node: the kubelet, containerd and runc run every pod the program and velure's charts
// declare, from images built here (tests/e2e/images.ts), on the test's own control plane with no kwok. PostgreSQL 17
// with TLS from a local CA stands in for each RDS instance, outside the cluster on the node's host side, under the
// RDS endpoint's name (the node's DNS answers for it) and with velure's max_connections; External Secrets
// Operator's controller writes the URL Secrets from velure's ClusterSecretStore. The chart is the fixture with
// velure's pod security settings, in namespaces that enforce the restricted Pod Security profile.
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LocalCluster } from "./cluster";
import { exporterImage, pauseImage, pgbouncerImage, pgbouncerImageName, velureAppImage } from "./images";
import { RealNode } from "./node";
import { hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { cleanUp, harnessConfig, stackFileConfig } from "./stacks";
import { RELEASES, SERVICE_NAMESPACES, SECRETS_MANAGER_PASSWORDS, clusterSecretStore, velureExternalSecret } from "./velure";
import { assertToolchainBuilt } from "../toolchain";
import { PostgresServer, makeCertificates } from "../integration/servers";
import { STAND_IN_CHART } from "../../plan/runtime";
import { EXPORTER_CONTAINER, EXPORTER_DSN_KEY, PGBOUNCER_UID } from "../../components/pgbouncerPod";
import { POD_NAMES } from "../../components/specs";
import { SIDECAR_CONTAINER } from "../../components/pgbouncerSidecar";
import { ENDPOINT_REMOVAL_SECONDS } from "../../components/pgbouncerCluster";

/** The RDS stand-ins' addresses on the node's host side, one per server as RDS gives each instance its own. */
const SERVER_ADDRESSES: Record<string, string> = { auth: "10.77.0.1", orders: "10.77.0.2" };
const PGBOUNCER_VERSION = "1.24.1";
/** The images built here carry velure.local names, so that nothing takes them for the real ones (the README lists what differs). */
const EXPORTER_IMAGE = "velure.local/pgbouncer-exporter:v0.12.1";
const APP_IMAGES = {
    "auth-service": { image: { repository: "velure.local/velure-auth", tag: "stand-in" }, stands: "auth" as const },
    "publish-order-service": { image: { repository: "velure.local/velure-publish-order", tag: "stand-in" }, stands: "orders" as const },
};
/** The central PgBouncer's container (components/pgbouncerCluster.ts names it as the sidecar is named). */
const CENTRAL_CONTAINER = SIDECAR_CONTAINER;
const AUTH_VOLUME = POD_NAMES.volumes.auth;
const RESTRICTED = { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" };

type Release = (typeof RELEASES)[number];

describe("the real node: velure's dev stack's pods run on a kubelet, containerd and runc, and its requests go through the pooler", function () {
    this.timeout(30 * 60 * 1000);
    let cluster: LocalCluster;
    let node: RealNode;
    let project: PulumiProject;
    let dir: string;
    let config: Record<string, unknown>;
    const postgres: Record<string, PostgresServer> = {};
    const servers = stackFileConfig("dev")["velure-pooling:databaseServers"] as any[];

    before(async () => {
        assertToolchainBuilt();
        dir = scratch("real-node");
        cluster = await new LocalCluster().start({ kwokNodes: false });
        node = new RealNode(cluster, Object.values(SERVER_ADDRESSES));
        await node.start([
            pauseImage(),
            pgbouncerImage(PGBOUNCER_VERSION),
            exporterImage(EXPORTER_IMAGE),
            ...Object.values(APP_IMAGES).map((a) => velureAppImage(`${a.image.repository}:${a.image.tag}`, a.stands)),
        ]);
        const certificates = makeCertificates(servers.map((s) => `DNS:${s.host}`));
        const caFile = path.join(dir, "rds-stand-in-ca.pem");
        fs.writeFileSync(caFile, certificates.caCert);
        for (const server of servers) {
            postgres[server.name] = await new PostgresServer({
                maxConnections: server.maxConnections,
                databases: [`velure_${server.name}`],
                host: SERVER_ADDRESSES[server.name],
                port: 5432,
                tls: { cert: certificates.serverCert, key: certificates.serverKey },
                role: { user: server.user, password: SECRETS_MANAGER_PASSWORDS[server.name] },
                layer: "trixie",
            }).start();
            node.dns.addHost(server.host, SERVER_ADDRESSES[server.name]);
        }
        await cluster.startExternalSecrets();
        cluster.kubectl(["apply", "-f", "-"], JSON.stringify(clusterSecretStore(servers)));
        for (const namespace of SERVICE_NAMESPACES) {
            cluster.kubectl(["create", "namespace", namespace]);
            cluster.kubectl(["label", "namespace", namespace, ...Object.entries(RESTRICTED).map(([k, v]) => `${k}=${v}`)]);
        }
        cluster.kubectl(["create", "namespace", "monitoring"]);
        for (const release of RELEASES) {
            cluster.kubectl(["apply", "-f", "-"], JSON.stringify(velureExternalSecret(release, servers.find((s) => s.name === release.server).secretsManagerSecret)));
        }
        const services = (stackFileConfig("dev")["velure-pooling:services"] as any[]).map((s) => ({
            ...s,
            chart: { path: STAND_IN_CHART },
            image: APP_IMAGES[s.name as keyof typeof APP_IMAGES].image,
        }));
        config = {
            ...stackFileConfig("dev"),
            "velure-pooling:services": services,
            "velure-pooling:pgbouncerImage": pgbouncerImageName(PGBOUNCER_VERSION),
            "velure-pooling:monitoringExporterImage": EXPORTER_IMAGE,
            "velure-pooling:pgbouncerServerTlsCaFile": caFile,
            ...harnessConfig(cluster),
        };
        project = new PulumiProject("real-node", dir);
        await project.init(config, {});
    });

    after(async function () {
        const failed = this.test?.parent?.tests.some((t) => t.state !== "passed") ?? true;
        if (failed && cluster) {
            for (const namespace of [...SERVICE_NAMESPACES, "velure-db"]) {
                console.log(describePods(cluster, namespace));
            }
        }
        await node?.stop();
        for (const server of Object.values(postgres)) {
            server.stop();
        }
        await cleanUp(this, cluster, dir);
    });

    it("pulumi up (pgbouncer-sidecar): every pod Ready through the kubelet's own probes, PgBouncer beside each app, in namespaces that enforce the restricted profile", async () => {
        await project.ok(["up", "--yes", "--skip-preview"]);
        for (const release of RELEASES) {
            await waitForRollout(cluster, release);
            for (const pod of runningPods(cluster, release)) {
                assert.ok(hasSidecar(pod.spec), `${pod.metadata.name} carries the sidecar`);
                const statuses = [...(pod.status.initContainerStatuses ?? []), ...pod.status.containerStatuses];
                assert.ok(statuses.every((s: any) => s.ready), `${pod.metadata.name}: every container ready (${statuses.map((s: any) => `${s.name}=${s.ready}`).join(", ")})`);
            }
        }
    });

    it("the native sidecar serves before the app starts: the app's own start (AutoMigrate, golang-migrate) went through it at the first try", () => {
        for (const release of RELEASES) {
            for (const pod of runningPods(cluster, release)) {
                const sidecar = pod.spec.initContainers.find((c: any) => c.name === SIDECAR_CONTAINER);
                assert.strictEqual(sidecar?.restartPolicy, "Always", `${pod.metadata.name}: PgBouncer is a native sidecar`);
                const sidecarStatus = pod.status.initContainerStatuses.find((c: any) => c.name === SIDECAR_CONTAINER);
                const app = pod.status.containerStatuses.find((c: any) => c.name !== EXPORTER_CONTAINER);
                assert.ok(sidecarStatus.started && sidecarStatus.ready, `${pod.metadata.name}: the sidecar started (its startup probe passed) and is ready`);
                assert.ok(Date.parse(app.state.running.startedAt) >= Date.parse(sidecarStatus.state.running.startedAt), `${pod.metadata.name}: the app started after the sidecar`);
                // The app exits when its start cannot reach the database: one start, no restart.
                assert.strictEqual(app.restartCount, 0, `${pod.metadata.name}: the app's first start reached the database`);
                assert.strictEqual(sidecarStatus.restartCount, 0, `${pod.metadata.name}: the sidecar never restarted`);
            }
        }
    });

    it("PgBouncer reads its userlist as a non-root user, through the group the pod's fsGroup gives it, from a Secret volume no one else can read", () => {
        for (const release of RELEASES) {
            for (const pod of runningPods(cluster, release)) {
                const mount = pod.spec.initContainers.find((c: any) => c.name === SIDECAR_CONTAINER).volumeMounts.find((m: any) => m.name === AUTH_VOLUME);
                const [uid, groups, ...files] = cluster.kubectl(["exec", "-n", release.namespace, pod.metadata.name, "-c", SIDECAR_CONTAINER, "--", "sh", "-c", `id -u; id -G; stat -L -c '%n %a %u %g' ${mount.mountPath}/*`]).trim().split("\n");
                console.log(`      ${pod.metadata.name}: PgBouncer runs as uid ${uid} (groups ${groups}); ${files.join("; ")}`);
                assert.strictEqual(Number(uid), PGBOUNCER_UID, "PgBouncer runs as the image's postgres user");
                assert.ok(files.length > 0, "the userlist is mounted");
                for (const file of files) {
                    const [name, mode, owner, group] = file.split(" ");
                    assert.strictEqual(mode, "440", `${name}: readable by its owner and group only`);
                    assert.strictEqual(owner, "0", `${name}: owned by root, as the kubelet writes a Secret volume`);
                    assert.ok(groups.split(" ").includes(group), `${name}: its group (${group}) is one of PgBouncer's (${groups})`);
                }
            }
        }
    });

    it("an HTTP request to each app's Service writes and reads through its pod's sidecar: the server's connections are PgBouncer's", async () => {
        for (const release of RELEASES) {
            const answer = await request(cluster, release);
            const pods = runningPods(cluster, release);
            assert.ok(pods.some((p) => p.status.podIP === answer.serverSawClient), `${release.name}: the server saw ${answer.serverSawClient}, a pod of the release (${pods.map((p) => p.status.podIP)})`);
            const peers = pods.flatMap((pod) => {
                const bouncer = showPooler(cluster, pod, SIDECAR_CONTAINER);
                assert.ok(bouncer.clients.some((c) => c.database === release.database && c.addr === "127.0.0.1"), `${pod.metadata.name}: the app is a client of its sidecar`);
                return bouncer.servers.map((s) => `${s.local_addr}:${s.local_port}`);
            });
            await assertBackendsArePgBouncers(postgres[release.server], release.database, peers);
        }
    });

    it("kubectl delete pod: the app drains first, then its native sidecar stops on its own, inside the grace period the program gives the pod", async () => {
        const release = RELEASES.find((r) => r.server === "orders") as Release;
        const [pod] = runningPods(cluster, release);
        const followed = followPod(cluster, pod);
        await followed.watching;
        const deletedAt = Date.now();
        cluster.kubectl(["delete", "pod", "-n", release.namespace, pod.metadata.name, "--wait=false"]);
        const { last, goneAt } = await followed.gone;
        assertSidecarDrained(last, (goneAt - deletedAt) / 1000, "kubectl delete pod");
        await waitForRollout(cluster, release);
    });

    it("switches to pgbouncer-cluster: the apps' pods roll off the sidecar, and their requests go through the central PgBouncer's Service, whose pods hold the server connections", async () => {
        const rolledOff = RELEASES.flatMap((release) => runningPods(cluster, release).map((pod) => ({ pod, followed: followPod(cluster, pod) })));
        await Promise.all(rolledOff.map((r) => r.followed.watching));
        const switchedAt = Date.now();
        project.setConfig({ ...config, "velure-pooling:mode": "pgbouncer-cluster" });
        await project.ok(["up", "--yes", "--skip-preview"]);
        for (const { followed } of rolledOff) {
            const { last, goneAt } = await followed.gone;
            assertSidecarDrained(last, (goneAt - switchedAt) / 1000, "the switch's rollout (from the start of pulumi up)");
        }
        for (const release of RELEASES) {
            await waitForRollout(cluster, release);
            await cluster.waitFor(`${release.namespace}: one running pod per replica, none with the sidecar`, () => {
                const pods = runningPods(cluster, release);
                return pods.length === cluster.get("deployment", release.name, release.namespace).spec.replicas && pods.every((p) => !hasSidecar(p.spec) && p.status.podIP);
            }, 120000);
            const apps = runningPods(cluster, release);
            const central = centralPods(cluster, release.server);
            assert.strictEqual(central.length, 2, `the ${release.server} server's two central PgBouncer pods run`);
            const answer = await request(cluster, release);
            assert.ok(central.some((p) => p.status.podIP === answer.serverSawClient), `${release.name}: the server saw ${answer.serverSawClient}, a central PgBouncer pod (${central.map((p) => p.status.podIP)})`);
            const views = central.map((pod) => showPooler(cluster, pod, CENTRAL_CONTAINER));
            const appAddresses = apps.map((p) => p.status.podIP);
            assert.ok(views.some((v) => v.clients.some((c) => c.database === release.database && appAddresses.includes(c.addr))), `${release.name}'s pods (${appAddresses}) are clients of the central PgBouncer: ${JSON.stringify(views.map((v) => v.clients))}`);
            await assertBackendsArePgBouncers(postgres[release.server], release.database, views.flatMap((v) => v.servers.map((s) => `${s.local_addr}:${s.local_port}`)));
        }
    });

    it("the central PgBouncer's PDB refuses a second eviction while the first pod's replacement is not Ready, and the evicted pod drains as its preStop and grace period say", async () => {
        const namespace = "velure-db-auth";
        const pods = centralPods(cluster, "auth");
        assert.strictEqual(pods.length, 2);
        const followed = followPod(cluster, pods[0]);
        await followed.watching;
        const evictedAt = Date.now();
        evict(cluster, pods[0]);
        assert.throws(() => evict(cluster, pods[1]), /disruption budget/, "the second eviction is refused (429) while only one pod is Ready");
        const { last, goneAt } = await followed.gone;
        const grace = last.spec.terminationGracePeriodSeconds;
        const pgbouncer = last.status.containerStatuses.find((c: any) => c.name === CENTRAL_CONTAINER);
        console.log(`      evicted ${last.metadata.name}: gone ${((goneAt - evictedAt) / 1000).toFixed(1)} s after the eviction (preStop ${ENDPOINT_REMOVAL_SECONDS} s, grace ${grace} s); pgbouncer ${describeEnd(pgbouncer)}`);
        assert.strictEqual(pgbouncer.state.terminated?.exitCode, 0, "PgBouncer ended its own shutdown inside the grace period (137: the kubelet's SIGKILL)");
        await cluster.waitFor(`${namespace}: both central pods Ready again`, () => centralPods(cluster, "auth").length === 2, 180000);
        evict(cluster, centralPods(cluster, "auth")[0]);
    });

    it("destroys what it made: no pod of the program's is left on the node, and velure's namespaces stay", async () => {
        await project.ok(["destroy", "--yes", "--skip-preview"]);
        for (const server of servers) {
            await cluster.waitFor(`velure-db-${server.name} gone`, () => !cluster.get("namespace", `velure-db-${server.name}`), 180000);
        }
        for (const namespace of SERVICE_NAMESPACES) {
            assert.ok(cluster.get("namespace", namespace), `${namespace} is still there`);
            await cluster.waitFor(`${namespace}: the releases' pods gone`, () => cluster.list("pods", namespace).length === 0, 180000);
        }
    });
});

/** Waits until the release's Deployment has rolled out: every replica updated and Ready by the kubelet's probes. */
async function waitForRollout(cluster: LocalCluster, release: Release): Promise<void> {
    await cluster.waitFor(`${release.namespace}/${release.name} rolled out`, () => {
        const d = cluster.get("deployment", release.name, release.namespace);
        const want = d?.spec?.replicas ?? 1;
        return d?.status?.observedGeneration === d?.metadata?.generation && d?.status?.updatedReplicas === want && d?.status?.readyReplicas === want && (d?.status?.replicas ?? 0) === want;
    }, 300000);
}

/** The release's pods that run and are not being deleted, by its Deployment's selector (velure's charts' labels differ). */
function runningPods(cluster: LocalCluster, release: Release): any[] {
    const selector = cluster.get("deployment", release.name, release.namespace).spec.selector.matchLabels;
    const selected = (p: any) => Object.entries(selector).every(([k, v]) => p.metadata.labels?.[k] === v);
    return cluster.list("pods", release.namespace).filter((p) => selected(p) && p.status.phase === "Running" && !p.metadata.deletionTimestamp);
}

/** One request over the release's Service (its ClusterIP, through kube-proxy's rules): a write and a read in the database. */
async function request(cluster: LocalCluster, release: Release): Promise<{ serverSawClient: string }> {
    const service = cluster.get("service", release.name, release.namespace);
    const route = release.server === "auth" ? "register" : "orders";
    const response = await fetch(`http://${service.spec.clusterIP}:${service.spec.ports[0].port}/${route}`, { method: "POST" });
    const body = await response.text();
    assert.strictEqual(response.status, 200, `${release.name} POST /${route}: ${body}`);
    return JSON.parse(body);
}

interface PoolerView {
    clients: { database: string; addr: string }[];
    servers: { database: string; local_addr: string; local_port: string }[];
}

/**
 * SHOW CLIENTS and SHOW SERVERS of a pod's PgBouncer, run by its own psql inside its container, logged in as the
 * exporter's stats user with the exporter's DSN (read from the Secret the pod's exporter reads it from); the DSN,
 * with its password, goes in on stdin, not on a command line.
 */
function showPooler(cluster: LocalCluster, pod: any, container: string): PoolerView {
    const exporter = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: any) => c.name === EXPORTER_CONTAINER);
    const ref = exporter.env.find((e: any) => e.valueFrom?.secretKeyRef?.key === EXPORTER_DSN_KEY).valueFrom.secretKeyRef;
    const dsn = Buffer.from(cluster.get("secret", ref.name, pod.metadata.namespace).data[EXPORTER_DSN_KEY], "base64").toString();
    const show = (what: string) => {
        const out = cluster.kubectl(["exec", "-i", "-n", pod.metadata.namespace, pod.metadata.name, "-c", container, "--", "sh", "-c", `read -r DSN; psql "$DSN" -AF'|' --pset=footer=off -c 'SHOW ${what}'`], `${dsn}\n`);
        const [header, ...rows] = out.trim().split("\n");
        const columns = header.split("|");
        return rows.map((row) => Object.fromEntries(row.split("|").map((v, i) => [columns[i], v])));
    };
    return { clients: show("CLIENTS") as any, servers: show("SERVERS") as any };
}

/** Every backend of the database on the server is one of PgBouncer's server connections (address:port), none the app's own. */
async function assertBackendsArePgBouncers(server: PostgresServer, database: string, pooler: string[]): Promise<void> {
    const backends = await server.superuser(async (c) => (await c.query("SELECT host(client_addr) || ':' || client_port AS peer FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", [database])).rows.map((r) => r.peer as string));
    assert.ok(backends.length > 0, `${database}: the server has backends`);
    assert.deepStrictEqual(backends.filter((b) => !pooler.includes(b)), [], `${database}: every backend is a PgBouncer server connection (${pooler.join(", ")})`);
}

/** For a failed run's record: each pod's phase, containers and the kubelet's events. */
function describePods(cluster: LocalCluster, namespace: string): string {
    try {
        return cluster.kubectl(["describe", "pods", "-n", namespace]);
    } catch (err) {
        return `${namespace}: ${(err as Error).message}`;
    }
}

/** The central PgBouncer's pods of a server that are running and Ready, not being deleted. */
function centralPods(cluster: LocalCluster, server: string): any[] {
    return cluster.list("pods", `velure-db-${server}`).filter((p) => p.metadata.labels?.["app.kubernetes.io/name"] === "pgbouncer" && isReady(p) && !p.metadata.deletionTimestamp);
}

function isReady(pod: any): boolean {
    return (pod.status.conditions ?? []).some((c: any) => c.type === "Ready" && c.status === "True");
}

/** The Eviction API, as kubectl drain uses it; throws with the API server's refusal. */
function evict(cluster: LocalCluster, pod: any): void {
    const { name, namespace } = pod.metadata;
    cluster.kubectl(["create", "--raw", `/api/v1/namespaces/${namespace}/pods/${name}/eviction`, "-f", "-"], JSON.stringify({ apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace } }));
}

/** How a container ended: exit code, reason, and when it finished. */
function describeEnd(status: any): string {
    const t = status?.state?.terminated;
    return t ? `exit ${t.exitCode} (${t.reason}) at ${t.finishedAt}` : `not terminated (${JSON.stringify(status?.state)})`;
}

/**
 * What a sidecar pod's end shows when it drains as the program's arithmetic says: publish-order's app ends on its
 * own (exit 0, its 10 s Shutdown) and auth-service's on its SIGTERM (gin has no handler: Go's runtime exits with 2,
 * since the signal cannot kill a container's PID 1), never by the kubelet's SIGKILL (137); the native sidecar gets
 * its SIGTERM only after the app has ended, and ends its safe shutdown itself.
 */
function assertSidecarDrained(pod: any, seconds: number, what: string): void {
    const grace = pod.spec.terminationGracePeriodSeconds;
    const app = pod.status.containerStatuses.find((c: any) => c.name !== EXPORTER_CONTAINER);
    const sidecar = pod.status.initContainerStatuses.find((c: any) => c.name === SIDECAR_CONTAINER);
    console.log(`      ${what}: ${pod.metadata.name} gone after ${seconds.toFixed(1)} s (grace ${grace} s); app ${describeEnd(app)}; sidecar ${describeEnd(sidecar)}`);
    assert.ok([0, 2].includes(app.state.terminated?.exitCode), `${pod.metadata.name}: the app ended on its SIGTERM, not killed`);
    assert.strictEqual(sidecar.state.terminated?.exitCode, 0, `${pod.metadata.name}: the sidecar ended its own shutdown inside the grace period`);
    assert.ok(Date.parse(sidecar.state.terminated.finishedAt) >= Date.parse(app.state.terminated.finishedAt), `${pod.metadata.name}: the sidecar outlived the app`);
}

/**
 * Follows a pod through kubectl's watch until the API server deletes it: `watching` once the watch has the pod,
 * `gone` with the pod as it was deleted (its containers' last states) and when.
 */
function followPod(cluster: LocalCluster, pod: any): { watching: Promise<void>; gone: Promise<{ last: any; goneAt: number }> } {
    const child = spawn("kubectl", [`--kubeconfig=${cluster.kubeconfig}`, "get", "pod", pod.metadata.name, "-n", pod.metadata.namespace, "--watch", "--output-watch-events", "-o", "json"], { stdio: ["ignore", "pipe", "inherit"] });
    let seen: () => void = () => undefined;
    const watching = new Promise<void>((resolve) => (seen = resolve));
    const gone = new Promise<{ last: any; goneAt: number }>((resolve, reject) => {
        const objects = jsonStream((event) => {
            seen();
            if (event.type === "DELETED") {
                resolve({ last: event.object, goneAt: Date.now() });
                child.kill();
            }
        });
        child.stdout.on("data", objects);
        child.once("exit", (code) => reject(new Error(`the watch of ${pod.metadata.name} ended (${code}) before the pod was deleted`)));
    });
    gone.catch(() => undefined);
    return { watching, gone };
}

/** Splits a stream of concatenated JSON objects (kubectl's -o json watch) into objects, as they complete. */
function jsonStream(onObject: (value: any) => void): (chunk: Buffer) => void {
    let text = "";
    let scanned = 0;
    let depth = 0;
    let inString = false;
    let escaped = false;
    return (chunk) => {
        text += chunk.toString();
        for (; scanned < text.length; scanned++) {
            const ch = text[scanned];
            if (inString) {
                if (escaped) {
                    escaped = false;
                } else if (ch === "\\") {
                    escaped = true;
                } else if (ch === '"') {
                    inString = false;
                }
            } else if (ch === '"') {
                inString = true;
            } else if (ch === "{") {
                depth++;
            } else if (ch === "}" && --depth === 0) {
                onObject(JSON.parse(text.slice(0, scanned + 1)));
                text = text.slice(scanned + 1);
                scanned = -1;
            }
        }
    };
}
