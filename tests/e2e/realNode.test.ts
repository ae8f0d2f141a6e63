// velure's stacks on a real node: the kubelet, containerd and runc run every pod the program and velure's charts
// declare, from images built here (tests/e2e/images.ts), on the test's own control plane with no kwok. PostgreSQL 17
// with TLS from a local CA stands in for each RDS instance, outside the cluster on the node's host side, under the
// RDS endpoints' names of both stacks (the node's DNS answers for them) and with velure's max_connections; External
// Secrets Operator's controller writes the URL Secrets from velure's ClusterSecretStore. The chart is the fixture
// with velure's pod security settings, in namespaces that enforce the restricted Pod Security profile. Each stack ×
// PgBouncer mode runs on the one node, one stack after the other (RUNS).
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LocalCluster } from "./cluster";
import { PgBouncerImageVersion, exporterImage, pauseImage, pgbouncerImage, pgbouncerImageName, velureAppImage } from "./images";
import { RealNode } from "./node";
import { HttpTarget, describeLoadRow, startHttpLoad } from "./httpLoad";
import { hasSidecar } from "./pods";
import { PulumiProject, scratch } from "./pulumi";
import { cleanUp, harnessConfig, stackFileConfig, suiteFailed } from "./stacks";
import { RELEASES, SERVICE_NAMESPACES, SECRETS_MANAGER_PASSWORDS, clusterSecretStore, velureExternalSecret } from "./velure";
import { assertToolchainBuilt } from "../toolchain";
import { PostgresServer, makeCertificates, sleep } from "../integration/servers";
import { STAND_IN_CHART } from "../../plan/runtime";
import { EXPORTER_CONTAINER, EXPORTER_DSN_KEY, PGBOUNCER_UID } from "../../components/pgbouncerPod";
import { POD_NAMES } from "../../components/specs";
import { SIDECAR_CONTAINER } from "../../components/pgbouncerSidecar";
import { CENTRAL_CONTAINER, ENDPOINT_REMOVAL_SECONDS } from "../../components/pgbouncerCluster";

