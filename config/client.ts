// How a service's own database client talks to the pooler (services[].client): its driver, its pool's size and
// the session features it relies on. Read and checked here, before anything is declared, against the PgBouncer the
// config targets: tests/integration/drivers.test.ts runs velure's drivers through both PgBouncer versions.
import { PgBouncerVersion, PoolMode, Settings, formatVersion, versionAtLeast } from "../components/pgbouncerIni";
import { refuseUnknownKeys } from "./checks";
import { Reader, isRecord } from "./reader";

/**
 * `pgx`: jackc/pgx v5 (alone, or under GORM's gorm.io/driver/postgres): named prepared statements, cached per
 * connection (stmtcache_…). `lib/pq`: unnamed statements, Parse in one round trip and Bind/Execute in the next.
 * `other`: nothing assumed.
 */
export const DRIVERS = ["pgx", "lib/pq", "other"] as const;
export type Driver = (typeof DRIVERS)[number];

/**
 * What a transaction pool cannot give a client, because each transaction may run on another server connection:
 * `advisory-locks` (session-level pg_advisory_lock: golang-migrate's postgres driver, flyway, liquibase),
 * `listen-notify` (LISTEN: lib/pq's pq.Listener, pgx's WaitForNotification), `session-settings` (a SET outside a
 * transaction that later statements must see).
 */
export const SESSION_FEATURES = ["advisory-locks", "listen-notify", "session-settings"] as const;
export type SessionFeature = (typeof SESSION_FEATURES)[number];

export interface ServiceClient {
    driver: Driver;
    /** database/sql's SetMaxOpenConns in one pod: the most client connections its pool opens. */
    maxOpenConnections?: number;
    /**
     * The connections a pod holds beside that pool for LISTEN (lib/pq's pq.Listener, pgx's WaitForNotification on a
     * connection of its own): publish-order's outbox listener holds one per pod for good.
     */
    listenConnections: number;
    /**
     * database/sql's SetConnMaxLifetime in seconds (velure's services: 5 min): a pool closes each connection by itself
     * within this long, between two uses, which is how a stopping central PgBouncer lets its clients leave without
     * a failed request. Absent: connections live as long as the pool (a stopping PgBouncer then closes them).
     */
    maxLifetimeSeconds?: number;
    session: SessionFeature[];
}

const DEFAULT_CLIENT: ServiceClient = { driver: "other", listenConnections: 0, session: [] };

/** A lifetime beyond this would hold a stopping central PgBouncer's pod (and each rollout step) for over an hour. */
export const MAX_LIFETIME_SECONDS = 3600;

const ALLOWED = `expected {driver: ${DRIVERS.join(" | ")}, maxOpenConnections?: integer >= 1, listenConnections?: integer >= 0, maxLifetimeSeconds?: integer 1–${MAX_LIFETIME_SECONDS}, session?: [${SESSION_FEATURES.join(", ")}]}`;

/** A client that LISTENs holds one connection for it beside its pool unless it says otherwise (velure's outbox listener). */
const DEFAULT_LISTEN_CONNECTIONS = 1;

/** listenConnections: what the config says, or one for a client that LISTENs; a LISTEN needs the session feature. */
function readListenConnections(r: Reader, at: string, raw: unknown, features: SessionFeature[]): number {
    const listens = features.includes("listen-notify");
    if (raw === undefined) {
        return listens ? DEFAULT_LISTEN_CONNECTIONS : 0;
    }
    if (!Number.isInteger(raw) || (raw as number) < 0) {
        r.problem(`${at}.listenConnections`, raw, "expected an integer >= 0 (the connections each pod holds for LISTEN beside its database/sql pool)");
        return 0;
    }
    if ((raw as number) > 0 && !listens) {
        r.problem(
            `${at}.listenConnections`,
            raw,
            "expected 0 without the session feature listen-notify: a LISTEN through a transaction pool receives nothing; add listen-notify to session",
        );
    }
    return raw as number;
}

