// Reads and validates the whole config before anything is declared. Every problem is collected, so that
// one run reports all of them, each naming the key, the bad value and what is allowed.
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import {
    MANAGED_SETTINGS,
    OLDEST_SUPPORTED_VERSION,
    isManagedSetting,
    POOL_MODES,
    PgBouncerVersion,
    PoolMode,
    PoolTuning,
    SERVER_SSLMODES,
    SettingValue,
    Settings,
    SslMode,
    checkSetting,
    formatVersion,
    parsePgBouncerVersion,
    versionAtLeast,
} from "../components/pgbouncerIni";
import { IMAGE_ALLOWED, QUANTITY, findDuplicate, isImageReference, isRepository, isTag, refuseLimitsBelowRequests, refuseUnknownKeys } from "./checks";
import { readServerCa } from "./certificates";
import { contextProblem } from "./kubeconfig";
import { readRdsProxy } from "./rds";
import { DatabaseSpec, SQL_IDENTIFIER, readDatabaseServers } from "./servers";
import { ConnectionContract, readConnectionContract, readReleaseName, refuseSharedSecrets } from "./connection";
import { ServiceClient, checkNamedStatements, readServiceClient } from "./client";
import { ConfigError, Reader, defaultOf, isRecord, readThresholds, requiredMatch } from "./reader";
import { CONFIG_KEYS, ConfigKey, DEFAULT_MONITORING_ALERTS, MODES, Mode, PROJECT } from "./schema";
import { ROLLOUT } from "../components/connectionBudget";
import { APP_CONTAINER_PORT, HPA_MAX_PERIOD_SECONDS, POD_NAMES, READ_ONLY_SUFFIX, sidecarGracePeriod, AppResources, EXPORTER_PORT, MonitoringSpec, RdsProxySpec, ResourceSpec } from "../components/specs";

export { ConfigError } from "./reader";
export { DatabaseSpec } from "./servers";
export { ConnectionContract } from "./connection";
export { ServiceClient, needsSessionPool, podClientConnections, podClientWords, urlDriverParams } from "./client";
export { MODES, Mode, PROJECT } from "./schema";

export type ChartSource = { path: string } | { repo: string; name: string; version: string };

export interface ServiceSpec {
    name: string;
    /** The Helm release (velure-<name>, or services[].release) and the prefix of the program's objects for it. */
    releaseName: string;
    namespace: string;
    /** How the chart takes its database connection. */
    connection: ConnectionContract;
    /** The name of its database server (databaseServers[].name; "" for the one server of databaseHost). */
    server: string;
    database: string;
    replicas: number;
    /** The HPA's maximum; equals replicas when autoscaling is off. */
    maxReplicas: number;
    image: { repository: string; tag: string };
    /** The app container's port (the chart's `containerPort` value). */
    containerPort: number;
    /** The app container's requests (and limits); required when the HPA is on. */
    resources?: AppResources;
    chart: ChartSource;
    /** Extra chart values, merged under the program's own. */
    values: Record<string, unknown>;
    /** Its database client: driver, pool size and the session features it needs (services[].client). */
    client: ServiceClient;
}

export interface PgBouncerSpec {
    image: string;
    version: PgBouncerVersion;
    tuning: PoolTuning;
    /** With server_tls_sslmode verify-ca / verify-full: the CAs PgBouncer trusts (PEM). */
    serverCaBundle?: string;
    namespace: string;
    replicas: number;
    resources: ResourceSpec;
    drainSeconds: number;
}

export interface SidecarSpec {
    native: boolean;
    port: number;
    resources: ResourceSpec;
    appDrainSeconds: number;
}

export interface VelureConfig {
    mode: Mode;
    /** `services` was set with --secret: its values stay secret in the releases and the outputs. */
    secretServices: boolean;
    /** What every run must say about the config (printed as warnings). */
    warnings: string[];
    /** The database servers, each service's named by ServiceSpec.server. */
    servers: DatabaseSpec[];
    services: ServiceSpec[];
    kubernetes: { kubeconfig?: pulumi.Input<string>; context?: pulumi.Input<string>; createServiceNamespaces: boolean; serviceNetworkPolicies: boolean };
    pgbouncer: PgBouncerSpec;
    sidecar: SidecarSpec;
    /** Present in mode rds-proxy only. */
    rds?: RdsProxySpec;
    /** Present in the PgBouncer modes when the exporter is on. */
    monitoring?: MonitoringSpec;
    /** A switch accepted over budget for one deployment (acceptSwitchOverBudget). */
    acceptSwitch?: { from: Mode; to: Mode };
}

