// One real Kubernetes node beside the LocalCluster's control plane: containerd (Debian's) with runc and the CNI
// plugins (bridge, host-local, loopback, portmap), the kubelet and kube-proxy (built by the toolchain at the control
// plane's version), and a DNS server for the cluster's names (tests/e2e/dns.ts). All of it runs in the test's own
// network namespace (scripts/in-netns.sh): the pods sit on a bridge there, the node's and the database stand-ins'
// addresses are on a veth interface there, and nothing outside the namespace is reachable. Every process it starts
// is stopped by its PID; the containers by containerd, then their shims by PID; the mounts and cgroups it made are
// removed.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LocalCluster } from "./cluster";
import { ClusterDns } from "./dns";
import { ImageSpec, buildImage } from "./images";
import { BIN } from "../toolchain";

export const NODE_NAME = "velure-node";
/** The node's address, where the kubelet serves and the DNS server listens. */
export const NODE_IP = "10.77.0.10";
/** The pods' bridge network (host-local hands out its addresses; the bridge is their gateway). */
const POD_SUBNET = "10.244.0.0/24";
/** The API server's --service-cluster-ip-range: kube-proxy's rules catch it, this route takes it there from the namespace itself. */
const SERVICE_RANGE = "10.96.0.0/16";
const HOST_INTERFACE = "velure-host";
const HOST_PEER = "velure-peer";
const BRIDGE = "velure0";
const NETNS_DIR = "/var/run/netns";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Managed {
    name: string;
    child: ChildProcess;
}

export class RealNode {
    readonly dir: string;
    readonly socket: string;
    readonly dns: ClusterDns;
    private readonly processes: Managed[] = [];
    private netnsBefore: string[] = [];
    /** Under each cgroup v1 controller: the kubelet's cgroup root, so that its pods' cgroups are ours to remove. */
    private readonly cgroupRoot = `/velure-e2e-${process.pid}`;

    /** `hostAddresses`: more addresses on the node's host side (the database stand-ins listen there). */
    constructor(private readonly cluster: LocalCluster, private readonly hostAddresses: string[] = []) {
        this.dir = path.join(cluster.dir, "node");
        this.socket = path.join(this.dir, "containerd.sock");
        this.dns = new ClusterDns(cluster);
    }

    /** Brings the node up with `images` imported, and waits until it is Ready. */
    async start(images: ImageSpec[]): Promise<this> {
        if (process.env.VELURE_NETNS !== "1") {
            throw new Error("the real node runs only in the test's own network namespace (as root: scripts/in-netns.sh)");
        }
        this.netnsBefore = listNetns();
        fs.mkdirSync(this.dir, { recursive: true });
        this.network();
        this.cgroups("create");
        this.launch("containerd", "containerd", ["--config", this.writeContainerdConfig()]);
        await this.cluster.waitFor("containerd", () => this.ctrOk(), 30000);
        const archives = path.join(this.dir, "images");
        fs.mkdirSync(archives);
        for (const image of images) {
            this.ctr(["images", "import", "--no-unpack=false", buildImage(image, archives)]);
        }
        await this.dns.start(NODE_IP);
        this.launch("kubelet", BIN.kubelet, [
            `--config=${this.writeKubeletConfig()}`,
            `--kubeconfig=${this.cluster.kubeconfig}`,
            `--root-dir=${path.join(this.dir, "kubelet")}`,
            `--cert-dir=${path.join(this.dir, "kubelet-pki")}`,
            `--hostname-override=${NODE_NAME}`,
            `--node-ip=${NODE_IP}`,
            "--node-labels=topology.kubernetes.io/zone=zone-real",
            "--v=1",
        ]);
        await this.cluster.waitFor("the real node to be Ready", () => this.ready(), 120000);
        this.launch("kube-proxy", BIN.kubeProxy, [
            `--kubeconfig=${this.cluster.kubeconfig}`,
            `--hostname-override=${NODE_NAME}`,
            "--proxy-mode=iptables",
            // Traffic from outside the pods' network (the test's own requests) is masqueraded; a pod's keeps its address.
            `--cluster-cidr=${POD_SUBNET}`,
            // nf_conntrack_max is the machine's, not the namespace's: leave it.
            "--conntrack-max-per-core=0",
            "--metrics-bind-address=127.0.0.1:10249",
            "--healthz-bind-address=127.0.0.1:10256",
            "--v=1",
        ]);
        await this.cluster.waitFor("kube-proxy's rules", () => this.iptablesHas("KUBE-SERVICES"), 60000);
        return this;
    }

    private ready(): boolean {
        const node = this.cluster.get("node", NODE_NAME);
        return (node?.status?.conditions ?? []).some((c: any) => c.type === "Ready" && c.status === "True");
    }

