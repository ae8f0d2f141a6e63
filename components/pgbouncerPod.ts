// Pod-level pieces that the central and the sidecar PgBouncer share: the container, its volumes, its
// security context and the checksum that rolls pods when pgbouncer.ini changes.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { createHash } from "crypto";
import { Credentials, EXPORTER_PORT, MonitoringSpec, POD_NAMES, ResourceSpec } from "./specs";
import { USERLIST_PASSWORD_TEMPLATE, externalSecret } from "./externalSecret";
import {
    DatabaseEntry,
    ListenAddress,
    PgBouncerVersion,
    PoolTuning,
    pgbouncerSettings,
    renderPgBouncerIni,
    renderUserlist,
    verifiesServerCertificate,
    versionAtLeast,
} from "./pgbouncerIni";

type Container = k8s.types.input.core.v1.Container;
type Volume = k8s.types.input.core.v1.Volume;

/** uid/gid of the `postgres` user in the Alpine-based PgBouncer images (icoretech, edoburu). */
export const PGBOUNCER_UID = 70;

export const CONFIG_DIR = "/etc/pgbouncer";
export const AUTH_DIR = "/etc/pgbouncer-auth";
export const INI_KEY = "pgbouncer.ini";
export const USERLIST_KEY = "userlist.txt";
export const CA_KEY = "server-ca.pem";
export const AUTH_FILE = `${AUTH_DIR}/${USERLIST_KEY}`;
export const SERVER_CA_FILE = `${CONFIG_DIR}/${CA_KEY}`;

const CONFIG_VOLUME = POD_NAMES.volumes.config;
const AUTH_VOLUME = POD_NAMES.volumes.auth;

/** The account the exporter logs in with: a stats user of PgBouncer's admin console, never the app's. */
export const STATS_USER = "pgbouncer_stats";
export const EXPORTER_CONTAINER = POD_NAMES.containers.exporter;
/** The key of the auth Secret that holds the exporter's connection string. */
export const EXPORTER_DSN_KEY = "exporter-dsn";
/** The variable pgbouncer_exporter (v0.12) reads its connection string from; an argument would show it in `ps`. */
export const EXPORTER_DSN_ENV = "PGBOUNCER_EXPORTER_CONNECTION_STRING";
/** The user name of the exec probes' login attempt; it is in no userlist, so it can never log in. */
export const PROBE_USER = "pgbouncer_probe";

const EXPORTER_RESOURCES: ResourceSpec = { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "32Mi" } };

export function configChecksum(...parts: string[]): string {
    const hash = createHash("sha256");
    for (const part of parts) {
        hash.update(part).update("\0");
    }
    return hash.digest("hex");
}

export function restrictedPodSecurityContext(): k8s.types.input.core.v1.PodSecurityContext {
    return {
        runAsNonRoot: true,
        runAsUser: PGBOUNCER_UID,
        runAsGroup: PGBOUNCER_UID,
        fsGroup: PGBOUNCER_UID,
        seccompProfile: { type: "RuntimeDefault" },
    };
}

export function restrictedContainerSecurityContext(): k8s.types.input.core.v1.SecurityContext {
    return {
        runAsNonRoot: true,
        runAsUser: PGBOUNCER_UID,
        runAsGroup: PGBOUNCER_UID,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        privileged: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
    };
}

/**
 * The config and the userlist are mounted as whole directories, not subPath files: the kubelet keeps a directory
 * mount up to date when the object changes (a subPath file never changes). The pods still roll on every change,
 * through the annotations of podVersionAnnotations.
 */
export function pgbouncerVolumes(configMapName: k8s.types.input.core.v1.ConfigMapVolumeSource["name"], secretName: k8s.types.input.core.v1.SecretVolumeSource["secretName"]): Volume[] {
    return [
        { name: CONFIG_VOLUME, configMap: { name: configMapName, defaultMode: 0o444 } },
        { name: AUTH_VOLUME, secret: { secretName, defaultMode: 0o440 } },
    ];
}

export interface PgBouncerContainerArgs {
    name: string;
    image: string;
    port: number;
    resources: ResourceSpec;
    /** The PgBouncer the image runs: its immediate shutdown is a different signal from 1.23 on. */
    version: PgBouncerVersion;
    /** How the container stops after SIGTERM (see the entrypoint). */
    stop: StopSequence;
    /** Extra fields for the container (probes, lifecycle, restartPolicy). */
    overrides?: Partial<Container>;
}

type Probe = k8s.types.input.core.v1.Probe;