export const DEFAULT_CHART: ChartSource = { path: "charts/velure-service" };

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** A namespace name is a DNS label of at most 63 characters. */
const NAMESPACE = /^(?=.{1,63}$)[a-z]([-a-z0-9]*[a-z0-9])?$/;
const NAMESPACE_ALLOWED = "expected a Kubernetes namespace name (a-z, 0-9, -; at most 63 characters)";

function readChart(r: Reader, at: string, chart: unknown): ChartSource {
    if (chart === undefined) {
        return DEFAULT_CHART;
    }
    if (isRecord(chart) && typeof chart.path === "string" && Object.keys(chart).length === 1) {
        if (!fs.existsSync(path.resolve(chart.path, "Chart.yaml"))) {
            r.problem(`${at}.chart.path`, chart.path, "expected a chart directory (with Chart.yaml), relative to the project");
        }
        return { path: chart.path };
    }
    if (isRecord(chart) && ["repo", "name", "version"].every((k) => typeof chart[k] === "string" && chart[k] !== "")) {
        return { repo: chart.repo as string, name: chart.name as string, version: chart.version as string };
    }
    r.problem(`${at}.chart`, chart, 'expected {path: "charts/..."} or {repo, name, version}');
    return DEFAULT_CHART;
}

const SERVICE_KEYS = ["name", "server", "database", "namespace", "release", "connection", "client", "replicas", "maxReplicas", "resources", "image", "chart", "values"] as const;
/** PostgreSQL and PgBouncer take names of at most 63 bytes; the read replica's pool adds "_ro". */
const DATABASE_NAME_LIMIT = "PostgreSQL's and PgBouncer's limit is 63, and with databaseReplicaHost the pool <database>_ro must fit it too";

/** Chart values that the program sets from other keys, or pins because the budget counts on them. */
function ownedValues(at: string): Record<string, string> {
    const rollout = `the program pins it: the connection budget counts a rollout of ${ROLLOUT.surge} surge pod and ${ROLLOUT.draining} draining pod`;
    return {
        fullnameOverride: "the program names the release velure-<name>",
        image: `set ${at}.image`,
        replicaCount: `set ${at}.replicas`,
        resources: `set ${at}.resources, which the program checks`,
        strategy: rollout,
        minReadySeconds: rollout,
        "autoscaling.enabled": `set ${at}.maxReplicas above replicas`,
        "autoscaling.minReplicas": `set ${at}.replicas`,
        "autoscaling.maxReplicas": `set ${at}.maxReplicas, which the budget counts`,
        "autoscaling.behavior": "the program sets it with a sidecar (one pod scaled down per grace period)",
    };
}

function refuseOwnedValues(r: Reader, at: string, values: Record<string, unknown>): void {
    const autoscaling = isRecord(values.autoscaling) ? values.autoscaling : {};
    for (const [key, where] of Object.entries(ownedValues(at))) {
        const [head, tail] = key.split(".");
        const present = tail === undefined ? head in values : tail in autoscaling;
        if (present) {
            r.problem(`${at}.values.${key}`, tail === undefined ? values[head] : autoscaling[tail], `expected no ${key} here: ${where}`);
        }
    }
}

/** The names in a list value (entries of the form {name: ...}). */
function namesIn(list: unknown): string[] {
    return Array.isArray(list) ? list.map((entry) => (isRecord(entry) ? entry.name : undefined)).filter((n): n is string => typeof n === "string") : [];
}

/**
 * A service's own list values are joined with the program's (services/releases.ts mergeValues): the names the
 * program puts into the pods must stay free there, and env keys the program sets would be silently overwritten.
 */
function refuseProgramNames(r: Reader, at: string, values: Record<string, unknown>): void {
    const taken: { key: string; names: string[]; what: string }[] = [
        { key: "initContainers", names: Object.values(POD_NAMES.containers), what: "a container the program adds" },
        { key: "extraContainers", names: Object.values(POD_NAMES.containers), what: "a container the program adds" },
        { key: "extraVolumes", names: Object.values(POD_NAMES.volumes), what: "a volume the program adds" },
        { key: "extraVolumeMounts", names: Object.values(POD_NAMES.volumes), what: "a volume the program mounts" },
        { key: "extraEnv", names: [...POD_NAMES.env], what: "a variable the program sets" },
    ];
    for (const { key, names, what } of taken) {
        for (const name of namesIn(values[key]).filter((n) => names.includes(n))) {
            r.problem(`${at}.values.${key}`, name, `expected another name: ${name} is ${what} (${names.join(", ")} are the program's)`);
        }
    }
    const env = isRecord(values.env) ? Object.keys(values.env) : [];
    for (const name of env.filter((n) => (POD_NAMES.env as readonly string[]).includes(n))) {
        // The value is not shown: env is where a service keeps its own secrets.
        r.problems.push(`${PROJECT}:${at}.values.env.${name}: expected no ${name} here: the program sets it from the pooler`);
    }
}

