// Runs the pods that the program declares the way the kubelet runs them, on this machine: the volumes are the
// declared ConfigMaps and Secrets written to a scratch directory, each container's process is started from its
// command, args and env, and its probes and preStop hook run as the kubelet runs them. tcpSocket and httpGet
// probes without a host go to the pod's IP, played by POD_IP (a second loopback address), never to 127.0.0.1.
//
// The seams, and nothing else, stand in for the images:
// - PATH: the PgBouncer image's programs (sh, pgbouncer, pg_isready from postgresql-client) are Debian's;
// - the exporter image's entrypoint is the pgbouncer_exporter that `npm run toolchain` builds at the same version;
// - the app is a stand-in that answers HTTP on its containerPort, on the pod's IP;
// - a mount path (/etc/pgbouncer, ...) is a directory of the scratch pod, in arguments and in mounted files.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { ProgramRun } from "../../plan/runtime";
import { BIN } from "../toolchain";
import { PG_BIN, PGBOUNCER_BIN, runAs, scratchDir, sleep, writeOwned } from "./servers";

export const POD_IP = "127.0.0.2";
/** The grace period when a pod spec gives none (the kubelet's default, and the shipped chart's values.yaml). */
const DEFAULT_GRACE_SECONDS = 30;
const AUTO_NAME_SUFFIX = "-generated";

export interface Probe {
    exec?: { command: string[] };
    tcpSocket?: { port: number | string; host?: string };
    httpGet?: { port: number | string; path?: string; host?: string };
    periodSeconds?: number;
    failureThreshold?: number;
    timeoutSeconds?: number;
}

export interface Container {
    name: string;
    image: string;
    command?: string[];
    args?: string[];
    env?: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
    ports?: { name?: string; containerPort: number }[];
    volumeMounts?: { name: string; mountPath: string }[];
    restartPolicy?: string;
    startupProbe?: Probe;
    readinessProbe?: Probe;
    livenessProbe?: Probe;
    lifecycle?: { preStop?: { exec: { command: string[] } } };
}

export interface PodSpec {
    initContainers?: Container[];
    containers: Container[];
    volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
    terminationGracePeriodSeconds?: number;
}

export const PROBE_KINDS = ["startupProbe", "readinessProbe", "livenessProbe"] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

/**
 * The pod that the shipped chart renders from a release's values: the app container and the values' hooks. The
 * e2e Helm test checks this model against `helm template`, so the probes run here are the ones Helm renders.
 */
export function chartPod(values: any): PodSpec {
    const probes = Object.fromEntries(PROBE_KINDS.filter((k) => values[k] && Object.keys(values[k]).length > 0).map((k) => [k, values[k]]));
    const app: Container = {
        name: "app",
        image: `${values.image.repository}:${values.image.tag}`,
        ports: [{ name: "http", containerPort: values.containerPort }],
        ...probes,
    };
    return {
        terminationGracePeriodSeconds: values.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS,
        initContainers: values.initContainers ?? [],
        containers: [app, ...(values.extraContainers ?? [])],
        volumes: values.extraVolumes ?? [],
    };
}

/** Native sidecars first (init containers with restartPolicy Always start before the app), then the containers. */
export function allContainers(spec: PodSpec): Container[] {
    return [...(spec.initContainers ?? []), ...spec.containers];
}

/** The data of every ConfigMap and Secret a program run declares, by the name the pods refer to. */
function declaredData(run: ProgramRun, type: string, field: "data" | "stringData"): Map<string, Record<string, string>> {
    return new Map(run.ofType(type).map((r) => [r.inputs.metadata?.name ?? `${r.name}${AUTO_NAME_SUFFIX}`, r.inputs[field] ?? {}]));
}

export interface PodUnderTest {
    name: string;
    spec: PodSpec;
    configMaps: Map<string, Record<string, string>>;
    secrets: Map<string, Record<string, string>>;
}

/** Every pod template of a run: the central PgBouncer's Deployment, and each release's pod as the chart renders it. */
export function podsOf(run: ProgramRun): PodUnderTest[] {
    const configMaps = declaredData(run, "kubernetes:core/v1:ConfigMap", "data");
    const secrets = declaredData(run, "kubernetes:core/v1:Secret", "stringData");
    const deployments = run.ofType("kubernetes:apps/v1:Deployment").map((d) => ({ name: d.name, spec: d.inputs.spec.template.spec }));
    const releases = run.ofType("kubernetes:helm.sh/v3:Release").map((r) => ({ name: r.name, spec: chartPod(r.inputs.values) }));
    return [...deployments, ...releases].map((pod) => ({ ...pod, configMaps, secrets }));
}

/** How this machine runs an image: its PATH, an entrypoint when the container gives no command, a user. */
interface LocalImage {
    path: string[];
    entrypoint?: string[];
    /** The PgBouncer image runs as uid 70; here, as the postgres user (PgBouncer refuses root). */
    asServerUser: boolean;
}