/** A preStop command that waits and ends with status 0 (busybox's sleep, in every image we run). */
export function sleepCommand(seconds: number): string[] {
    return ["/bin/sh", "-c", `sleep ${seconds}`];
}

/** A TCP connect to the pod's IP: only for a process that listens on the pod's addresses. */
export function tcpProbe(port: number, periodSeconds: number, failureThreshold: number): Probe {
    return { tcpSocket: { port }, periodSeconds, failureThreshold, timeoutSeconds: 2 };
}

/**
 * Run inside the container, so it reaches a PgBouncer that listens on loopback only (the kubelet sends tcpSocket
 * probes to the pod's IP). pg_isready ships in the PgBouncer images (postgresql-client); it succeeds once PgBouncer
 * answers the startup packet (it asks for a password), so the probe needs no credentials and never touches the
 * database: a database failover must not fail it.
 */
export function pgIsReadyProbe(host: string, port: number, periodSeconds: number, failureThreshold: number): Probe {
    const command = ["pg_isready", "--quiet", "--host", host, "--port", String(port), "--dbname", "pgbouncer", "--username", PROBE_USER, "--timeout", "2"];
    return { exec: { command }, periodSeconds, failureThreshold, timeoutSeconds: 3 };
}

/**
 * How a PgBouncer container stops after the kubelet's SIGTERM (and after the pod has left the endpoints, where a
 * preStop waits for that): first `clientsLeaveSeconds` for the clients to leave by themselves, then
 * `safeShutdownSeconds` of PgBouncer's safe shutdown, then its immediate one.
 */
export interface StopSequence {
    /**
     * How long the clients' own pools take to close their connections (database/sql's ConnMaxLifetime): a client
     * that leaves between two uses of a connection fails nothing, where a PgBouncer that closes the connection
     * fails the request that next uses it. 0: no such wait (a sidecar, whose app has stopped before it).
     */
    clientsLeaveSeconds: number;
    /** How long the safe shutdown may take (in-flight transactions) before the immediate one. */
    safeShutdownSeconds: number;
}

/**
 * The container's process: a shell that runs PgBouncer and turns the kubelet's SIGTERM into the stop sequence.
 * - With no wait for the clients (`$2` 0): SIGINT at once, PgBouncer's safe shutdown (it stops listening,
 *   in-flight transactions finish, then it exits and closes its clients) on every version: SIGTERM itself means
 *   "exit at once" before 1.23.
 * - With one, from 1.23 (`$5` TERM): SIGTERM, PgBouncer's super safe shutdown: it stops listening, serves its
 *   clients as before, and exits as soon as the last one has left. A SIGINT now would be its fast exit, so the
 *   safe shutdown's time is added to the wait.
 * - With one, before 1.23 (`$5` none): PgBouncer serves on for `$2` seconds (the pod is out of the endpoints, so no
 *   new client arrives), then SIGINT.
 * The safe shutdown waits for every server connection in use, and a session pool's clients (publish-order's
 * outbox listener) hold theirs until they disconnect, which a listener never does: so at the end the script sends
 * the immediate shutdown (`$4`), which closes them (lib/pq reconnects, to another pod), before the kubelet's
 * SIGKILL. A second SIGTERM (or SIGINT) and QUIT are that immediate shutdown; HUP (reload) passes through. So no
 * preStop hook has to signal PgBouncer and outlive it (a hook still running when the container's first process
 * exits is killed, and the kubelet records FailedPreStopHook). `pgbouncer` and the ini file are arguments, found
 * on PATH and at the mounted path, which the integration tests point elsewhere.
 */
export const PGBOUNCER_ENTRYPOINT_SCRIPT = [
    'pgbouncer "$1" & pid=$!',
    'leave=$2 bound=$3 immediate=$4 leaving=$5 timer=',
    "stop() {",
    '  if [ -n "$timer" ]; then kill -"$immediate" "$pid"; return; fi',
    '  safe=INT',
    '  if [ "$leave" = 0 ]; then kill -INT "$pid"; safe=; elif [ "$leaving" != none ]; then kill -"$leaving" "$pid"; safe=; fi',
    '  (sleep "$leave"; [ -z "$safe" ] || kill -"$safe" "$pid" 2>/dev/null; sleep "$bound"; kill -"$immediate" "$pid" 2>/dev/null) & timer=$!',
    "}",
    "trap stop TERM INT",
    "trap 'kill -HUP $pid' HUP",
    // QUIT is the immediate shutdown on every version (1.18 has no handler of its own for it).
    "trap 'kill -$immediate $pid' QUIT",
    // `wait` returns early whenever a trapped signal arrives; keep waiting until PgBouncer has exited.
    'status=0; while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done',
    '[ -z "$timer" ] || kill "$timer" 2>/dev/null',
    'exit "$status"',
].join("\n");