/**
 * The server a service names: required with several servers, and one of them; with the one server of databaseHost,
 * nothing to name.
 */
function readServiceServer(r: Reader, at: string, raw: unknown, servers: DatabaseSpec[]): DatabaseSpec | undefined {
    const names = servers.map((s) => s.name);
    if (raw === undefined && servers.length === 1) {
        return servers[0];
    }
    const server = servers.find((s) => s.name !== "" && s.name === raw);
    if (!server) {
        const allowed = names.every((n) => n === "")
            ? "expected no server: without databaseServers, every service uses the one server of databaseHost"
            : `expected the name of one of databaseServers: ${names.join(", ")}`;
        r.problem(`${at}.server`, raw, allowed);
    }
    return server;
}

function readService(r: Reader, index: number, raw: unknown, servers: DatabaseSpec[]): ServiceSpec | undefined {
    const at = `services[${index}]`;
    if (!isRecord(raw)) {
        r.problem(at, raw, "expected an object with name, database, namespace, replicas, image");
        return undefined;
    }
    const field = (name: string, pattern: RegExp, allowed: string): string => {
        const value = raw[name];
        if (typeof value !== "string" || !pattern.test(value)) {
            r.problem(`${at}.${name}`, value, allowed);
            return "";
        }
        return value;
    };
    refuseUnknownKeys(r, at, raw, SERVICE_KEYS);
    const name = field("name", DNS_LABEL, "expected a DNS label (a-z, 0-9, -) of at most 46 characters");
    if (name.length > 46 && raw.release === undefined) {
        r.problem(`${at}.name`, name, "expected at most 46 characters (the release velure-<name> must fit Helm's 53)");
    }
    const server = readServiceServer(r, at, raw.server, servers);
    const releaseName = readReleaseName(r, `${at}.release`, raw.release, name);
    const connection = readConnectionContract(r, `${at}.connection`, raw.connection, Boolean(server?.replicaHost));
    const maxDatabaseName = server?.replicaHost ? 63 - READ_ONLY_SUFFIX.length : 63;
    const database = field("database", SQL_IDENTIFIER, "expected a lower-case database name (a-z, 0-9, _)");
    if (database.length > maxDatabaseName) {
        r.problem(`${at}.database`, database, `expected at most ${maxDatabaseName} characters (${DATABASE_NAME_LIMIT})`);
    }
    const namespace = field("namespace", NAMESPACE, NAMESPACE_ALLOWED);
    const replicas = raw.replicas;
    if (!Number.isInteger(replicas) || (replicas as number) < 1) {
        r.problem(`${at}.replicas`, replicas, "expected an integer >= 1");
    }
    const maxReplicas = raw.maxReplicas ?? replicas;
    if (!Number.isInteger(maxReplicas) || (maxReplicas as number) < (replicas as number)) {
        r.problem(`${at}.maxReplicas`, maxReplicas, `expected an integer >= replicas (${replicas})`);
    }
    const image = raw.image;
    if (!isRecord(image) || !isRepository(image.repository) || !isTag(image.tag)) {
        r.problem(`${at}.image`, image, "expected {repository, tag}: a registry path (lower-case, no spaces or quotes) and a tag ([A-Za-z0-9_.-], at most 128)");
    }
    refuseUnknownKeys(r, `${at}.image`, image, ["repository", "tag"]);
    if (raw.values !== undefined && !isRecord(raw.values)) {
        r.problem(`${at}.values`, raw.values, "expected an object of chart values");
    }
    const values = isRecord(raw.values) ? raw.values : {};
    refuseOwnedValues(r, at, values);
    refuseProgramNames(r, at, values);
    const containerPort = values.containerPort ?? APP_CONTAINER_PORT;
    if (!Number.isInteger(containerPort) || (containerPort as number) < 1 || (containerPort as number) > 65535) {
        r.problem(`${at}.values.containerPort`, containerPort, "expected a TCP port (1..65535)");
    }
    const autoscaling = Number.isInteger(maxReplicas) && (maxReplicas as number) > (replicas as number);
    return {
        name,
        releaseName,
        namespace,
        connection,
        server: server?.name ?? "",
        database,
        replicas: replicas as number,
        maxReplicas: maxReplicas as number,
        image: image as ServiceSpec["image"],
        containerPort: containerPort as number,
        resources: readAppResources(r, `${at}.resources`, raw.resources, autoscaling ? `${maxReplicas} > replicas ${replicas}` : undefined),
        chart: readChart(r, at, raw.chart),
        values,
        client: readServiceClient(r, `${at}.client`, raw.client),
    };
}