function localImage(image: string): LocalImage | "app" {
    if (image.includes("/pgbouncer-docker:")) {
        return { path: [path.dirname(PGBOUNCER_BIN), PG_BIN, "/usr/bin", "/bin"], asServerUser: true };
    }
    if (image.includes("/pgbouncer-exporter:")) {
        return { path: ["/usr/bin", "/bin"], entrypoint: [BIN.pgbouncer_exporter], asServerUser: false };
    }
    return "app";
}

export interface Outcome {
    ok: boolean;
    detail: string;
}

export class RunningPod {
    readonly dir: string;
    private readonly processes = new Map<string, { child: ChildProcess; exited: Promise<number | null>; log: string[] }>();
    private readonly servers = new Map<string, http.Server>();

    constructor(readonly pod: PodUnderTest) {
        this.dir = scratchDir(`pod-${pod.name}`);
        this.mountVolumes();
    }

    /** Where a volume's files are: the scratch pod's directory named after the volume. */
    private volumeDir(volume: string): string {
        return path.join(this.dir, volume);
    }

    /** Every mount path of the pod, longest first, so that /etc/pgbouncer-auth is not taken for /etc/pgbouncer. */
    private mounts(): [string, string][] {
        const pairs = allContainers(this.pod.spec).flatMap((c) => (c.volumeMounts ?? []).map((m) => [m.mountPath, this.volumeDir(m.name)] as [string, string]));
        return [...new Map(pairs)].sort((a, b) => b[0].length - a[0].length);
    }

    /** A path inside the container, as a path of this machine. */
    local(text: string): string {
        return this.mounts().reduce((t, [from, to]) => t.split(from).join(to), text);
    }

    private mountVolumes(): void {
        for (const volume of this.pod.spec.volumes ?? []) {
            const source = volume.configMap ? this.pod.configMaps.get(volume.configMap.name) : this.pod.secrets.get(volume.secret?.secretName ?? "");
            if (!source) {
                throw new Error(`${this.pod.name}: volume ${volume.name} refers to an object the program does not declare`);
            }
            fs.mkdirSync(this.volumeDir(volume.name));
            for (const [key, content] of Object.entries(source)) {
                writeOwned(path.join(this.volumeDir(volume.name), key), this.local(content), 0o640);
            }
            if (runAs.uid !== undefined) {
                fs.chownSync(this.volumeDir(volume.name), runAs.uid, runAs.gid as number);
            }
        }
    }

    container(name: string): Container {
        const found = allContainers(this.pod.spec).find((c) => c.name === name);
        if (!found) {
            throw new Error(`${this.pod.name} has no container ${name}`);
        }
        return found;
    }

    /** The container's env, with secretKeyRef values read from the declared Secrets. */
    private env(container: Container): Record<string, string> {
        return Object.fromEntries(
            (container.env ?? []).map((e) => {
                if (e.value !== undefined) {
                    return [e.name, e.value];
                }
                const ref = e.valueFrom?.secretKeyRef;
                const value = ref && this.pod.secrets.get(ref.name)?.[ref.key];
                if (value === undefined) {
                    throw new Error(`${container.name}: env ${e.name} refers to a Secret key the program does not declare`);
                }
                return [e.name, value];
            }),
        );
    }

