// A Kubernetes control plane of real binaries on 127.0.0.1, in a scratch folder: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, and kwok standing in for the kubelets (it marks the fake nodes
// Ready and the pods that the scheduler binds to them Running and Ready, without running any container).
// Every process is started here and stopped by its PID.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { BIN, EXTERNAL_SECRETS_CRDS, KWOK_STAGES } from "../toolchain";

export const LOOPBACK = "127.0.0.1";
const ADMIN_TOKEN_USER = "e2e-admin";

/** Zones of the fake nodes: the central PgBouncer spreads its replicas across nodes and zones. */
const NODES = [
    { name: "kwok-node-a", zone: "zone-a" },
    { name: "kwok-node-b", zone: "zone-b" },
    { name: "kwok-node-c", zone: "zone-c" },
];

async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on("error", reject);
        server.listen(0, LOOPBACK, () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Managed {
    name: string;
    child: ChildProcess;
    log: string;
}

export class LocalCluster {
    readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "velure-e2e-cluster-"));
    readonly kubeconfig = path.join(this.dir, "kubeconfig");
    /** The kubeconfig's only context. */
    readonly context = "velure-e2e";
    private readonly processes: Managed[] = [];
    private readonly token = `e2e-${process.pid}-${Date.now()}`;
    private stopping = false;
    apiPort = 0;

    /**
     * `kwokNodes: false` leaves out kwok and its three fake nodes: a real node (tests/e2e/node.ts) is then the only
     * one, and every pod runs for real.
     */
    async start({ kwokNodes = true }: { kwokNodes?: boolean } = {}): Promise<this> {
        const etcdPort = await freePort();
        const etcdPeerPort = await freePort();
        this.apiPort = await freePort();
        this.writeCredentials();
        this.launch("etcd", BIN.etcd, [
            "--name=e2e",
            `--data-dir=${path.join(this.dir, "etcd")}`,
            `--listen-client-urls=http://${LOOPBACK}:${etcdPort}`,
            `--advertise-client-urls=http://${LOOPBACK}:${etcdPort}`,
            `--listen-peer-urls=http://${LOOPBACK}:${etcdPeerPort}`,
            `--initial-advertise-peer-urls=http://${LOOPBACK}:${etcdPeerPort}`,
            `--initial-cluster=e2e=http://${LOOPBACK}:${etcdPeerPort}`,
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]);
        await this.waitForPort("etcd", etcdPort);
        this.launch("kube-apiserver", BIN.kubeApiserver, [
            `--etcd-servers=http://${LOOPBACK}:${etcdPort}`,
            `--bind-address=${LOOPBACK}`,
            `--advertise-address=${LOOPBACK}`,
            `--secure-port=${this.apiPort}`,
            `--cert-dir=${path.join(this.dir, "apiserver-certs")}`,
            "--endpoint-reconciler-type=none",
            `--token-auth-file=${path.join(this.dir, "tokens.csv")}`,
            "--authorization-mode=RBAC",
            `--service-account-issuer=https://kubernetes.default.svc`,
            `--service-account-key-file=${path.join(this.dir, "sa.pub")}`,
            `--service-account-signing-key-file=${path.join(this.dir, "sa.key")}`,
            // kwok's nodes only allocate from it; a real node's kube-proxy routes it inside the test's namespace.
            "--service-cluster-ip-range=10.96.0.0/16",
            // exec and logs reach a real node's kubelet at its address (its name is in no DNS the server reads).
            "--kubelet-preferred-address-types=InternalIP",
            // PodSecurity is on by default; the namespaces' labels decide what it enforces.
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity",
            "--v=0",
        ]);
        await this.waitForApi();
        this.launch("kube-controller-manager", BIN.kubeControllerManager, [
            ...(await this.controllerFlags()),
            `--service-account-private-key-file=${path.join(this.dir, "sa.key")}`,
            "--use-service-account-credentials=false",
            // No cloud and no kubelets: node IPAM and the cloud controllers have nothing to manage.
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,-bootstrapsigner,-tokencleaner",
            "--v=0",
        ]);
        this.launch("kube-scheduler", BIN.kubeScheduler, [...(await this.controllerFlags()), "--v=0"]);
        if (kwokNodes) {
            await this.startKwok();
        }
        return this;
    }

    private async startKwok(): Promise<void> {
        this.launch("kwok", BIN.kwok, [
            `--kubeconfig=${this.kubeconfig}`,
            `--config=${KWOK_STAGES}`,
            "--manage-all-nodes=false",
            "--manage-nodes-with-label-selector=type=kwok",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            `--server-address=${LOOPBACK}:${await freePort()}`,
        ]);
        this.addNodes();
        await this.waitFor("the fake nodes to be Ready", () => this.readyNodes() === NODES.length, 60000);
    }

    /** What the controller manager and the scheduler share: the admin kubeconfig, one instance, loopback. */
    private async controllerFlags(): Promise<string[]> {
        return [
            `--kubeconfig=${this.kubeconfig}`,
            `--authentication-kubeconfig=${this.kubeconfig}`,
            `--authorization-kubeconfig=${this.kubeconfig}`,
            "--leader-elect=false",
            `--bind-address=${LOOPBACK}`,
            `--secure-port=${await freePort()}`,
        ];
    }

    /** kubectl against this cluster; returns stdout. */
    kubectl(args: string[], input?: string): string {
        return execFileSync("kubectl", [`--kubeconfig=${this.kubeconfig}`, ...args], {
            input,
            stdio: ["pipe", "pipe", "pipe"],
            maxBuffer: 64 * 1024 * 1024,
        }).toString();
    }

    /** Objects of one kind as parsed JSON items. */
    list(kind: string, namespace?: string): any[] {
        const scope = namespace ? ["-n", namespace] : ["--all-namespaces"];
        return JSON.parse(this.kubectl(["get", kind, ...scope, "-o", "json"])).items;
    }

    get(kind: string, name: string, namespace?: string): any | undefined {
        try {
            return JSON.parse(this.kubectl(["get", kind, name, ...(namespace ? ["-n", namespace] : []), "-o", "json"]));
        } catch {
            return undefined;
        }
    }

    /** The tail of one process's log, for failure messages. */
    logTail(name: string, lines = 30): string {
        const managed = this.processes.find((p) => p.name === name);
        if (!managed || !fs.existsSync(managed.log)) {
            return "";
        }
        return fs.readFileSync(managed.log, "utf8").split("\n").slice(-lines).join("\n");
    }

    /**
     * External Secrets Operator's CRDs and its controller (the operator's own reconcilers, built with only the fake
     * provider: tools/external-secrets), watching every namespace; its metrics endpoint is off. The reconcilers of
     * objects the program never declares (PushSecrets, cluster-wide ExternalSecrets) are off: their CRDs are not installed.
     */
    async startExternalSecrets(): Promise<void> {
        this.kubectl(["apply", "--server-side", "-f", EXTERNAL_SECRETS_CRDS]);
        this.kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
        this.launch(
            "external-secrets",
            BIN.externalSecrets,
            [
                "--metrics-addr=0",
                "--enable-cluster-external-secret-reconciler=false",
                "--enable-cluster-push-secret-reconciler=false",
                "--enable-push-secret-reconciler=false",
                "--loglevel=info",
            ],
            { KUBECONFIG: this.kubeconfig },
        );
    }

    /** Stops every process by its PID; `keepLogs` leaves the scratch folder (logs, etcd data) for a post-mortem. */
    async stop(keepLogs = false): Promise<void> {
        this.stopping = true;
        for (const managed of [...this.processes].reverse()) {
            await this.stopProcess(managed);
        }
        if (!keepLogs) {
            fs.rmSync(this.dir, { recursive: true, force: true });
        }
    }

    private async stopProcess({ child }: Managed): Promise<void> {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
            return;
        }
        const exited = new Promise((resolve) => child.once("exit", resolve));
        process.kill(child.pid, "SIGTERM");
        const done = await Promise.race([exited.then(() => true), sleep(10000).then(() => false)]);
        if (!done) {
            process.kill(child.pid, "SIGKILL");
            await exited;
        }
    }

    private launch(name: string, bin: string, args: string[], env: Record<string, string> = {}): void {
        const log = path.join(this.dir, `${name}.log`);
        const out = fs.openSync(log, "a");
        const child = spawn(bin, args, { cwd: this.dir, stdio: ["ignore", out, out], env: { ...process.env, ...env } });
        fs.closeSync(out);
        this.watch(name, child, log);
    }

    /** A process of the cluster's (the control plane's, or a real node's): waitFor fails when it dies, stop ends it. */
    watch(name: string, child: ChildProcess, log: string): void {
        child.once("exit", (code, signal) => {
            if (!this.stopping) {
                fs.appendFileSync(log, `\n[e2e] ${name} exited (code ${code}, signal ${signal})\n`);
            }
        });
        this.processes.push({ name, child, log });
    }

    private writeCredentials(): void {
        fs.writeFileSync(path.join(this.dir, "tokens.csv"), `${this.token},${ADMIN_TOKEN_USER},${ADMIN_TOKEN_USER},system:masters\n`, { mode: 0o600 });
        execFileSync("openssl", ["genrsa", "-out", path.join(this.dir, "sa.key"), "2048"], { stdio: "ignore" });
        execFileSync("openssl", ["rsa", "-in", path.join(this.dir, "sa.key"), "-pubout", "-out", path.join(this.dir, "sa.pub")], { stdio: "ignore" });
        const kubeconfig = {
            apiVersion: "v1",
            kind: "Config",
            clusters: [{ name: this.context, cluster: { server: `https://${LOOPBACK}:${this.apiPort}`, "insecure-skip-tls-verify": true } }],
            users: [{ name: ADMIN_TOKEN_USER, user: { token: this.token } }],
            contexts: [{ name: this.context, context: { cluster: this.context, user: ADMIN_TOKEN_USER } }],
            "current-context": this.context,
        };
        fs.writeFileSync(this.kubeconfig, JSON.stringify(kubeconfig, null, 2), { mode: 0o600 });
    }

    private addNodes(): void {
        const nodes = NODES.map(({ name, zone }) => ({
            apiVersion: "v1",
            kind: "Node",
            metadata: {
                name,
                labels: { type: "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": zone },
                annotations: { "node.alpha.kubernetes.io/ttl": "0" },
            },
            status: {
                allocatable: { cpu: "16", memory: "64Gi", pods: "110" },
                capacity: { cpu: "16", memory: "64Gi", pods: "110" },
            },
        }));
        this.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: nodes }));
    }

    private readyNodes(): number {
        return this.list("nodes").filter((node) =>
            (node.status?.conditions ?? []).some((c: any) => c.type === "Ready" && c.status === "True"),
        ).length;
    }

    private async waitForPort(what: string, port: number): Promise<void> {
        await this.waitFor(what, () => new Promise<boolean>((resolve) => {
            const socket = net.connect(port, LOOPBACK);
            socket.once("connect", () => { socket.destroy(); resolve(true); });
            socket.once("error", () => resolve(false));
        }));
    }

    private async waitForApi(): Promise<void> {
        await this.waitFor("kube-apiserver to be ready", () => {
            try {
                return this.kubectl(["get", "--raw", "/readyz"]).trim() === "ok";
            } catch {
                return false;
            }
        }, 90000);
    }

    /** Polls `check` until it holds; fails early when a control-plane process has died. */
    async waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30000): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            if (await check()) {
                return;
            }
            for (const p of this.processes) {
                if (p.child.exitCode !== null) {
                    throw new Error(`${p.name} exited while waiting for ${what}:\n${this.logTail(p.name)}`);
                }
            }
            await sleep(250);
        }
        throw new Error(`timed out waiting for ${what}; kube-apiserver log:\n${this.logTail("kube-apiserver")}`);
    }
}