/** Only requests and limits, each of cpu and memory, and no limit below its request. */
function refuseResourceShape(r: Reader, at: string, raw: Record<string, unknown>): void {
    refuseUnknownKeys(r, at, raw, ["requests", "limits"]);
    refuseUnknownKeys(r, `${at}.requests`, raw.requests, ["cpu", "memory"]);
    refuseUnknownKeys(r, `${at}.limits`, raw.limits, ["cpu", "memory"]);
    refuseLimitsBelowRequests(r, at, raw.requests as Record<string, unknown>, raw.limits as Record<string, unknown> | undefined);
}

const isQuantity = (value: unknown) => typeof value === "string" && QUANTITY.test(value);

/** `autoscaling` says why requests are required (the HPA is on), or is undefined when they are optional. */
function readAppResources(r: Reader, at: string, raw: unknown, autoscaling: string | undefined): AppResources | undefined {
    const allowed = "expected {requests: {cpu, memory}, limits?: {cpu?, memory?}} with Kubernetes quantities";
    if (raw === undefined) {
        if (autoscaling) {
            r.problem(at, raw, `the HPA (maxReplicas ${autoscaling}) scales on CPU utilisation of the requests: ${allowed}`);
        }
        return undefined;
    }
    const requests = isRecord(raw) ? raw.requests : undefined;
    const limits = isRecord(raw) ? raw.limits : undefined;
    const ok =
        isRecord(requests) &&
        isQuantity(requests.cpu) &&
        isQuantity(requests.memory) &&
        (limits === undefined || (isRecord(limits) && Object.values(limits).every(isQuantity)));
    if (!ok) {
        r.problem(at, raw, allowed);
        return undefined;
    }
    refuseResourceShape(r, at, raw as Record<string, unknown>);
    return raw as unknown as AppResources;
}

function readServices(r: Reader, servers: DatabaseSpec[]): ServiceSpec[] {
    const raw = r.object<unknown>("services");
    if (!Array.isArray(raw) || raw.length === 0) {
        r.problem("services", raw, "expected a non-empty list of services");
        return [];
    }
    const services = raw.map((s, i) => readService(r, i, s, servers)).filter((s): s is ServiceSpec => s !== undefined);
    const duplicateName = findDuplicate(services.map((s) => s.name));
    if (duplicateName) {
        r.problem("services", duplicateName, "expected each service name once");
    }
    const duplicateDb = findDuplicate(services.map((s) => s.database));
    if (duplicateDb) {
        r.problem("services", duplicateDb, "expected each database once (one pooler entry per service database)");
    }
    const duplicateRelease = findDuplicate(services.map((s) => `${s.namespace}/${s.releaseName}`));
    if (duplicateRelease) {
        r.problem("services", duplicateRelease, "expected each Helm release (namespace/release) once");
    }
    refuseSharedSecrets(r, services.map((s) => ({ ...s, at: `services[${raw.findIndex((entry) => isRecord(entry) && entry.name === s.name)}]` })));
    return services;
}