    /** The addresses: the node's and the stand-ins' on a veth interface; forwarding between the bridge and it; the route to the Services. */
    private network(): void {
        const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
        // A veth pair (this kernel has no dummy links): the addresses on one end, the other end only keeps it up.
        ip("link", "add", HOST_INTERFACE, "type", "veth", "peer", "name", HOST_PEER);
        ip("link", "set", HOST_PEER, "up");
        ip("link", "set", HOST_INTERFACE, "up");
        for (const address of [NODE_IP, ...this.hostAddresses]) {
            ip("addr", "add", `${address}/32`, "dev", HOST_INTERFACE);
        }
        ip("route", "add", SERVICE_RANGE, "dev", HOST_INTERFACE, "src", NODE_IP);
        fs.writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
        // Bridged traffic through iptables (this namespace's own setting), so that a pod's connection to a Service
        // whose endpoint is on the same bridge gets its reply un-NATed, with no masquerade hiding the pod's address.
        fs.writeFileSync("/proc/sys/net/bridge/bridge-nf-call-iptables", "1");
        fs.writeFileSync(path.join(this.dir, "resolv.conf"), `nameserver ${NODE_IP}\n`);
    }

    private writeContainerdConfig(): string {
        const d = (name: string) => path.join(this.dir, name);
        fs.mkdirSync(d("cni"));
        fs.writeFileSync(path.join(d("cni"), "10-velure.conflist"), JSON.stringify({
            cniVersion: "0.4.0",
            name: "velure-node",
            plugins: [
                {
                    type: "bridge",
                    bridge: BRIDGE,
                    isGateway: true,
                    ipMasq: false,
                    hairpinMode: true,
                    ipam: { type: "host-local", ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: d("cni-ipam") },
                },
                { type: "portmap", capabilities: { portMappings: true } },
            ],
        }));
        const file = d("containerd.toml");
        fs.writeFileSync(file, [
            "version = 2",
            `root = "${d("containerd-root")}"`,
            `state = "${d("containerd-state")}"`,
            `[grpc]`,
            `  address = "${this.socket}"`,
            `[debug]`,
            `  level = "warn"`,
            `[plugins."io.containerd.internal.v1.opt"]`,
            `  path = "${d("containerd-opt")}"`,
            `[plugins."io.containerd.grpc.v1.cri"]`,
            `  sandbox_image = "registry.k8s.io/pause:3.10"`,
            // This machine refuses a lower oom_score_adj than its own (the kubelet asks -998 for a sandbox): clamp.
            `  restrict_oom_score_adj = true`,
            `  [plugins."io.containerd.grpc.v1.cri".containerd]`,
            `    snapshotter = "overlayfs"`,
            `    default_runtime_name = "runc"`,
            `    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
            `      runtime_type = "io.containerd.runc.v2"`,
            `      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
            // runc's state of these containers in the node's folder, not in the machine's /run/containerd.
            `        Root = "${d("runc")}"`,
            `  [plugins."io.containerd.grpc.v1.cri".cni]`,
            `    bin_dir = "/usr/lib/cni"`,
            `    conf_dir = "${d("cni")}"`,
            "",
        ].join("\n"));
        return file;
    }

    private writeKubeletConfig(): string {
        const file = path.join(this.dir, "kubelet.yaml");
        fs.writeFileSync(file, JSON.stringify({
            apiVersion: "kubelet.config.k8s.io/v1beta1",
            kind: "KubeletConfiguration",
            address: NODE_IP,
            port: 10250,
            readOnlyPort: 0,
            healthzPort: 0,
            // The API server's exec and logs reach the kubelet with no client certificate; only this namespace can.
            authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
            authorization: { mode: "AlwaysAllow" },
            cgroupDriver: "cgroupfs",
            cgroupRoot: this.cgroupRoot,
            // This machine's cgroups are v1, which 1.34 still runs when told to.
            failCgroupV1: false,
            failSwapOn: false,
            containerRuntimeEndpoint: `unix://${this.socket}`,
            clusterDomain: "cluster.local",
            clusterDNS: [NODE_IP],
            resolvConf: path.join(this.dir, "resolv.conf"),
            podLogsDir: path.join(this.dir, "pod-logs"),
            // The machine's disk is shared with other work: no eviction for its fill level, no image GC.
            evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
            imageGCHighThresholdPercent: 100,
            imageGCLowThresholdPercent: 99,
            // How soon a changed Secret or ConfigMap reaches a mounted volume (the default is a minute).
            syncFrequency: "10s",
            serializeImagePulls: false,
            shutdownGracePeriod: "0s",
        }));
        return file;
    }

    /** cgroup v1: the kubelet's root under every controller, with the cpuset copied from the top (a new cpuset is empty). */
    private cgroups(action: "create" | "remove"): void {
        const controllers = fs.readdirSync("/sys/fs/cgroup").filter((c) => c !== "unified" && fs.statSync(path.join("/sys/fs/cgroup", c)).isDirectory());
        for (const controller of controllers) {
            const dir = path.join("/sys/fs/cgroup", controller, this.cgroupRoot);
            if (action === "create") {
                fs.mkdirSync(dir, { recursive: true });
                if (controller === "cpuset") {
                    for (const key of ["cpuset.cpus", "cpuset.mems"]) {
                        fs.writeFileSync(path.join(dir, key), fs.readFileSync(path.join("/sys/fs/cgroup/cpuset", key)));
                    }
                }
            } else {
                removeCgroupTree(dir);
            }
        }
    }