export function readServiceClient(r: Reader, at: string, raw: unknown): ServiceClient {
    if (raw === undefined) {
        return DEFAULT_CLIENT;
    }
    if (!isRecord(raw)) {
        r.problem(at, raw, ALLOWED);
        return DEFAULT_CLIENT;
    }
    refuseUnknownKeys(r, at, raw, ["driver", "maxOpenConnections", "listenConnections", "maxLifetimeSeconds", "session"]);
    const driver = raw.driver ?? "other";
    if (!DRIVERS.includes(driver as Driver)) {
        r.problem(`${at}.driver`, driver, `expected one of ${DRIVERS.join(", ")}`);
    }
    const maxOpen = raw.maxOpenConnections;
    if (maxOpen !== undefined && (!Number.isInteger(maxOpen) || (maxOpen as number) < 1)) {
        r.problem(`${at}.maxOpenConnections`, maxOpen, "expected an integer >= 1 (the pod's database/sql SetMaxOpenConns)");
    }
    const session = raw.session ?? [];
    if (!Array.isArray(session) || session.some((f) => !SESSION_FEATURES.includes(f))) {
        r.problem(`${at}.session`, session, `expected a list of ${SESSION_FEATURES.join(", ")}`);
    }
    const features = Array.isArray(session) ? (session.filter((f) => SESSION_FEATURES.includes(f)) as SessionFeature[]) : [];
    if (features.length > 0 && maxOpen === undefined) {
        r.problem(
            `${at}.maxOpenConnections`,
            maxOpen,
            `expected an integer >= 1: a service with session features (${features.join(", ")}) gets a session pool, which holds one server connection per client connection, so its size is the pods' client connections`,
        );
    }
    const listenConnections = readListenConnections(r, at, raw.listenConnections, features);
    const lifetime = raw.maxLifetimeSeconds;
    if (lifetime !== undefined && (!Number.isInteger(lifetime) || (lifetime as number) < 1 || (lifetime as number) > MAX_LIFETIME_SECONDS)) {
        r.problem(
            `${at}.maxLifetimeSeconds`,
            lifetime,
            `expected an integer from 1 to ${MAX_LIFETIME_SECONDS} (the pod's database/sql SetConnMaxLifetime, in seconds): a stopping central PgBouncer waits that long for its clients to leave`,
        );
    }
    return { driver: driver as Driver, maxOpenConnections: maxOpen as number | undefined, listenConnections, maxLifetimeSeconds: lifetime as number | undefined, session: features };
}

/**
 * The client connections one pod opens to its database: its database/sql pool and its LISTEN connections. A session
 * pool holds one server connection for each of them.
 */
export function podClientConnections(client: ServiceClient): number {
    return (client.maxOpenConnections ?? 0) + client.listenConnections;
}

/** How podClientConnections counted, for a budget line's formula. */
export function podClientWords(client: ServiceClient): string {
    return client.listenConnections > 0 ? `(maxOpenConnections ${client.maxOpenConnections} + listenConnections ${client.listenConnections}) =` : "maxOpenConnections";
}

/** Whether the service's client needs a session feature, so that its PgBouncer entries get a session pool of their own. */
export function needsSessionPool(client: ServiceClient): boolean {
    return client.session.length > 0;
}

/** The pool mode of a service's PgBouncer entries: a session pool when its client needs a session feature. */
function servicePoolMode(client: ServiceClient, poolMode: PoolMode): PoolMode {
    return needsSessionPool(client) ? "session" : poolMode;
}

/** Whether the PgBouncer keeps named prepared statements across transactions (1.21+, max_prepared_statements > 0). */
export function servesNamedStatements(version: PgBouncerVersion, extra: Settings): boolean {
    return versionAtLeast(version, "1.21.0") && (extra.max_prepared_statements === undefined || Number(extra.max_prepared_statements) > 0);
}

/**
 * pgx's named statements through a transaction pool that does not track them fail ("prepared statement
 * \"stmtcache_…\" already exists" / "does not exist": 3 012 of 4 000 operations on PgBouncer 1.18), and GORM's
 * AutoMigrate dies on a restart: refused, with the ways out.
 */
export function checkNamedStatements(r: Reader, at: string, client: ServiceClient, poolMode: PoolMode, version: PgBouncerVersion, extra: Settings): void {
    if (client.driver !== "pgx" || servicePoolMode(client, poolMode) === "session" || servesNamedStatements(version, extra)) {
        return;
    }
    const why = versionAtLeast(version, "1.21.0") ? "max_prepared_statements is 0 (pgbouncerSettings)" : `PgBouncer ${formatVersion(version)} predates 1.21`;
    r.problem(
        `${at}.driver`,
        client.driver,
        `pgx prepares named statements, which a ${poolMode} pool cannot serve when ${why}: use a PgBouncer image of 1.21 or newer ` +
            "(pgbouncerImage) without max_prepared_statements = 0, or have the service's driver use the simple protocol and declare driver other",
    );
}

/**
 * The parameters a service's URL carries for its driver. lib/pq sends Parse in one round trip and Bind/Execute in the
 * next, which a transaction pool may put on two server connections ("unnamed prepared statement does not exist",
 * "bind message supplies 2 parameters, but prepared statement \"\" requires 1"); binary_parameters=yes makes it
 * send all of them in one, so through a PgBouncer transaction pool the program writes it into the URL.
 */
export function urlDriverParams(client: ServiceClient, mode: string, poolMode: PoolMode): Record<string, string> {
    const throughTransactionPool = mode.startsWith("pgbouncer-") && servicePoolMode(client, poolMode) !== "session";
    return client.driver === "lib/pq" && throughTransactionPool ? { binary_parameters: "yes" } : {};
}