/** The PgBouncer version: given, or read from the image tag; both must agree. */
function readPgBouncerVersion(r: Reader, image: string): PgBouncerVersion {
    const given = r.string("pgbouncerVersion");
    const tag = /:([^:@/]+)$/.exec(image.split("@")[0])?.[1] ?? "";
    const fromTag = /^v?(\d+\.\d+(?:\.\d+)?)/.exec(tag)?.[1];
    // The key that carried the version, for the messages: pgbouncerVersion, or the image's tag.
    const versionKey = given ? "pgbouncerVersion" : "pgbouncerImage";
    if (!given && !fromTag) {
        r.problem("pgbouncerVersion", given, `expected the PgBouncer version of image "${image}" (its tag names none), such as 1.26.1`);
        return parsePgBouncerVersion("1.18.0");
    }
    try {
        const version = parsePgBouncerVersion(given || (fromTag as string));
        if (given && fromTag && formatVersion(parsePgBouncerVersion(fromTag)) !== formatVersion(version)) {
            r.problem("pgbouncerVersion", given, `expected the version of the image tag (${fromTag})`);
        } else if (!versionAtLeast(version, OLDEST_SUPPORTED_VERSION)) {
            r.problem(versionKey, given || image, `PgBouncer ${formatVersion(version)} is not supported; expected ${OLDEST_SUPPORTED_VERSION} or newer`);
        }
        return version;
    } catch (e) {
        r.problem(versionKey, given || image, (e as Error).message);
        return parsePgBouncerVersion("1.18.0");
    }
}

/** User overrides of [pgbouncer] keys, each checked against what the target PgBouncer version accepts. */
function readSettings(r: Reader, version: PgBouncerVersion): Settings {
    const raw = r.object<unknown>("pgbouncerSettings");
    if (!isRecord(raw)) {
        r.problem("pgbouncerSettings", raw, "expected a map of pgbouncer.ini keys to values");
        return {};
    }
    const settings: Settings = {};
    for (const [key, value] of Object.entries(raw)) {
        if (!["string", "number", "boolean"].includes(typeof value)) {
            r.problem(`pgbouncerSettings.${key}`, value, "expected a string, number or boolean");
        } else if (isManagedSetting(key)) {
            r.problem(`pgbouncerSettings.${key}`, value, `this key is owned by ${MANAGED_SETTINGS[key]}`);
        } else {
            try {
                checkSetting(version, key, value as SettingValue);
                settings[key] = value as SettingValue;
            } catch (e) {
                r.problem(`pgbouncerSettings.${key}`, value, (e as Error).message);
            }
        }
    }
    return settings;
}

function readResources(r: Reader, key: ConfigKey): ResourceSpec {
    const raw = r.object<ResourceSpec>(key);
    const ok =
        isRecord(raw) &&
        ["requests", "limits"].every((part) => {
            const entry = (raw as unknown as Record<string, unknown>)[part];
            return isRecord(entry) && ["cpu", "memory"].every((k) => typeof entry[k] === "string" && QUANTITY.test(entry[k] as string));
        });
    if (!ok) {
        r.problem(key, raw, "expected {requests: {cpu, memory}, limits: {cpu, memory}} with Kubernetes quantities");
        return defaultOf(key) as ResourceSpec;
    }
    refuseResourceShape(r, key, raw as unknown as Record<string, unknown>);
    return raw;
}

const isKubeconfigContents = (value: string) => /[\r\n]/.test(value) || /^\s*(\{|apiVersion\s*:)/.test(value);

/**
 * A path stays a plain value; contents carry credentials (tokens, client keys) and stay a secret everywhere. A
 * context must be one the kubeconfig has.
 */
function readKubernetes(r: Reader): Pick<VelureConfig["kubernetes"], "kubeconfig" | "context"> {
    const value = r.string("kubeconfig");
    const context = r.string("kubernetesContext");
    const isContents = isKubeconfigContents(value);
    if (context) {
        const problem = contextProblem(context, { given: value || undefined, isContents, env: process.env.KUBECONFIG });
        if (problem) {
            r.problem("kubernetesContext", context, problem);
        }
    }
    const secret = (v: string, key: ConfigKey) => (r.isSecret(key) ? pulumi.secret(v) : v);
    return {
        kubeconfig: !value ? undefined : isContents ? pulumi.secret(value) : secret(value, "kubeconfig"),
        context: context ? secret(context, "kubernetesContext") : undefined,
    };
}

/**
 * The keys that may be set with --secret: the password (always a secret), kubeconfig and kubernetesContext (the
 * provider's inputs), services (the releases' values and the services output; SECRET_SERVICES_WARNING says what
 * cannot be). Every other key is written where Pulumi or Kubernetes keeps it in the clear (resource names and URNs,
 * pgbouncer.ini in a ConfigMap, AWS resource properties, the budget in the outputs and messages), so a secret value
 * there is refused rather than silently revealed.
 */
const SECRET_KEYS: readonly ConfigKey[] = ["databasePassword", "databasePasswords", "kubeconfig", "kubernetesContext", "services"];

/** A value derived from a key set with --secret stays a secret wherever it goes (release values, outputs). */
export function secretIf<T>(secret: boolean, value: T): pulumi.Input<T> {
    return secret ? (pulumi.secret(value) as pulumi.Output<T>) : value;
}

/** A secret `services` keeps its values secret; its identifiers cannot be, and every run says so. */
const SECRET_SERVICES_WARNING =
    "services: set as a secret, so the releases' values and the services output are secret; the service names, namespaces and " +
    "databases are not (they name Kubernetes objects, Pulumi resources and pgbouncer.ini entries): keep secrets in services[].values only";

function refuseRevealedSecrets(r: Reader): void {
    for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
        if (r.isSecret(key) && !SECRET_KEYS.includes(key)) {
            r.problems.push(
                `${PROJECT}:${key}: set as a secret, which the program cannot keep: it writes this key where Pulumi or Kubernetes keeps it in the clear ` +
                    `(resource names, ConfigMaps, AWS resource properties or the stack's outputs). Set it as plain config: pulumi config set ${PROJECT}:${key} <value>. ` +
                    `Keys that may be secrets: ${SECRET_KEYS.join(", ")}`,
            );
        }
    }
}