    /** Runs argv inside the container (its PATH, env, user and mounts), as an exec probe or a hook would. */
    private spawnIn(container: Container, argv: string[]): ChildProcess {
        const image = localImage(container.image);
        if (image === "app") {
            throw new Error(`${container.name}: the app stand-in runs no commands`);
        }
        const env: Record<string, string> = { ...this.env(container), PATH: image.path.join(":") };
        const [bin, ...args] = argv.map((a) => this.local(a.replace(/\$\((\w+)\)/g, (_, v) => env[v] ?? `$(${v})`)));
        // A process group of its own stands in for the container's cgroup: a kill reaches the processes its first one
        // started (the entrypoint's PgBouncer), which would otherwise outlive the pod.
        return spawn(bin, args, { ...(image.asServerUser ? runAs : {}), cwd: this.dir, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    }

    /** Starts the container's process (or, for the app, the HTTP stand-in on the pod's IP). */
    async start(name: string): Promise<void> {
        const container = this.container(name);
        const image = localImage(container.image);
        if (image === "app") {
            const server = http.createServer((_, res) => res.end("ok"));
            await new Promise<void>((resolve) => server.listen(container.ports?.[0].containerPort, POD_IP, resolve));
            this.servers.set(name, server);
            return;
        }
        const argv = [...(container.command ?? image.entrypoint ?? []), ...(container.args ?? [])];
        const child = this.spawnIn(container, argv);
        const log: string[] = [];
        child.stdout?.on("data", (d) => log.push(String(d)));
        child.stderr?.on("data", (d) => log.push(String(d)));
        const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
        this.processes.set(name, { child, exited, log });
    }

    log(name: string): string {
        return this.processes.get(name)?.log.join("") ?? "";
    }

    private port(container: Container, port: number | string): number {
        if (typeof port === "number") {
            return port;
        }
        const named = container.ports?.find((p) => p.name === port);
        if (!named) {
            throw new Error(`${container.name}: probe port ${port} names no port of the container`);
        }
        return named.containerPort;
    }

    /** One attempt of a probe, with the probe's timeout, the way the kubelet makes it. */
    async probeOnce(name: string, probe: Probe): Promise<Outcome> {
        const container = this.container(name);
        const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
        if (probe.exec) {
            return this.execOnce(container, probe.exec.command, timeoutMs);
        }
        if (probe.tcpSocket) {
            return tcpOnce(probe.tcpSocket.host ?? POD_IP, this.port(container, probe.tcpSocket.port), timeoutMs);
        }
        if (probe.httpGet) {
            return httpOnce(probe.httpGet.host ?? POD_IP, this.port(container, probe.httpGet.port), probe.httpGet.path ?? "/", timeoutMs);
        }
        throw new Error(`${name}: a probe with no handler`);
    }

    /** Runs the command in the container; `code` is its exit status, null when a signal ended it. */
    private execOnce(container: Container, command: string[], timeoutMs: number): Promise<Outcome & { code: number | null }> {
        return new Promise((resolve) => {
            const child = this.spawnIn(container, command);
            let output = "";
            child.stdout?.on("data", (d) => (output += d));
            child.stderr?.on("data", (d) => (output += d));
            const timer = setTimeout(() => killAll(child), timeoutMs);
            child.once("exit", (code, signal) => {
                clearTimeout(timer);
                resolve({ ok: code === 0, code, detail: `${command[0]} exited ${code ?? signal}${output ? `: ${output.trim()}` : ""}` });
            });
        });
    }

    /**
     * A probe as the kubelet runs it from the container's start: an attempt every periodSeconds, until one passes or
     * failureThreshold attempts have failed. Returns the attempts it took.
     */
    async probe(name: string, probe: Probe): Promise<Outcome & { attempts: number }> {
        const period = (probe.periodSeconds ?? 10) * 1000;
        const threshold = probe.failureThreshold ?? 3;
        let last: Outcome = { ok: false, detail: "not run" };
        for (let attempt = 1; attempt <= threshold; attempt++) {
            last = await this.probeOnce(name, probe);
            if (last.ok) {
                return { ...last, attempts: attempt };
            }
            if (attempt < threshold) {
                await sleep(period);
            }
        }
        return { ...last, attempts: threshold };
    }

    /** The preStop hook as the kubelet runs it: inside the container, bounded by the grace period. */
    async preStop(name: string): Promise<{ status: number | null; seconds: number }> {
        const container = this.container(name);
        const command = container.lifecycle?.preStop?.exec.command;
        if (!command) {
            throw new Error(`${name} has no preStop hook`);
        }
        const started = Date.now();
        const outcome = await this.execOnce(container, command, this.graceSeconds() * 1000);
        return { status: outcome.code, seconds: (Date.now() - started) / 1000 };
    }

    graceSeconds(): number {
        return this.pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
    }

    /** SIGTERM to the container's first process, then its exit status, or "killed" when it outlives `withinSeconds`. */
    async terminate(name: string, withinSeconds: number): Promise<number | null | "killed"> {
        const proc = this.processes.get(name);
        if (!proc) {
            throw new Error(`${name} is not running`);
        }
        proc.child.kill("SIGTERM");
        const status = await Promise.race([proc.exited, sleep(withinSeconds * 1000).then(() => "killed" as const)]);
        if (status === "killed") {
            killAll(proc.child);
        }
        return status;
    }

    /** Stops everything (SIGKILL, as at the end of a grace period) and removes the scratch pod. */
    async remove(): Promise<void> {
        for (const { child, exited } of this.processes.values()) {
            killAll(child);
            await exited;
        }
        await Promise.all([...this.servers.values()].map((s) => new Promise((resolve) => s.close(resolve))));
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/** SIGKILL to every process the container (or exec) started, as the kubelet kills a container's whole cgroup. */
function killAll(child: ChildProcess): void {
    try {
        process.kill(-(child.pid as number), "SIGKILL");
    } catch (e: any) {
        if (e.code !== "ESRCH") {
            throw e;
        }
    }
}

function tcpOnce(host: string, port: number, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve) => {
        const socket = net.connect({ host, port });
        const done = (outcome: Outcome) => {
            socket.destroy();
            resolve(outcome);
        };
        socket.setTimeout(timeoutMs, () => done({ ok: false, detail: `${host}:${port} timed out` }));
        socket.once("connect", () => done({ ok: true, detail: `${host}:${port} accepted` }));
        socket.once("error", (e) => done({ ok: false, detail: `${host}:${port} ${(e as NodeJS.ErrnoException).code}` }));
    });
}

function httpOnce(host: string, port: number, urlPath: string, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve) => {
        const request = http.get({ host, port, path: urlPath, timeout: timeoutMs }, (res) => {
            res.resume();
            const code = res.statusCode ?? 0;
            resolve({ ok: code >= 200 && code < 400, detail: `GET ${host}:${port}${urlPath} ${code}` });
        });
        request.on("timeout", () => request.destroy(new Error("timed out")));
        request.on("error", (e) => resolve({ ok: false, detail: `GET ${host}:${port}${urlPath} ${e.message}` }));
    });
}