/** PgBouncer's "exit at once": SIGTERM before 1.23, SIGQUIT from 1.23 (where SIGTERM waits for every client). */
export function immediateShutdownSignal(version: PgBouncerVersion): "TERM" | "QUIT" {
    return versionAtLeast(version, "1.23.0") ? "QUIT" : "TERM";
}

/** The signal that lets PgBouncer's clients leave before it exits (its super safe shutdown, 1.23+), or none. */
export function clientsLeaveSignal(version: PgBouncerVersion): "TERM" | "none" {
    return versionAtLeast(version, "1.23.0") ? "TERM" : "none";
}

/** From SIGTERM to the immediate shutdown: what the stop sequence may take, for the grace period. */
export function stopSeconds(stop: StopSequence): number {
    return stop.clientsLeaveSeconds + stop.safeShutdownSeconds;
}

/**
 * The container's command: the entrypoint, pgbouncer.ini (the mounted one; the integration tests give their own),
 * the stop sequence's times and signals.
 */
export function entrypointCommand(version: PgBouncerVersion, stop: StopSequence, iniFile = `${CONFIG_DIR}/${INI_KEY}`): string[] {
    const args = [iniFile, String(stop.clientsLeaveSeconds), String(stop.safeShutdownSeconds), immediateShutdownSignal(version), clientsLeaveSignal(version)];
    return ["/bin/sh", "-c", PGBOUNCER_ENTRYPOINT_SCRIPT, "pgbouncer-entrypoint", ...args];
}

export function pgbouncerContainer(args: PgBouncerContainerArgs): Container {
    return {
        name: args.name,
        image: args.image,
        imagePullPolicy: "IfNotPresent",
        command: entrypointCommand(args.version, args.stop),
        ports: [{ name: "postgres", containerPort: args.port, protocol: "TCP" }],
        resources: args.resources,
        securityContext: restrictedContainerSecurityContext(),
        volumeMounts: [
            { name: CONFIG_VOLUME, mountPath: CONFIG_DIR, readOnly: true },
            { name: AUTH_VOLUME, mountPath: AUTH_DIR, readOnly: true },
        ],
        ...args.overrides,
    };
}

/** Length of the stats user's password: letters and digits only, so that it needs no quoting in the userlist or the DSN. */
const STATS_PASSWORD_LENGTH = 32;

/**
 * The stats user's password: random (@pulumi/random), of its own, kept as a secret in the state and the Secret. It
 * is not derived from the database password, so that whoever learns it (it sits in the exporter's env) can test no
 * guess of the database password offline. The same on every run (no needless rollout); replace the resource
 * (`pulumi up --replace <urn>`) to rotate it.
 */
function statsPassword(name: string, opts: pulumi.CustomResourceOptions): pulumi.Output<string> {
    const password = new random.RandomPassword(
        `${name}-stats-password`,
        { length: STATS_PASSWORD_LENGTH, special: false, minLower: 1, minUpper: 1, minNumeric: 1 },
        // A random resource of the component, through the random provider: never the Kubernetes provider it was given.
        { parent: opts.parent },
    );
    return pulumi.secret(password.result);
}

/** The exporter's connection string: the stats user on PgBouncer's admin database, over loopback. */
export function exporterDsn(password: string, pgbouncerPort: number): string {
    return `postgres://${STATS_USER}:${encodeURIComponent(password)}@127.0.0.1:${pgbouncerPort}/pgbouncer?sslmode=disable`;
}

/** The exporter sidecar. It reads its connection string (with the stats password) from the Secret, through env. */
export function exporterContainer(image: string, secretName: pulumi.Input<string>): k8s.types.input.core.v1.Container {
    return {
        name: EXPORTER_CONTAINER,
        image,
        imagePullPolicy: "IfNotPresent",
        // Every address of the pod: Prometheus scrapes the pod's IP, and so does the liveness probe.
        args: [`--web.listen-address=:${EXPORTER_PORT}`],
        env: [{ name: EXPORTER_DSN_ENV, valueFrom: { secretKeyRef: { name: secretName, key: EXPORTER_DSN_KEY } } }],
        ports: [{ name: "metrics", containerPort: EXPORTER_PORT, protocol: "TCP" }],
        resources: EXPORTER_RESOURCES,
        securityContext: { ...restrictedContainerSecurityContext(), runAsUser: 65534, runAsGroup: 65534 },
        livenessProbe: tcpProbe(EXPORTER_PORT, 10, 6),
    };
}