function readPgBouncerReplicas(r: Reader, mode: Mode): number {
    const replicas = r.integer("pgbouncerReplicas", 1);
    if (mode === "pgbouncer-cluster" && r.valid("pgbouncerReplicas") && replicas < 2) {
        r.problem(
            "pgbouncerReplicas",
            replicas,
            "expected at least 2: every service goes through the central PgBouncer, so one pod would stop them all on any restart, node drain or rollout",
        );
    }
    return replicas;
}

function readImage(r: Reader, key: ConfigKey): string {
    const image = r.string(key);
    if (!isImageReference(image)) {
        r.problem(key, image, IMAGE_ALLOWED);
    }
    return image;
}

function readPgBouncer(r: Reader, mode: Mode, servers: DatabaseSpec[]): PgBouncerSpec {
    const image = readImage(r, "pgbouncerImage");
    const defaultPoolSize = r.integer("pgbouncerDefaultPoolSize", 1);
    const reservePoolSize = r.integer("pgbouncerReservePoolSize", 0);
    const maxDb = r.integer("pgbouncerMaxDbConnections", 0);
    const serverTlsSslmode = r.oneOf("pgbouncerServerTlsSslmode", SERVER_SSLMODES) as SslMode;
    const version = readPgBouncerVersion(r, image);
    return {
        image,
        version,
        tuning: {
            poolMode: r.oneOf<PoolMode>("pgbouncerPoolMode", POOL_MODES),
            defaultPoolSize,
            reservePoolSize,
            reservePoolTimeout: r.integer("pgbouncerReservePoolTimeout", 0),
            maxDbConnections: maxDb === 0 ? defaultPoolSize + reservePoolSize : maxDb,
            maxClientConn: r.integer("pgbouncerMaxClientConn", 1),
            serverTlsSslmode,
            extra: readSettings(r, version),
        },
        // PgBouncer does not run in mode rds-proxy; the proxy's own CA is the apps' (options/rdsProxy.ts).
        serverCaBundle: mode === "rds-proxy" ? undefined : readServerCa(r, serverTlsSslmode, servers.flatMap((s) => [s.host, s.replicaHost ?? ""]), new Date()),
        namespace: requiredMatch(r, "pgbouncerNamespace", NAMESPACE, NAMESPACE_ALLOWED),
        replicas: readPgBouncerReplicas(r, mode),
        resources: readResources(r, "pgbouncerResources"),
        drainSeconds: r.integer("pgbouncerDrainSeconds", 1, 3600),
    };
}

