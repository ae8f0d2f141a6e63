// Pure rendering of pgbouncer.ini and userlist.txt. This file is the one place that knows every
// [pgbouncer] key, the PgBouncer version that introduced it and the values it accepts, so that a config
// for PgBouncer 1.18 never carries a 1.21 key (1.18 refuses to start on an unknown key).

export interface PgBouncerVersion {
    major: number;
    minor: number;
    patch: number;
}

export function parsePgBouncerVersion(text: string): PgBouncerVersion {
    const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(text.trim());
    if (!match) {
        throw new Error(`"${text}" is not a PgBouncer version; expected MAJOR.MINOR[.PATCH], such as 1.26.1`);
    }
    return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

export function versionAtLeast(version: PgBouncerVersion, minimum: string): boolean {
    const min = parsePgBouncerVersion(minimum);
    const a = [version.major, version.minor, version.patch];
    const b = [min.major, min.minor, min.patch];
    for (let i = 0; i < 3; i++) {
        if (a[i] !== b[i]) {
            return a[i] > b[i];
        }
    }
    return true;
}

export function formatVersion(version: PgBouncerVersion): string {
    return `${version.major}.${version.minor}.${version.patch}`;
}

/** The oldest PgBouncer the renderer supports: the one Debian 12 ships and the integration tests run. */
export const OLDEST_SUPPORTED_VERSION = "1.18.0";

type ValueKind =
    | { kind: "int"; min?: number; max?: number }
    | { kind: "flag" }
    | { kind: "enum"; values: readonly string[]; valuesSince?: Readonly<Record<string, string>> }
    | { kind: "text" };

interface SettingSpec {
    since: string;
    value: ValueKind;
}

const INT: ValueKind = { kind: "int", min: 0 };
const FLAG: ValueKind = { kind: "flag" };
const TEXT: ValueKind = { kind: "text" };
const SSLMODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
const SSLMODE: ValueKind = { kind: "enum", values: SSLMODES };
const BASE = OLDEST_SUPPORTED_VERSION;

// Keys of the [pgbouncer] section, from PgBouncer's own table (src/main.c, bouncer_params) and changelog.
// `since` is the first release that accepts the key; older ones were all present in 1.18.
export const PGBOUNCER_SETTINGS: Readonly<Record<string, SettingSpec>> = {
    admin_users: { since: BASE, value: TEXT },
    application_name_add_host: { since: BASE, value: FLAG },
    auth_dbname: { since: "1.19.0", value: TEXT },
    auth_file: { since: BASE, value: TEXT },
    auth_hba_file: { since: BASE, value: TEXT },
    auth_ident_file: { since: "1.23.0", value: TEXT },
    auth_ldap_options: { since: "1.25.0", value: TEXT },
    auth_query: { since: BASE, value: TEXT },
    auth_type: {
        since: BASE,
        value: { kind: "enum", values: ["cert", "md5", "scram-sha-256", "plain", "trust", "any", "hba", "pam", "ldap"], valuesSince: { ldap: "1.25.0" } },
    },
    auth_user: { since: BASE, value: TEXT },
    autodb_idle_timeout: { since: BASE, value: INT },
    cancel_wait_timeout: { since: "1.19.0", value: INT },
    client_idle_timeout: { since: BASE, value: INT },
    client_login_timeout: { since: BASE, value: INT },
    client_tls13_ciphers: { since: "1.25.0", value: TEXT },
    client_tls_ca_file: { since: BASE, value: TEXT },
    client_tls_cert_file: { since: BASE, value: TEXT },
    client_tls_ciphers: { since: BASE, value: TEXT },
    client_tls_dheparams: { since: BASE, value: TEXT },
    client_tls_ecdhcurve: { since: BASE, value: TEXT },
    client_tls_key_file: { since: BASE, value: TEXT },
    client_tls_protocols: { since: BASE, value: TEXT },
    client_tls_sslmode: { since: BASE, value: SSLMODE },
    default_pool_size: { since: BASE, value: { kind: "int", min: 1 } },
    disable_pqexec: { since: BASE, value: FLAG },
    dns_max_ttl: { since: BASE, value: INT },
    dns_nxdomain_ttl: { since: BASE, value: INT },
    dns_zone_check_period: { since: BASE, value: INT },
    idle_transaction_timeout: { since: BASE, value: INT },
    ignore_startup_parameters: { since: BASE, value: TEXT },
    job_name: { since: BASE, value: TEXT },
    listen_addr: { since: BASE, value: TEXT },
    listen_backlog: { since: BASE, value: INT },
    listen_port: { since: BASE, value: { kind: "int", min: 1, max: 65535 } },
    log_connections: { since: BASE, value: FLAG },
    log_disconnections: { since: BASE, value: FLAG },
    log_pooler_errors: { since: BASE, value: FLAG },
    log_stats: { since: BASE, value: FLAG },
    logfile: { since: BASE, value: TEXT },
    max_client_conn: { since: BASE, value: { kind: "int", min: 1 } },
    max_db_client_connections: { since: "1.24.0", value: INT },
    max_db_connections: { since: BASE, value: INT },
    max_packet_size: { since: BASE, value: { kind: "int", min: 1, max: 2147483647 } },
    max_prepared_statements: { since: "1.21.0", value: INT },
    max_user_client_connections: { since: "1.24.0", value: INT },
    max_user_connections: { since: BASE, value: INT },
    min_pool_size: { since: BASE, value: INT },
    peer_id: { since: "1.19.0", value: INT },
    pidfile: { since: BASE, value: TEXT },
    pkt_buf: { since: BASE, value: INT },
    pool_idle_timeout: { since: "1.26.0", value: INT },
    pool_mode: { since: BASE, value: { kind: "enum", values: ["session", "transaction", "statement"] } },
    query_timeout: { since: BASE, value: INT },
    query_wait_notify: { since: "1.25.0", value: INT },
    query_wait_timeout: { since: BASE, value: INT },
    reserve_pool_size: { since: BASE, value: INT },
    reserve_pool_timeout: { since: BASE, value: INT },
    resolv_conf: { since: BASE, value: TEXT },
    sbuf_loopcnt: { since: BASE, value: INT },
    scram_iterations: { since: "1.25.0", value: { kind: "int", min: 1 } },
    server_check_delay: { since: BASE, value: INT },
    server_check_query: { since: BASE, value: TEXT },
    server_connect_timeout: { since: BASE, value: INT },
    server_fast_close: { since: BASE, value: FLAG },
    server_idle_timeout: { since: BASE, value: INT },
    server_lifetime: { since: BASE, value: INT },
    server_login_retry: { since: BASE, value: INT },
    server_reset_query: { since: BASE, value: TEXT },
    server_reset_query_always: { since: BASE, value: FLAG },
    server_round_robin: { since: BASE, value: FLAG },
    server_tls13_ciphers: { since: "1.25.0", value: TEXT },
    server_tls_ca_file: { since: BASE, value: TEXT },
    server_tls_cert_file: { since: BASE, value: TEXT },
    server_tls_ciphers: { since: BASE, value: TEXT },
    server_tls_key_file: { since: BASE, value: TEXT },
    server_tls_protocols: { since: BASE, value: TEXT },
    server_tls_sslmode: { since: BASE, value: SSLMODE },
    so_reuseport: { since: BASE, value: FLAG },
    stats_period: { since: BASE, value: { kind: "int", min: 1 } },
    stats_users: { since: BASE, value: TEXT },
    suspend_timeout: { since: BASE, value: INT },
    syslog: { since: BASE, value: FLAG },
    syslog_facility: { since: BASE, value: TEXT },
    syslog_ident: { since: BASE, value: TEXT },
    tcp_defer_accept: { since: BASE, value: INT },
    tcp_keepalive: { since: BASE, value: FLAG },
    tcp_keepcnt: { since: BASE, value: INT },
    tcp_keepidle: { since: BASE, value: INT },
    tcp_keepintvl: { since: BASE, value: INT },
    tcp_socket_buffer: { since: BASE, value: INT },
    tcp_user_timeout: { since: BASE, value: INT },
    track_extra_parameters: { since: "1.20.0", value: TEXT },
    transaction_timeout: { since: "1.25.0", value: INT },
    unix_socket_dir: { since: BASE, value: TEXT },
    unix_socket_group: { since: BASE, value: TEXT },
    unix_socket_mode: { since: BASE, value: TEXT },
    user: { since: BASE, value: TEXT },
    verbose: { since: BASE, value: INT },
};

export type SettingValue = string | number | boolean;
export type Settings = Record<string, SettingValue>;

const configKey = (name: string) => `the config key ${name}: set that instead`;
const PROGRAM_AUTH = "the program: scram-sha-256 against the userlist from the auth Secret (RDS hides pg_shadow)";
const PROGRAM_FILES = "the program: the pod's mounted files, read-only root filesystem";
const NO_CLIENT_TLS = "nowhere: PgBouncer takes no client TLS here (pod network or loopback; see Known limits)";

/**
 * Keys the program owns, each with where it is set instead. A stack's pgbouncerSettings may not set them: they
 * would weaken auth or TLS, open more server connections than the budget counts, or break the pod.
 */
export const MANAGED_SETTINGS: Readonly<Record<string, string>> = {
    admin_users: "the program: no admin users (the exporter's stats user only reads)",
    stats_users: "the program: the exporter's stats user, with monitoringExporter",
    auth_type: PROGRAM_AUTH,
    auth_file: PROGRAM_AUTH,
    auth_user: PROGRAM_AUTH,
    auth_query: PROGRAM_AUTH,
    auth_dbname: PROGRAM_AUTH,
    auth_hba_file: PROGRAM_AUTH,
    auth_ident_file: PROGRAM_AUTH,
    auth_ldap_options: PROGRAM_AUTH,
    default_pool_size: configKey("pgbouncerDefaultPoolSize"),
    reserve_pool_size: configKey("pgbouncerReservePoolSize"),
    reserve_pool_timeout: configKey("pgbouncerReservePoolTimeout"),
    max_db_connections: configKey("pgbouncerMaxDbConnections"),
    max_client_conn: configKey("pgbouncerMaxClientConn"),
    pool_mode: configKey("pgbouncerPoolMode"),
    server_tls_sslmode: configKey("pgbouncerServerTlsSslmode"),
    server_tls_ca_file: configKey("pgbouncerServerTlsCaFile"),
    server_tls_cert_file: PROGRAM_FILES,
    server_tls_key_file: PROGRAM_FILES,
    server_tls_protocols: "the program: PgBouncer's default (TLS 1.2 and 1.3)",
    server_tls_ciphers: "the program: PgBouncer's default (secure) ciphers",
    client_tls_sslmode: NO_CLIENT_TLS,
    client_tls_ca_file: NO_CLIENT_TLS,
    client_tls_cert_file: NO_CLIENT_TLS,
    client_tls_key_file: NO_CLIENT_TLS,
    listen_addr: "the program: * in pgbouncer-cluster, 127.0.0.1 in pgbouncer-sidecar",
    listen_port: "the program: 5432 in pgbouncer-cluster, sidecarPort in pgbouncer-sidecar",
    logfile: PROGRAM_FILES,
    pidfile: PROGRAM_FILES,
    resolv_conf: PROGRAM_FILES,
    unix_socket_dir: PROGRAM_FILES,
    user: "the program: the image's non-root user",
};

/** Whether the program owns a key (see MANAGED_SETTINGS). */
export function isManagedSetting(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(MANAGED_SETTINGS, key);
}

// PgBouncer's ini parser has no escape for line breaks: a value holding one would start a new setting.
const LINE_BREAK = /[\r\n\u0085\u2028\u2029\0]/;

function assertSingleLine(what: string, value: string): void {
    if (LINE_BREAK.test(value)) {
        throw new Error(`${what} contains a line break, which would inject pgbouncer.ini settings`);
    }
}

function settingValueText(version: PgBouncerVersion, key: string, spec: SettingSpec, value: SettingValue): string {
    const kind = spec.value;
    const text = typeof value === "boolean" ? (value ? "1" : "0") : String(value);
    assertSingleLine(`pgbouncer.ini setting ${key}`, text);
    switch (kind.kind) {
        case "int": {
            const n = Number(text);
            const min = kind.min ?? 0;
            if (!/^-?\d+$/.test(text) || n < min || (kind.max !== undefined && n > kind.max)) {
                const range = kind.max === undefined ? `>= ${min}` : `${min}..${kind.max}`;
                throw new Error(`pgbouncer.ini setting ${key}: "${text}" is not allowed; expected an integer ${range}`);
            }
            return text;
        }
        case "flag":
            if (text !== "0" && text !== "1") {
                throw new Error(`pgbouncer.ini setting ${key}: "${text}" is not allowed; expected 0/1 or true/false`);
            }
            return text;
        case "enum": {
            const allowed = kind.values.filter((v) => versionAtLeast(version, kind.valuesSince?.[v] ?? BASE));
            if (!allowed.includes(text)) {
                throw new Error(`pgbouncer.ini setting ${key}: "${text}" is not allowed on PgBouncer ${formatVersion(version)}; expected one of ${allowed.join(", ")}`);
            }
            return text;
        }
        case "text":
            return text;
    }
}

/** Checks one [pgbouncer] key and value against what the target version accepts; returns the ini text. */
export function checkSetting(version: PgBouncerVersion, key: string, value: SettingValue): string {
    const spec = PGBOUNCER_SETTINGS[key];
    if (!spec) {
        throw new Error(`pgbouncer.ini setting "${key}" is unknown to PgBouncer (no such key in any supported version)`);
    }
    if (!versionAtLeast(version, spec.since)) {
        throw new Error(
            `pgbouncer.ini setting "${key}" needs PgBouncer ${spec.since} or newer; the target is ${formatVersion(version)}`,
        );
    }
    return settingValueText(version, key, spec, value);
}

export interface DatabaseEntry {
    /** The name clients connect to. */
    name: string;
    host: string;
    port: number;
    /** The database on the server. */
    dbname: string;
    /**
     * A session pool of this size for this entry alone (its client needs session features, config/client.ts):
     * pool_size and max_db_connections both, so that no client connection waits behind an idle one.
     */
    sessionPoolSize?: number;
}

const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const HOST = /^[A-Za-z0-9_.:-]+$/;

function databaseLine(entry: DatabaseEntry): string {
    for (const [what, value] of [["name", entry.name], ["dbname", entry.dbname]] as const) {
        if (!DATABASE_NAME.test(value)) {
            throw new Error(`[databases] ${what} "${value}" is not allowed; expected letters, digits, _ . - (not starting with a digit)`);
        }
    }
    if (!HOST.test(entry.host)) {
        throw new Error(`[databases] host "${entry.host}" of ${entry.name} is not a hostname or IP address`);
    }
    if (!Number.isInteger(entry.port) || entry.port < 1 || entry.port > 65535) {
        throw new Error(`[databases] port ${entry.port} of ${entry.name} is not a TCP port`);
    }
    const line = `${entry.name} = host=${entry.host} port=${entry.port} dbname=${entry.dbname}`;
    if (entry.sessionPoolSize === undefined) {
        return line;
    }
    if (!Number.isInteger(entry.sessionPoolSize) || entry.sessionPoolSize < 1) {
        throw new Error(`[databases] session pool size ${entry.sessionPoolSize} of ${entry.name} is not an integer >= 1`);
    }
    return `${line} pool_mode=session pool_size=${entry.sessionPoolSize} max_db_connections=${entry.sessionPoolSize}`;
}

export interface IniInput {
    version: PgBouncerVersion;
    databases: DatabaseEntry[];
    settings: Settings;
}

/**
 * Renders pgbouncer.ini. Keys are sorted so that an unchanged config is byte-identical (no needless
 * rollout), and every key and value is checked for the target version.
 */
export function renderPgBouncerIni(input: IniInput): string {
    if (!versionAtLeast(input.version, OLDEST_SUPPORTED_VERSION)) {
        throw new Error(`PgBouncer ${formatVersion(input.version)} is not supported; use ${OLDEST_SUPPORTED_VERSION} or newer`);
    }
    if (input.databases.length === 0) {
        throw new Error("pgbouncer.ini needs at least one [databases] entry");
    }
    const names = input.databases.map((d) => d.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate) {
        throw new Error(`[databases] entry "${duplicate}" is declared twice`);
    }
    const databases = [...input.databases].sort((a, b) => a.name.localeCompare(b.name)).map(databaseLine);
    const settings = Object.keys(input.settings)
        .sort()
        .map((key) => `${key} = ${checkSetting(input.version, key, input.settings[key])}`);
    return ["[databases]", ...databases, "", "[pgbouncer]", ...settings, ""].join("\n");
}

export interface UserlistEntry {
    name: string;
    password: string;
}

function quoteUserlistField(what: string, value: string): string {
    assertSingleLine(`userlist.txt ${what}`, value);
    return `"${value.replace(/"/g, '""')}"`;
}

/**
 * The longest plaintext userlist password that PgBouncer 1.18 logs a SCRAM client in with, measured on the real
 * binary (tests/integration/renderer.test.ts): 1024 bytes log in, 1025 fail authentication, and from 2048 it
 * logs "password too long in auth file".
 */
export const MAX_USERLIST_PASSWORD_BYTES = 1024;

/** What makes a password unusable in userlist.txt, or undefined when it is fine. */
export function userlistPasswordProblem(password: string): string | undefined {
    if (password.length === 0) {
        return "expected a non-empty password";
    }
    if (LINE_BREAK.test(password)) {
        return "expected no line break or NUL: userlist.txt has one user per line";
    }
    const bytes = Buffer.byteLength(password, "utf8");
    if (bytes > MAX_USERLIST_PASSWORD_BYTES) {
        return `expected at most ${MAX_USERLIST_PASSWORD_BYTES} bytes, the longest PgBouncer logs in with (it has ${bytes})`;
    }
    return undefined;
}

/** Renders userlist.txt: one `"user" "password"` line per user, with `"` doubled inside a field. */
export function renderUserlist(users: UserlistEntry[]): string {
    return users.map((u) => `${quoteUserlistField("user name", u.name)} ${quoteUserlistField(`password of ${u.name}`, u.password)}\n`).join("");
}

export const POOL_MODES = ["transaction", "session", "statement"] as const;
export type PoolMode = (typeof POOL_MODES)[number];
export type SslMode = (typeof SSLMODES)[number];
export const SERVER_SSLMODES: readonly string[] = SSLMODES;

export interface PoolTuning {
    poolMode: PoolMode;
    defaultPoolSize: number;
    reservePoolSize: number;
    reservePoolTimeout: number;
    /** Hard cap of server connections per database per PgBouncer process. */
    maxDbConnections: number;
    maxClientConn: number;
    serverTlsSslmode: SslMode;
    /** User overrides for [pgbouncer], checked like every other key. */
    extra: Settings;
}

export interface ListenAddress {
    addr: string;
    port: number;
}

export interface FilePaths {
    authFile: string;
    /** Present when the server certificate is verified. */
    serverCaFile?: string;
}

export function verifiesServerCertificate(mode: SslMode): boolean {
    return mode === "verify-ca" || mode === "verify-full";
}

/** Security fixes by release, from PgBouncer's NEWS: a version older than a release lacks that release's fixes. */
export const SECURITY_FIXES: ReadonlyArray<{ release: string; cves: string[] }> = [
    { release: "1.24.1", cves: ["CVE-2025-2291"] },
    { release: "1.25.1", cves: ["CVE-2025-12819"] },
    { release: "1.25.2", cves: ["CVE-2026-6664", "CVE-2026-6665", "CVE-2026-6666", "CVE-2026-6667"] },
    { release: "1.26.0", cves: ["CVE-2026-6668", "CVE-2026-6669", "CVE-2026-19888"] },
    { release: "1.26.1", cves: ["CVE-2026-107348", "CVE-2026-107349", "CVE-2026-107350"] },
];

/** The CVEs fixed in releases after `version`: what running it leaves open. */
export function unfixedCves(version: PgBouncerVersion): string[] {
    return SECURITY_FIXES.filter((fix) => !versionAtLeast(version, fix.release)).flatMap((fix) => fix.cves);
}

// The fix for CVE-2026-107349 (a CPU spin on an empty `options` name) came in 1.26.1; before it, listing
// `options` among the ignored parameters is the documented mitigation.
function ignoredStartupParameters(version: PgBouncerVersion): string {
    const vulnerable = versionAtLeast(version, "1.20.0") && !versionAtLeast(version, "1.26.1");
    return vulnerable ? "extra_float_digits,options" : "extra_float_digits";
}

/** The [pgbouncer] settings that the cluster and sidecar options share, for one PgBouncer version. */
export function pgbouncerSettings(version: PgBouncerVersion, tuning: PoolTuning, listen: ListenAddress, paths: FilePaths): Settings {
    for (const key of Object.keys(tuning.extra)) {
        if (isManagedSetting(key)) {
            throw new Error(`pgbouncer.ini setting "${key}" is owned by ${MANAGED_SETTINGS[key]}; it cannot be overridden`);
        }
    }
    const settings: Settings = {
        auth_file: paths.authFile,
        auth_type: "scram-sha-256",
        default_pool_size: tuning.defaultPoolSize,
        // RDS failover moves the endpoint's DNS record; PgBouncer must not cache the old address for long.
        dns_max_ttl: 5,
        dns_nxdomain_ttl: 5,
        ignore_startup_parameters: ignoredStartupParameters(version),
        listen_addr: listen.addr,
        listen_port: listen.port,
        max_client_conn: tuning.maxClientConn,
        max_db_connections: tuning.maxDbConnections,
        pool_mode: tuning.poolMode,
        reserve_pool_size: tuning.reservePoolSize,
        reserve_pool_timeout: tuning.reservePoolTimeout,
        server_connect_timeout: 5,
        server_idle_timeout: 300,
        server_lifetime: 1800,
        // After a failed server login (a database restarting, or down), PgBouncer answers every new client with that
        // cached error for this long before it tries the server again: each second of it is a second of failed
        // requests after the database is back (tests/integration/operations.test.ts), so one second, not the 15 s
        // default; a retry a second costs a down server one connection attempt per pool.
        server_login_retry: 1,
        server_tls_sslmode: tuning.serverTlsSslmode,
        tcp_keepalive: 1,
        tcp_keepcnt: 3,
        tcp_keepidle: 30,
        tcp_keepintvl: 10,
        tcp_user_timeout: 30000,
        // No unix socket: the root filesystem is read-only and nothing in the pod needs one.
        unix_socket_dir: "",
    };
    if (versionAtLeast(version, "1.21.0")) {
        // pgx prepares named statements by default; PgBouncer tracks them per server connection from 1.21.
        settings.max_prepared_statements = 200;
    }
    if (verifiesServerCertificate(tuning.serverTlsSslmode)) {
        if (!paths.serverCaFile) {
            throw new Error(`server_tls_sslmode ${tuning.serverTlsSslmode} needs a CA file (server_tls_ca_file)`);
        }
        settings.server_tls_ca_file = paths.serverCaFile;
    }
    return { ...settings, ...tuning.extra };
}