/** The RDS stand-ins' addresses on the node's host side, one per server as RDS gives each instance its own. */
const SERVER_ADDRESSES: Record<string, string> = { auth: "10.77.0.1", orders: "10.77.0.2" };
/** The images built here carry velure.local names, so that nothing takes them for the real ones (the README lists what differs). */
const EXPORTER_IMAGE = "velure.local/pgbouncer-exporter:v0.12.1";
const APP_IMAGES = {
    "auth-service": { image: { repository: "velure.local/velure-auth", tag: "stand-in" }, stands: "auth" as const },
    "publish-order-service": { image: { repository: "velure.local/velure-publish-order", tag: "stand-in" }, stands: "orders" as const },
};
const AUTH_VOLUME = POD_NAMES.volumes.auth;
const RESTRICTED = { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" };
const STACKS = ["dev", "prod"] as const;

type Release = (typeof RELEASES)[number];
type PgBouncerMode = "pgbouncer-sidecar" | "pgbouncer-cluster";

/** One stack on the node: its first `pulumi up`, the switch to the other PgBouncer mode if there is one, its destroy. */
interface Run {
    stack: (typeof STACKS)[number];
    version: PgBouncerImageVersion;
    modes: [PgBouncerMode] | [PgBouncerMode, PgBouncerMode];
    /** The stack's services the run deploys (all of them unless it says). */
    services?: string[];
    /** What the run adds to the stack's config for the switch, as the program's refusal tells a user to. */
    switchConfig?: Record<string, unknown>;
}

const RUNS: Run[] = [
    { stack: "dev", version: "1.24.1", modes: ["pgbouncer-sidecar", "pgbouncer-cluster"] },
    // prod's own mode first. Its switch to sidecars is over the auth server's budget on paper (the central pooler's
    // 30 beside the sidecars' 78, of 90), so the program refuses it (tests/e2e/engine.test.ts); the run accepts it
    // as the refusal says, since the connections really opened stay far below.
    {
        stack: "prod",
        version: "1.24.1",
        modes: ["pgbouncer-cluster", "pgbouncer-sidecar"],
        switchConfig: { "velure-pooling:acceptSwitchOverBudget": "pgbouncer-cluster->pgbouncer-sidecar" },
    },
    // PgBouncer 1.18 (Debian 12's), whose shutdown signals are not 1.24's (components/pgbouncerPod.ts). The program
    // refuses auth-service's pgx on it (named prepared statements in a transaction pool): publish-order alone.
    { stack: "dev", version: "1.18.0", modes: ["pgbouncer-sidecar"], services: ["publish-order-service"] },
];

/** What every run shares: the node, its control plane, and the database stand-ins. */
interface NodeSide {
    cluster: LocalCluster;
    node: RealNode;
    dir: string;
    caFile: string;
    postgres: Record<string, PostgresServer>;
}

describe("the real node: velure's stacks' pods run on a kubelet, containerd and runc, and their requests go through the pooler", function () {
    this.timeout(60 * 60 * 1000);
    const side = { postgres: {} } as NodeSide;
    const servers = STACKS.flatMap((stack) => stackFileConfig(stack)["velure-pooling:databaseServers"] as any[]);

    before(async () => {
        assertToolchainBuilt();
        side.dir = scratch("real-node");
        side.cluster = await new LocalCluster().start({ kwokNodes: false });
        side.node = new RealNode(side.cluster, Object.values(SERVER_ADDRESSES));
        const versions = [...new Set(RUNS.map((r) => r.version))];
        await side.node.start([
            pauseImage(),
            ...versions.map(pgbouncerImage),
            exporterImage(EXPORTER_IMAGE),
            ...Object.values(APP_IMAGES).map((a) => velureAppImage(`${a.image.repository}:${a.image.tag}`, a.stands)),
        ]);
        const certificates = makeCertificates(servers.map((s) => `DNS:${s.host}`));
        side.caFile = path.join(side.dir, "rds-stand-in-ca.pem");
        fs.writeFileSync(side.caFile, certificates.caCert);
        // One PostgreSQL per server name, answering for that server's endpoint in every stack.
        for (const server of servers) {
            side.postgres[server.name] ??= await new PostgresServer({
                maxConnections: server.maxConnections,
                databases: [`velure_${server.name}`],
                host: SERVER_ADDRESSES[server.name],
                port: 5432,
                tls: { cert: certificates.serverCert, key: certificates.serverKey },
                role: { user: server.user, password: SECRETS_MANAGER_PASSWORDS[server.name] },
                layer: "trixie",
            }).start();
            side.node.dns.addHost(server.host, SERVER_ADDRESSES[server.name]);
        }
        await side.cluster.startExternalSecrets();
        side.cluster.kubectl(["apply", "-f", "-"], JSON.stringify(clusterSecretStore(servers)));
        for (const namespace of SERVICE_NAMESPACES) {
            side.cluster.kubectl(["create", "namespace", namespace]);
            side.cluster.kubectl(["label", "namespace", namespace, ...Object.entries(RESTRICTED).map(([k, v]) => `${k}=${v}`)]);
        }
        side.cluster.kubectl(["create", "namespace", "monitoring"]);
    });

    after(async function () {
        if (suiteFailed(this) && side.cluster) {
            for (const namespace of [...SERVICE_NAMESPACES, ...new Set(servers.map((s) => centralNamespace(s.name)))]) {
                console.log(describePods(side.cluster, namespace));
            }
        }
        await side.node?.stop();
        for (const server of Object.values(side.postgres)) {
            server.stop();
        }
        await cleanUp(this, side.cluster, side.dir);
    });

    for (const run of RUNS) {
        describeRun(run, side);
    }
});

/** A run's tests, in order: up in its first mode, that mode's checks, the switch and the other mode's checks, destroy. */
function describeRun(run: Run, side: NodeSide): void {
    const [first, second] = run.modes;
    describe(`the ${run.stack} stack on PgBouncer ${run.version}${run.services ? ` (${run.services.join(", ")})` : ""}`, function () {
        const stackConfig = stackFileConfig(run.stack);
        const services = (stackConfig["velure-pooling:services"] as any[]).filter((s) => !run.services || run.services.includes(s.name));
        const releases = RELEASES.filter((r) => services.some((s) => s.release === r.name));
        const servers = stackConfig["velure-pooling:databaseServers"] as any[];
        // The stack's replicas: with autoscaling the chart leaves them to the HPA, which scales up to its minimum after the rollout.
        const replicas = Object.fromEntries(services.map((s) => [s.release, s.replicas ?? 1]));
        const centralReplicas = stackConfig["velure-pooling:pgbouncerReplicas"] as number;
        const stage = { side, releases, replicas, centralReplicas } as Stage;
        let config: Record<string, unknown>;

        before(async () => {
            // velure's ExternalSecrets as this stack's cluster has them (its Secrets Manager names).
            for (const release of releases) {
                side.cluster.kubectl(["apply", "-f", "-"], JSON.stringify(velureExternalSecret(release, servers.find((s) => s.name === release.server).secretsManagerSecret)));
            }
            config = {
                ...stackConfig,
                "velure-pooling:mode": first,
                "velure-pooling:services": services.map((s) => ({ ...s, chart: { path: STAND_IN_CHART }, image: APP_IMAGES[s.name as keyof typeof APP_IMAGES].image })),
                "velure-pooling:pgbouncerImage": pgbouncerImageName(run.version),
                "velure-pooling:monitoringExporterImage": EXPORTER_IMAGE,
                "velure-pooling:pgbouncerServerTlsCaFile": side.caFile,
                ...harnessConfig(side.cluster),
            };
            stage.project = new PulumiProject(`real-node-${run.stack}-${run.version.replace(/\./g, "-")}`, path.join(side.dir, `${run.stack}-${run.version}`));
            await stage.project.init(config, {});
        });

        it(`pulumi up (${first}): every pod Ready through the kubelet's own probes, in namespaces that enforce the restricted profile`, async () => {
            const startedAt = Date.now();
            await stage.project.ok(["up", "--yes", "--skip-preview"]);
            await waitForShape(stage, first);
            reportReady(stage, first, startedAt);
        });
        describeModeChecks(stage, first);
        if (second) {
            it(`switches to ${second}: the apps' pods roll off ${first === "pgbouncer-sidecar" ? "their sidecars" : "the central PgBouncer"}, each ending on its own`, async () => {
                const rolledOff = releases.flatMap((release) => runningPods(stage.side.cluster, release).map((pod) => followPod(stage.side.cluster, pod)));
                await Promise.all(rolledOff.map((r) => r.watching));
                const load = startHttpLoad(stage.releases.map((release) => httpTarget(stage, release)));
                const startedAt = Date.now();
                stage.project.setConfig({ ...config, ...run.switchConfig, "velure-pooling:mode": second });
                await stage.project.ok(["up", "--yes", "--skip-preview"]);
                for (const followed of rolledOff) {
                    const { last, goneAt } = await followed.gone;
                    assertDrained(last, (goneAt - startedAt) / 1000, "the switch's rollout (from the start of pulumi up)");
                }
                await waitForShape(stage, second);
                const settledAt = Date.now();
                reportReady(stage, second, startedAt);
                await sleep(3000);
                const rows = await load.stop(settledAt);
                rows.forEach((row) => console.log(`      ${describeLoadRow(`PgBouncer ${run.version} ${run.stack} ${first} -> ${second}`, row)}`));
                for (const row of rows) {
                    assert.strictEqual(row.lost, 0, `${row.release}: no acknowledged write lost`);
                    assert.strictEqual(row.failedAfterSettled, 0, `${row.release}: every request sent once the switch is done succeeds`);
                }
            });
            describeModeChecks(stage, second);
        }

        it("destroys what it made: no pod of the program's is left on the node, and velure's namespaces stay", async () => {
            await stage.project.ok(["destroy", "--yes", "--skip-preview"]);
            for (const server of servers) {
                await stage.side.cluster.waitFor(`${centralNamespace(server.name)} gone`, () => !stage.side.cluster.get("namespace", centralNamespace(server.name)), 180000);
            }
            for (const namespace of SERVICE_NAMESPACES) {
                assert.ok(stage.side.cluster.get("namespace", namespace), `${namespace} is still there`);
                await stage.side.cluster.waitFor(`${namespace}: the releases' pods gone`, () => stage.side.cluster.list("pods", namespace).length === 0, 180000);
            }
        });
    });
}

/** What a run's tests share once its before() ran. */
interface Stage {
    side: NodeSide;
    project: PulumiProject;
    releases: Release[];
    /** Each release's replicas, as the stack sets them. */
    replicas: Record<string, number>;
    /** The central PgBouncer's pods per server (pgbouncerReplicas). */
    centralReplicas: number;
}

/** What a real node shows of a mode, each a test. */
function describeModeChecks(stage: Stage, mode: PgBouncerMode): void {
    if (mode === "pgbouncer-sidecar") {
        it("the native sidecar serves before the app starts: the app's own start (AutoMigrate, golang-migrate) went through it at the first try", () => {
            for (const release of stage.releases) {
                for (const pod of runningPods(stage.side.cluster, release)) {
                    assertSidecarServedFirst(pod);
                }
            }
        });
        it("the sidecar's PgBouncer reads its userlist as a non-root user, through the group the pod's fsGroup gives it, from a Secret volume no one else can read", () => {
            for (const pod of stage.releases.flatMap((release) => runningPods(stage.side.cluster, release))) {
                assertUserlistReadable(stage.side.cluster, pod, SIDECAR_CONTAINER);
            }
        });
        it("an HTTP request to each app's Service writes and reads through its pod's sidecar: the server's connections are PgBouncer's", async () => {
            for (const release of stage.releases) {
                await assertRequestThroughSidecars(stage, release);
            }
        });
        it("kubectl delete pod: the app drains first, then its native sidecar stops on its own, inside the grace period the program gives the pod", async () => {
            const release = stage.releases.find((r) => r.server === "orders") as Release;
            const [pod] = runningPods(stage.side.cluster, release);
            const followed = followPod(stage.side.cluster, pod);
            await followed.watching;
            const deletedAt = Date.now();
            stage.side.cluster.kubectl(["delete", "pod", "-n", release.namespace, pod.metadata.name, "--wait=false"]);
            const { last, goneAt } = await followed.gone;
            assertDrained(last, (goneAt - deletedAt) / 1000, "kubectl delete pod");
            await waitForRollout(stage.side.cluster, release);
        });
    } else {
        it("the central PgBouncer reads its userlist as a non-root user, through the group the pod's fsGroup gives it, from a Secret volume no one else can read", () => {
            for (const server of new Set(stage.releases.map((r) => r.server))) {
                for (const pod of centralPods(stage.side.cluster, server)) {
                    assertUserlistReadable(stage.side.cluster, pod, CENTRAL_CONTAINER);
                }
            }
        });
        it("an HTTP request to each app's Service goes through the central PgBouncer's Service, whose pods hold the server connections", async () => {
            for (const release of stage.releases) {
                await assertRequestThroughCentral(stage, release);
            }
        });
        it("the central PgBouncer's PDB refuses a second eviction while the first pod's replacement is not Ready; the evicted pod serves its clients until they have left, then ends with status 0", async () => {
            await assertPdbHoldsEviction(stage, "auth");
        });
    }
}

/**
 * Waits until the releases run in the mode: every Deployment rolled out, one running pod per replica, each with
 * PgBouncer beside it (sidecar) or none (cluster, with the central PgBouncer's two pods Ready per server).
 */
async function waitForShape(stage: Stage, mode: PgBouncerMode): Promise<void> {
    const sidecars = mode === "pgbouncer-sidecar";
    for (const release of stage.releases) {
        await waitForRollout(stage.side.cluster, release);
        await stage.side.cluster.waitFor(`${release.namespace}: the stack's ${stage.replicas[release.name]} replicas running, ${sidecars ? "each with" : "none with"} the sidecar, every container ready`, () => {
            const pods = runningPods(stage.side.cluster, release);
            const replicas = stage.side.cluster.get("deployment", release.name, release.namespace).spec.replicas;
            return replicas >= stage.replicas[release.name] && pods.length === replicas && pods.every((p) => hasSidecar(p.spec) === sidecars && containerStatuses(p).every((s) => s.ready));
        }, 120000);
        if (!sidecars) {
            await stage.side.cluster.waitFor(`the ${release.server} server's ${stage.centralReplicas} central PgBouncer pods Ready`, () => centralPods(stage.side.cluster, release.server).length === stage.centralReplicas, 120000);
        }
    }
}

/** Prints, for every pod of the mode, how long it took from its creation to Ready, and from the start of pulumi up. */
function reportReady(stage: Stage, mode: PgBouncerMode, startedAt: number): void {
    const central = mode === "pgbouncer-cluster" ? [...new Set(stage.releases.map((r) => r.server))].flatMap((server) => centralPods(stage.side.cluster, server)) : [];
    for (const pod of [...central, ...stage.releases.flatMap((release) => runningPods(stage.side.cluster, release))]) {
        const ready = Date.parse(pod.status.conditions.find((c: any) => c.type === "Ready").lastTransitionTime);
        const created = Date.parse(pod.metadata.creationTimestamp);
        console.log(`      ${stage.project.stack} ${mode}: ${pod.metadata.namespace}/${pod.metadata.name} Ready ${((ready - created) / 1000).toFixed(0)} s after it was created, ${((ready - startedAt) / 1000).toFixed(0)} s after pulumi up began`);
    }
}

/** A sidecar pod's start: PgBouncer a native sidecar, started and ready, the app started after it and never restarted. */
function assertSidecarServedFirst(pod: any): void {
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

/** PgBouncer's uid and groups in the container, and the userlist volume's files: mode 0440, root's, in one of PgBouncer's groups. */
function assertUserlistReadable(cluster: LocalCluster, pod: any, container: string): void {
    const mount = podContainer(pod, container).volumeMounts.find((m: any) => m.name === AUTH_VOLUME);
    const [uid, groups, ...files] = cluster.kubectl(["exec", "-n", pod.metadata.namespace, pod.metadata.name, "-c", container, "--", "sh", "-c", `id -u; id -G; stat -L -c '%n %a %u %g' ${mount.mountPath}/*`]).trim().split("\n");
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

/** One request over the release's Service, seen by the server from a pod of the release, whose sidecar holds every backend. */
async function assertRequestThroughSidecars(stage: Stage, release: Release): Promise<void> {
    const answer = await request(stage.side.cluster, release);
    const pods = runningPods(stage.side.cluster, release);
    assert.ok(pods.some((p) => p.status.podIP === answer.serverSawClient), `${release.name}: the server saw ${answer.serverSawClient}, a pod of the release (${pods.map((p) => p.status.podIP)})`);
    const peers = pods.flatMap((pod) => {
        const bouncer = showPooler(stage.side.cluster, pod, SIDECAR_CONTAINER);
        console.log(`      ${pod.metadata.name}: SHOW CLIENTS ${describeClients(bouncer)}`);
        assert.ok(bouncer.clients.some((c) => c.database === release.database && c.addr === "127.0.0.1"), `${pod.metadata.name}: the app is a client of its sidecar`);
        return bouncer.servers.map((s) => `${s.local_addr}:${s.local_port}`);
    });
    await assertBackendsArePgBouncers(stage.side.postgres[release.server], release.database, peers);
}

/** One request over the release's Service, seen by the server from a central PgBouncer pod, whose clients are the app's pods. */
async function assertRequestThroughCentral(stage: Stage, release: Release): Promise<void> {
    const apps = runningPods(stage.side.cluster, release);
    const central = centralPods(stage.side.cluster, release.server);
    const answer = await request(stage.side.cluster, release);
    assert.ok(central.some((p) => p.status.podIP === answer.serverSawClient), `${release.name}: the server saw ${answer.serverSawClient}, a central PgBouncer pod (${central.map((p) => p.status.podIP)})`);
    const views = central.map((pod) => showPooler(stage.side.cluster, pod, CENTRAL_CONTAINER));
    views.forEach((view, i) => console.log(`      ${central[i].metadata.name}: SHOW CLIENTS ${describeClients(view)}`));
    const appAddresses = apps.map((p) => p.status.podIP);
    assert.ok(views.some((v) => v.clients.some((c) => c.database === release.database && appAddresses.includes(c.addr))), `${release.name}'s pods (${appAddresses}) are clients of the central PgBouncer: ${JSON.stringify(views.map((v) => v.clients))}`);
    await assertBackendsArePgBouncers(stage.side.postgres[release.server], release.database, views.flatMap((v) => v.servers.map((s) => `${s.local_addr}:${s.local_port}`)));
}

/**
 * Evicts the central pod of the server that the apps' pools are connected to, is refused the second, and sees the
 * first leave the endpoints but stay, serving its clients (PgBouncer's super safe shutdown: the clients' time to
 * leave, clientsLeaveSeconds), then end with status 0 as soon as they have left: here the server's apps roll
 * (kubectl rollout restart), which ends their pools at once instead of at their connection lifetime.
 */
async function assertPdbHoldsEviction(stage: Stage, server: string): Promise<void> {
    const { cluster } = stage.side;
    const replicas = stage.centralReplicas;
    const releases = stage.releases.filter((r) => r.server === server);
    for (const release of releases) {
        await request(cluster, release);
    }
    const pods = centralPods(cluster, server);
    assert.strictEqual(replicas, 2, "the refusal below is the PDB's with two pods: one may go, not both");
    assert.strictEqual(pods.length, replicas);
    const appClients = (pod: any) => showPooler(cluster, pod, CENTRAL_CONTAINER).clients.filter((c) => c.database !== "pgbouncer").length;
    const [evicted, other] = appClients(pods[0]) > 0 ? pods : [pods[1], pods[0]];
    const clients = appClients(evicted);
    assert.ok(clients > 0, "one central pod holds the apps' pool connections");
    const followed = followPod(cluster, evicted);
    await followed.watching;
    const evictedAt = Date.now();
    evict(cluster, evicted);
    assert.throws(() => evict(cluster, other), /disruption budget/, "the second eviction is refused (429) while only one pod is Ready");
    await sleep((ENDPOINT_REMOVAL_SECONDS + 5) * 1000);
    // Past SIGTERM PgBouncer no longer listens (its admin console neither): the server's view shows what it holds.
    assert.ok(cluster.get("pod", evicted.metadata.name, evicted.metadata.namespace), `${evicted.metadata.name}: past its preStop and SIGTERM, it still runs for its ${clients} clients`);
    const held = await serverConnectionsFrom(stage.side.postgres[server], evicted.status.podIP);
    assert.ok(held > 0, `${evicted.metadata.name} still holds its server connections for its clients`);
    console.log(`      evicted ${evicted.metadata.name} with ${clients} app clients: still there ${((Date.now() - evictedAt) / 1000).toFixed(1)} s after the eviction, holding ${held} server connections`);
    const rolledAt = Date.now();
    for (const release of releases) {
        cluster.kubectl(["rollout", "restart", "deployment", release.name, "-n", release.namespace]);
    }
    const { last, goneAt } = await followed.gone;
    const grace = last.spec.terminationGracePeriodSeconds;
    const pgbouncer = last.status.containerStatuses.find((c: any) => c.name === CENTRAL_CONTAINER);
    console.log(`      evicted ${last.metadata.name}: gone ${((goneAt - rolledAt) / 1000).toFixed(1)} s after its clients' apps rolled, ${((goneAt - evictedAt) / 1000).toFixed(1)} s after the eviction (grace ${grace} s); pgbouncer ${describeEnd(pgbouncer)}`);
    assert.strictEqual(pgbouncer.state.terminated?.exitCode, 0, "PgBouncer ended its own shutdown inside the grace period (137: the kubelet's SIGKILL)");
    for (const release of releases) {
        await waitForRollout(cluster, release);
    }
    await cluster.waitFor(`${centralNamespace(server)}: both central pods Ready again`, () => centralPods(cluster, server).length === replicas, 180000);
    // With both Ready again, an eviction is allowed again.
    evict(cluster, centralPods(cluster, server)[0]);
    await cluster.waitFor(`${centralNamespace(server)}: both central pods Ready after the allowed eviction`, () => centralPods(cluster, server).length === replicas, 180000);
}

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

/** The release's Service as the HTTP load's target: the route that writes, and how its rows are found. */
function httpTarget(stage: Stage, release: Release): HttpTarget {
    const auth = release.server === "auth";
    return {
        name: release.name,
        url: writeUrl(stage.side.cluster, release),
        written: auth ? { field: "email", count: "SELECT count(*) AS n FROM users WHERE email = ANY($1)" } : { field: "id", count: "SELECT count(*) AS n FROM orders WHERE id = ANY($1)" },
        server: stage.side.postgres[release.server],
        database: release.database,
    };
}

/** One request over the release's Service (its ClusterIP, through kube-proxy's rules): a write and a read in the database. */
async function request(cluster: LocalCluster, release: Release): Promise<{ serverSawClient: string }> {
    const url = writeUrl(cluster, release);
    const response = await fetch(url, { method: "POST" });
    const body = await response.text();
    assert.strictEqual(response.status, 200, `${release.name} POST ${url}: ${body}`);
    return JSON.parse(body);
}

/** The release's route that writes (a sign-up, an order), at its Service's ClusterIP. */
function writeUrl(cluster: LocalCluster, release: Release): string {
    const service = cluster.get("service", release.name, release.namespace);
    return `http://${service.spec.clusterIP}:${service.spec.ports[0].port}/${release.server === "auth" ? "register" : "orders"}`;
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
    const exporter = podContainer(pod, EXPORTER_CONTAINER);
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

/** The server's backends whose client is the pod at `ip`. */
async function serverConnectionsFrom(server: PostgresServer, ip: string): Promise<number> {
    return server.superuser(async (c) => Number((await c.query("SELECT count(*) AS n FROM pg_stat_activity WHERE host(client_addr) = $1", [ip])).rows[0].n));
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

/** The central PgBouncer's namespace for a server: the default pgbouncerNamespace with the server's name (options/pgbouncerCluster.ts). */
function centralNamespace(server: string): string {
    return `velure-db-${server}`;
}

/** The central PgBouncer's pods of a server that are running and Ready, not being deleted. */
function centralPods(cluster: LocalCluster, server: string): any[] {
    return cluster.list("pods", centralNamespace(server)).filter((p) => p.metadata.labels?.["app.kubernetes.io/name"] === "pgbouncer" && isReady(p) && !p.metadata.deletionTimestamp);
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
 * What a pod's end shows when it drains as the program's arithmetic says: publish-order's app ends on its own
 * (exit 0, its 10 s Shutdown) and auth-service's on its SIGTERM (gin has no handler: Go's runtime exits with 2,
 * since the signal cannot kill a container's PID 1), never by the kubelet's SIGKILL (137); a native sidecar gets
 * its SIGTERM only after the app has ended, and ends its safe shutdown itself.
 */
function assertDrained(pod: any, seconds: number, what: string): void {
    const grace = pod.spec.terminationGracePeriodSeconds;
    const app = pod.status.containerStatuses.find((c: any) => c.name !== EXPORTER_CONTAINER);
    const sidecar = (pod.status.initContainerStatuses ?? []).find((c: any) => c.name === SIDECAR_CONTAINER);
    console.log(`      ${what}: ${pod.metadata.name} gone after ${seconds.toFixed(1)} s (grace ${grace} s); app ${describeEnd(app)}${sidecar ? `; sidecar ${describeEnd(sidecar)}` : ""}`);
    assert.ok([0, 2].includes(app.state.terminated?.exitCode), `${pod.metadata.name}: the app ended on its SIGTERM, not killed`);
    if (hasSidecar(pod.spec)) {
        assert.strictEqual(sidecar?.state.terminated?.exitCode, 0, `${pod.metadata.name}: the sidecar ended its own shutdown inside the grace period`);
        assert.ok(Date.parse(sidecar.state.terminated.finishedAt) >= Date.parse(app.state.terminated.finishedAt), `${pod.metadata.name}: the sidecar outlived the app`);
    }
}

/** A container of the pod by name, native sidecars (init containers) included. */
function podContainer(pod: any, name: string): any {
    return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: any) => c.name === name);
}

/** Every container's status, the native sidecar's among them. */
function containerStatuses(pod: any): any[] {
    return [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])];
}

/** SHOW CLIENTS in a line: each client's database, user and address. */
function describeClients(view: PoolerView): string {
    return view.clients.map((c: any) => `${c.database}/${c.user}@${c.addr}:${c.port} ${c.state}`).join(", ") || "(none)";
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