/** A label's key (an optional DNS prefix and a name) and its value, as the API server takes them. */
const LABEL_KEY = /^(?:(?=.{1,253}\/)[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?=.{0,63}$)([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function readLabels(r: Reader, key: ConfigKey): Record<string, string> {
    const raw = r.object<unknown>(key);
    if (!isRecord(raw)) {
        r.problem(key, raw, "expected a map of label keys to values");
        return {};
    }
    for (const [name, value] of Object.entries(raw)) {
        if (!LABEL_KEY.test(name) || typeof value !== "string" || !LABEL_VALUE.test(value)) {
            r.problem(`${key}.${name}`, value, "expected a Kubernetes label: a key such as release or example.com/team, and a value of at most 63 characters [A-Za-z0-9_.-]");
        }
    }
    return raw as Record<string, string>;
}

/** Without the labels its Prometheus selects by, the Operator's objects are declared and never read: no scrape, no alert. */
function monitorSelectorWarning(monitoring: MonitoringSpec | undefined): string[] {
    if (!monitoring?.prometheusOperator || Object.keys(monitoring.selectorLabels).length > 0) {
        return [];
    }
    return [
        "monitoringSelectorLabels: empty, while monitoringPrometheusOperator is true: a Prometheus that selects monitors and rules by label " +
            "(kube-prometheus-stack selects release: <its release name>) ignores the ServiceMonitor, PodMonitor and PrometheusRule; set the labels it selects",
    ];
}

function readMonitoring(r: Reader, mode: Mode): MonitoringSpec | undefined {
    const exporter = r.boolean("monitoringExporter");
    if (mode === "rds-proxy" || !exporter) {
        return undefined;
    }
    const namespace = requiredMatch(r, "monitoringNamespace", NAMESPACE, NAMESPACE_ALLOWED);
    return {
        exporterImage: readImage(r, "monitoringExporterImage"),
        prometheusOperator: r.boolean("monitoringPrometheusOperator"),
        namespace,
        alerts: readThresholds(r, "monitoringAlerts", DEFAULT_MONITORING_ALERTS, true),
        dashboard: r.boolean("monitoringDashboard"),
        selectorLabels: readLabels(r, "monitoringSelectorLabels"),
    };
}

/** A listed server that no service names: nothing pools to it, which is more likely a slip than a plan. */
function unusedServerWarnings(config: VelureConfig): string[] {
    return config.servers
        .filter((server) => server.name && !config.services.some((s) => s.server === server.name))
        .map((server) => `${server.at} (${server.name}): no service names this server (services[].server), so nothing pools to it`);
}

/** A service's database server (loadConfig checked that it names one). */
export function serverOf(config: VelureConfig, service: ServiceSpec): DatabaseSpec {
    return config.servers.find((s) => s.name === service.server) as DatabaseSpec;
}

/** The services' namespaces, each once, in the order the services name them. */
export function serviceNamespaceNames(config: VelureConfig): string[] {
    return [...new Set(config.services.map((s) => s.namespace))];
}

/** Namespaces that the cluster itself owns: the program must never create (or, on destroy, delete) them. */
const SYSTEM_NAMESPACE = /^(default|kube-[-a-z0-9]*)$/;

/**
 * The namespaces the program creates, and so `pulumi destroy` deletes: the central PgBouncer's (pgbouncer-cluster)
 * and the services' (createServiceNamespaces). None may be a system namespace or Prometheus's, and PgBouncer's may
 * not be a service's (two Namespace objects with one name).
 */
function checkOwnedNamespaces(r: Reader, config: VelureConfig): void {
    const owned: { key: string; name: string }[] = [];
    if (config.mode === "pgbouncer-cluster") {
        owned.push({ key: "pgbouncerNamespace", name: config.pgbouncer.namespace });
    }
    if (config.kubernetes.createServiceNamespaces) {
        config.services.forEach((s, i) => owned.push({ key: `services[${i}].namespace`, name: s.namespace }));
    }
    for (const { key, name } of owned) {
        if (SYSTEM_NAMESPACE.test(name)) {
            r.problem(key, name, "expected a namespace of the program's own (it creates it, and pulumi destroy deletes it), not default or kube-*");
        } else if (config.monitoring && name === config.monitoring.namespace) {
            r.problem(key, name, `expected a namespace of the program's own, not monitoringNamespace, which Prometheus owns (pulumi destroy would delete it)`);
        }
    }
    const shared = config.mode === "pgbouncer-cluster" && config.services.find((s) => s.namespace === config.pgbouncer.namespace);
    if (shared) {
        r.problem("pgbouncerNamespace", config.pgbouncer.namespace, `expected a namespace of its own, not the namespace of service ${shared.name}`);
    }
}

/**
 * A sidecar and its exporter share the app's pod, so its network: two containers on one port cannot both start.
 */
function checkSidecarPorts(r: Reader, mode: Mode, sidecarPort: number, services: ServiceSpec[], monitoring: MonitoringSpec | undefined): void {
    if (mode !== "pgbouncer-sidecar" || !r.valid("sidecarPort")) {
        return;
    }
    const exporter = monitoring ? [{ port: EXPORTER_PORT, what: "the exporter's port" }] : [];
    if (monitoring && sidecarPort === EXPORTER_PORT) {
        r.problem("sidecarPort", sidecarPort, `expected a port other than ${EXPORTER_PORT}, the exporter's port in the same pod`);
    }
    services.forEach((service, i) => {
        const taken = [{ port: sidecarPort, what: "sidecarPort" }, ...exporter].find((t) => t.port === service.containerPort);
        if (taken) {
            r.problem(
                `services[${i}].values.containerPort`,
                service.containerPort,
                `expected a port other than ${taken.port} (${taken.what}), which the PgBouncer sidecar's pod already uses`,
            );
        }
    });
}

/** The sidecar's HPA scales down one pod per grace period, and the API server takes no policy period above 1800 s. */
function readAppDrainSeconds(r: Reader): number {
    const seconds = r.integer("appDrainSeconds", 0);
    if (r.valid("appDrainSeconds") && sidecarGracePeriod(seconds) > HPA_MAX_PERIOD_SECONDS) {
        r.problem(
            "appDrainSeconds",
            seconds,
            `expected at most ${HPA_MAX_PERIOD_SECONDS - sidecarGracePeriod(0)}: the grace period (appDrainSeconds + ${sidecarGracePeriod(0)}) is the sidecar HPA's ` +
                `scale-down periodSeconds, which the API server caps at ${HPA_MAX_PERIOD_SECONDS}`,
        );
    }
    return seconds;
}

function readAcceptedSwitch(r: Reader): { from: Mode; to: Mode } | undefined {
    const value = r.string("acceptSwitchOverBudget");
    if (!value) {
        return undefined;
    }
    const [from, to, ...rest] = value.split("->");
    const isMode = (m: string | undefined): m is Mode => (MODES as readonly (string | undefined)[]).includes(m);
    if (rest.length > 0 || !isMode(from) || !isMode(to)) {
        r.problem(
            "acceptSwitchOverBudget",
            value,
            `expected <deployed mode>-><new mode> with modes of ${MODES.join(", ")} (the same mode twice for an update within a mode), or empty`,
        );
        return undefined;
    }
    return { from, to };
}

/** In the PgBouncer modes, each service's driver against the PgBouncer the config targets. */
function checkClients(r: Reader, config: VelureConfig): void {
    if (config.mode === "rds-proxy") {
        return;
    }
    const { tuning, version } = config.pgbouncer;
    config.services.forEach((s, i) => checkNamedStatements(r, `services[${i}].client`, s.client, tuning.poolMode, version, tuning.extra));
}

/** Reads the whole config; throws one ConfigError listing every problem. */
export function loadConfig(config = new pulumi.Config(PROJECT)): VelureConfig {
    const r = new Reader(config);
    const mode = r.oneOf<Mode>("mode", MODES);
    if (r.problems.length > 0) {
        // Nothing else is meaningful without a valid mode.
        throw new ConfigError(r.problems);
    }
    refuseRevealedSecrets(r);
    const kubernetes = readKubernetes(r);
    const servers = readDatabaseServers(r, config);
    const secretServices = r.isSecret("services");
    const result: VelureConfig = {
        mode,
        secretServices,
        warnings: secretServices ? [SECRET_SERVICES_WARNING] : [],
        servers,
        services: readServices(r, servers),
        kubernetes: {
            ...kubernetes,
            createServiceNamespaces: r.boolean("createServiceNamespaces"),
            serviceNetworkPolicies: r.boolean("serviceNetworkPolicies"),
        },
        pgbouncer: readPgBouncer(r, mode, servers),
        sidecar: {
            native: r.boolean("sidecarNative"),
            port: r.integer("sidecarPort", 1024, 65535),
            resources: readResources(r, "sidecarResources"),
            appDrainSeconds: readAppDrainSeconds(r),
        },
        rds: mode === "rds-proxy" ? readRdsProxy(r, servers) : undefined,
        monitoring: readMonitoring(r, mode),
        acceptSwitch: readAcceptedSwitch(r),
    };
    result.warnings.push(...monitorSelectorWarning(result.monitoring), ...unusedServerWarnings(result));
    checkSidecarPorts(r, mode, result.sidecar.port, result.services, result.monitoring);
    checkClients(r, result);
    checkOwnedNamespaces(r, result);
    if (r.problems.length > 0) {
        throw new ConfigError(r.problems);
    }
    return result;
}