/** prometheus.io scrape annotations, for a Prometheus without the Operator's monitors. */
export function podScrapeAnnotations(monitoring: MonitoringSpec | undefined): Record<string, string> {
    if (!monitoring || monitoring.prometheusOperator) {
        return {};
    }
    return { "prometheus.io/scrape": "true", "prometheus.io/port": String(EXPORTER_PORT), "prometheus.io/path": "/metrics" };
}

/** The ConfigMap data: pgbouncer.ini, and the CA bundle when the server certificate is verified. */
export function configMapData(ini: string, caBundle: string | undefined): Record<string, string> {
    return caBundle === undefined ? { [INI_KEY]: ini } : { [INI_KEY]: ini, [CA_KEY]: caBundle };
}

/** What every PgBouncer deployment of ours renders its config from. */
export interface PgBouncerConfigArgs {
    version: PgBouncerVersion;
    tuning: PoolTuning;
    databases: DatabaseEntry[];
    user: string;
    /** The user's password: a Pulumi secret, or a Secrets Manager secret that External Secrets Operator copies in. */
    credentials: Credentials;
    /** PEM bundle of the RDS CA, required when the server certificate is verified. */
    serverCaBundle?: string;
    /** When present, pgbouncer_exporter runs beside PgBouncer and logs in as the stats user. */
    monitoring?: MonitoringSpec;
}

/** Both PgBouncer components refuse a verifying TLS mode without the CA bundle to verify with. */
export function assertServerCaBundle(component: string, args: PgBouncerConfigArgs): void {
    if (verifiesServerCertificate(args.tuning.serverTlsSslmode) && !args.serverCaBundle) {
        throw new Error(`${component}: server_tls_sslmode ${args.tuning.serverTlsSslmode} needs serverCaBundle`);
    }
}

/** Where the pod mounts the userlist and the CA bundle. */
export const MOUNTED_FILES = { authFile: AUTH_FILE, serverCaFile: SERVER_CA_FILE };

/**
 * pgbouncer.ini for the files as this module mounts them. `files` is the seam for running the same
 * config outside a pod (the integration tests), where the files live elsewhere.
 */
export function renderPoolerIni(args: PgBouncerConfigArgs, listen: ListenAddress, files = MOUNTED_FILES): string {
    const settings = pgbouncerSettings(args.version, args.tuning, listen, {
        authFile: files.authFile,
        serverCaFile: args.serverCaBundle ? files.serverCaFile : undefined,
    });
    if (args.monitoring) {
        settings.stats_users = STATS_USER;
    }
    return renderPgBouncerIni({ version: args.version, databases: args.databases, settings });
}

export interface PgBouncerConfigObjects {
    configMap: k8s.core.v1.ConfigMap;
    /** The Secret with the userlist and the exporter's connection string (ours, or the one ESO writes). */
    authSecretName: pulumi.Output<string>;
    /** The pod annotations that roll the pods when the config or the userlist changes. */
    annotations: Record<string, pulumi.Input<string>>;
}

/**
 * Pod annotations that change whenever the objects a pod reads change, so that the pods roll. A ConfigMap's content
 * is hashed; a Secret is named by its version (objectVersion), which changes on every write and says nothing of the
 * password (a hash of a password would let whoever reads the pod test guesses offline).
 */
export function podVersionAnnotations(
    checksums: Record<string, string>,
    secrets: Record<string, { metadata: pulumi.Output<{ resourceVersion?: string; generation?: number }> }>,
): Record<string, pulumi.Input<string>> {
    return {
        ...Object.fromEntries(Object.entries(checksums).map(([key, sum]) => [`checksum/${key}`, sum])),
        ...Object.fromEntries(Object.entries(secrets).map(([key, secret]) => [`velure-pooling/${key}-version`, secret.metadata.apply(objectVersion)])),
    };
}

/**
 * An object's version for the annotation: an ExternalSecret's generation, which changes with its spec only (its
 * resourceVersion changes with every status the operator writes, at each refresh, so a `pulumi refresh` would roll
 * the pods); a Secret's resourceVersion (a Secret has no generation).
 */