    ctr(args: string[]): string {
        return execFileSync("ctr", ["--address", this.socket, "--namespace", "k8s.io", ...args], { stdio: "pipe" }).toString();
    }

    private ctrOk(): boolean {
        try {
            this.ctr(["version"]);
            return true;
        } catch {
            return false;
        }
    }

    private iptablesHas(chain: string): boolean {
        try {
            execFileSync("iptables", ["-t", "nat", "-S", chain], { stdio: "pipe" });
            return true;
        } catch {
            return false;
        }
    }

    private launch(name: string, bin: string, args: string[]): void {
        const log = path.join(this.cluster.dir, `${name}.log`);
        const out = fs.openSync(log, "a");
        const child = spawn(bin, args, { cwd: this.dir, stdio: ["ignore", out, out] });
        fs.closeSync(out);
        this.processes.push({ name, child });
        this.cluster.watch(name, child, log);
    }

    /**
     * The kubelet first (no pod is restarted while the rest goes), then every container and sandbox through containerd,
     * then containerd, the shims that outlive it (by PID), the DNS server, the mounts under the node's folder and
     * the cgroups.
     */
    async stop(): Promise<void> {
        const kubelet = this.processes.find((p) => p.name === "kubelet");
        const proxy = this.processes.find((p) => p.name === "kube-proxy");
        await stopChild(kubelet?.child);
        await stopChild(proxy?.child);
        if (this.ctrOk()) {
            for (const task of this.ctr(["tasks", "ls", "-q"]).split("\n").filter(Boolean)) {
                try {
                    this.ctr(["tasks", "kill", "--signal", "SIGKILL", task]);
                } catch {
                    // already gone
                }
            }
            await sleep(1000);
        }
        await stopChild(this.processes.find((p) => p.name === "containerd")?.child);
        for (const pid of this.shimPids()) {
            try {
                process.kill(pid, "SIGKILL");
            } catch {
                // already gone
            }
        }
        await this.dns.stop();
        this.removePodNetworkNamespaces();
        unmountUnder(this.dir);
        this.cgroups("remove");
        removePodLogLinks(this.dir);
    }

    /**
     * The network namespaces containerd's CNI made for the sandboxes (bind mounts under /var/run/netns, which a
     * sandbox's own removal would have undone): those that were not there before the node started.
     */
    private removePodNetworkNamespaces(): void {
        for (const name of listNetns().filter((n) => n.startsWith("cni-") && !this.netnsBefore.includes(n))) {
            const file = path.join(NETNS_DIR, name);
            try {
                execFileSync("umount", [file], { stdio: "pipe" });
            } catch {
                // not mounted any more
            }
            fs.rmSync(file, { force: true });
        }
    }

    /** containerd-shim-runc-v2 processes started for this node's containerd (their command line names its socket). */
    private shimPids(): number[] {
        return fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
            try {
                const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
                return cmdline.includes("containerd-shim") && cmdline.includes(this.socket) ? [Number(pid)] : [];
            } catch {
                return [];
            }
        });
    }
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
        return;
    }
    const exited = new Promise((resolve) => child.once("exit", resolve));
    process.kill(child.pid, "SIGTERM");
    if (!(await Promise.race([exited.then(() => true), sleep(15000).then(() => false)]))) {
        process.kill(child.pid, "SIGKILL");
        await exited;
    }
}

/** Every mount point under `dir` (the kubelet's volumes, containerd's root file systems), deepest first. */
function unmountUnder(dir: string): void {
    const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")
        .map((line) => line.split(" ")[4])
        .filter((point) => point && point.startsWith(dir + "/"))
        .sort((a, b) => b.length - a.length);
    for (const point of mounts) {
        try {
            execFileSync("umount", ["-l", point], { stdio: "pipe" });
        } catch {
            // unmounted with its parent
        }
    }
}

/** rmdir from the leaves up (a cgroup's files go with it); a cgroup that still has a process stays, and says so. */
function removeCgroupTree(dir: string): void {
    if (!fs.existsSync(dir)) {
        return;
    }
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) {
            removeCgroupTree(path.join(dir, entry.name));
        }
    }
    try {
        fs.rmdirSync(dir);
    } catch (err) {
        console.log(`e2e: cgroup ${dir} not removed: ${(err as Error).message}`);
    }
}

/** The kubelet links each container's log into /var/log/containers: remove the links that point into this node. */
function removePodLogLinks(dir: string): void {
    const links = "/var/log/containers";
    if (!fs.existsSync(links)) {
        return;
    }
    for (const link of fs.readdirSync(links)) {
        const file = path.join(links, link);
        try {
            if (fs.readlinkSync(file).startsWith(dir)) {
                fs.unlinkSync(file);
            }
        } catch {
            // not a link
        }
    }
}

function listNetns(): string[] {
    return fs.existsSync(NETNS_DIR) ? fs.readdirSync(NETNS_DIR) : [];
}