function objectVersion(metadata: { resourceVersion?: string; generation?: number }): string {
    return metadata.generation ? `generation-${metadata.generation}` : (metadata.resourceVersion ?? "");
}

/** The stats user's userlist line and connection string, with monitoring. */
function statsEntries(stats: pulumi.Output<string> | undefined, port: number): { userlist: pulumi.Output<string>; data: Record<string, pulumi.Output<string>> } {
    if (!stats) {
        return { userlist: pulumi.output(""), data: {} };
    }
    return {
        userlist: stats.apply((password) => renderUserlist([{ name: STATS_USER, password }])),
        data: { [EXPORTER_DSN_KEY]: stats.apply((password) => exporterDsn(password, port)) },
    };
}

/**
 * The userlist as a template for External Secrets Operator: the app's line takes the password from Secrets Manager
 * (quoted as the userlist quotes it), the stats line is ours. The user is a role name (a-z, 0-9, _): no quoting.
 */
function userlistTemplate(user: string, statsUserlist: string): string {
    return `"${user}" "${USERLIST_PASSWORD_TEMPLATE}"\n${statsUserlist}`;
}

/**
 * The auth Secret of one PgBouncer: ours with the password from Pulumi's config, or, with Secrets Manager, the one
 * External Secrets Operator writes from an ExternalSecret whose templates (the stats password in them) are a Secret
 * of ours; the database password then never passes through Pulumi.
 */
function authSecret(
    name: string,
    namespace: pulumi.Input<string>,
    labels: Record<string, string>,
    args: PgBouncerConfigArgs,
    port: number,
    opts: pulumi.CustomResourceOptions,
): { name: pulumi.Output<string>; version: { metadata: pulumi.Output<{ resourceVersion?: string }> } } {
    const stats = statsEntries(args.monitoring ? statsPassword(name, opts) : undefined, port);
    const credentials = args.credentials;
    if (credentials.source === "pulumi") {
        const userlist = pulumi.all([credentials.password, stats.userlist]).apply(([password, statsLine]) => renderUserlist([{ name: args.user, password }]) + statsLine);
        const secret = new k8s.core.v1.Secret(
            `${name}-auth`,
            { metadata: { name: `${name}-auth`, namespace, labels }, type: "Opaque", stringData: pulumi.secret({ [USERLIST_KEY]: userlist, ...stats.data }) },
            opts,
        );
        return { name: secret.metadata.name, version: secret };
    }
    const templates = new k8s.core.v1.Secret(
        `${name}-auth-template`,
        {
            metadata: { name: `${name}-auth-template`, namespace, labels },
            type: "Opaque",
            stringData: pulumi.secret({ [USERLIST_KEY]: stats.userlist.apply((statsLine) => userlistTemplate(args.user, statsLine)), ...stats.data }),
        },
        opts,
    );
    const external = externalSecret(
        `${name}-auth`,
        {
            namespace,
            labels,
            store: credentials.store,
            secretArn: credentials.secretArn,
            target: `${name}-auth`,
            template: { fromSecret: { name: templates.metadata.name, keys: [USERLIST_KEY, ...Object.keys(stats.data)] } },
        },
        opts,
    );
    return { name: external.metadata.name, version: templates };
}

/**
 * The ConfigMap (pgbouncer.ini, CA bundle) and the Secret (userlist, and the exporter's connection string)
 * of one PgBouncer listening on `port`. Both have fixed names and are updated in place, never replaced: a replaced
 * object is deleted at the end of the update, or, when the update fails, at the start of the next one, while pods
 * that a failed Helm release rolled back (or an old ReplicaSet of a stuck rollout) still mount it by name, and
 * every new pod of theirs would wait for it forever. In place, a rolled-back pod starts with the new content.
 */
export function pgbouncerConfigObjects(
    name: string,
    namespace: pulumi.Input<string>,
    labels: Record<string, string>,
    ini: string,
    args: PgBouncerConfigArgs,
    port: number,
    opts: pulumi.CustomResourceOptions,
): PgBouncerConfigObjects {
    const configMap = new k8s.core.v1.ConfigMap(
        `${name}-config`,
        { metadata: { name: `${name}-config`, namespace, labels }, data: configMapData(ini, args.serverCaBundle) },
        opts,
    );
    const auth = authSecret(name, namespace, labels, args, port, opts);
    const annotations = podVersionAnnotations({ "pgbouncer-config": configChecksum(ini, args.serverCaBundle ?? "") }, { "pgbouncer-auth": auth.version });
    return { configMap, authSecretName: auth.name, annotations };
}
