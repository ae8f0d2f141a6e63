// How a service's chart takes its database connection (services[].connection), and the Helm release it runs as
// (services[].release): read and checked here, before anything is declared.
import { Reader, isRecord } from "./reader";
import { refuseUnknownKeys } from "./checks";

/**
 * `env`: the chart has an env map and the hooks of charts/velure-service (POSTGRES_HOST and the rest, the password
 * from a Secret of ours, the pooler's containers through extraContainers and the like).
 * `urlSecret`: the chart reads one full connection URL from a Secret of a fixed name (velure's own charts:
 * POSTGRES_URL from velure-auth-postgres / order-database, key url), which someone else writes; the program writes
 * its URLs into a Secret of its own (poolerUrlSecretName), and a Helm post-renderer points the chart's container at it
 * and puts the pooler's containers and volumes into the chart's Deployment.
 */
export type ConnectionContract =
    | { contract: "env" }
    | {
          contract: "urlSecret";
          /** The Secret the chart reads, in the service's namespace (its owner's: the program reads its name only). */
          secretName: string;
          /** Its key with the URL of the service's database. */
          key: string;
          /** Its key with the read replica's URL; set when the service's server has a replica. */
          readKey?: string;
      };

const CONNECTION_CONTRACTS = ["env", "urlSecret"] as const;
const DEFAULT_URL_KEY = "url";
const DEFAULT_READ_URL_KEY = "read-url";

/** A Secret's name: a DNS subdomain. */
const SECRET_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A Secret's key. */
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
/** Helm's release name: a DNS label of at most 53 characters. */
const RELEASE_NAME = /^(?=.{1,53}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function readKey(r: Reader, at: string, raw: unknown, fallback: string): string {
    if (raw === undefined) {
        return fallback;
    }
    if (typeof raw !== "string" || !SECRET_KEY.test(raw)) {
        r.problem(at, raw, "expected a Secret key ([-._a-zA-Z0-9], at most 253 characters)");
        return fallback;
    }
    return raw;
}

/** `hasReplica`: the service's server has a read replica, whose URL goes under readKey. */
export function readConnectionContract(r: Reader, at: string, raw: unknown, hasReplica: boolean): ConnectionContract {
    if (raw === undefined) {
        return { contract: "env" };
    }
    const allowed = `expected {contract: "env"} or {contract: "urlSecret", secretName, key?, readKey?}`;
    if (!isRecord(raw) || !CONNECTION_CONTRACTS.includes(raw.contract as never)) {
        r.problem(isRecord(raw) ? `${at}.contract` : at, isRecord(raw) ? raw.contract : raw, allowed);
        return { contract: "env" };
    }
    if (raw.contract === "env") {
        refuseUnknownKeys(r, at, raw, ["contract"]);
        return { contract: "env" };
    }
    refuseUnknownKeys(r, at, raw, ["contract", "secretName", "key", "readKey"]);
    const secretName = typeof raw.secretName === "string" ? raw.secretName : "";
    if (!SECRET_NAME.test(secretName)) {
        r.problem(`${at}.secretName`, raw.secretName, "expected the name of the Secret the chart reads (a DNS subdomain: a-z, 0-9, -, .)");
    }
    const key = readKey(r, `${at}.key`, raw.key, DEFAULT_URL_KEY);
    if (raw.readKey !== undefined && !hasReplica) {
        r.problem(`${at}.readKey`, raw.readKey, "expected no readKey: the service's server has no read replica (replicaHost)");
    }
    const read = hasReplica ? { readKey: readKey(r, `${at}.readKey`, raw.readKey, DEFAULT_READ_URL_KEY) } : {};
    if (read.readKey === key) {
        r.problem(`${at}.readKey`, read.readKey, `expected another key than key (${key})`);
    }
    return { contract: "urlSecret", secretName, key, ...read };
}

/** The Helm release: velure-<name> unless services[].release names the one that already runs (velure's: velure-auth). */
export function readReleaseName(r: Reader, at: string, raw: unknown, serviceName: string): string {
    if (raw === undefined) {
        return `velure-${serviceName}`;
    }
    if (typeof raw !== "string" || !RELEASE_NAME.test(raw)) {
        r.problem(at, raw, "expected a Helm release name (a DNS label: a-z, 0-9, -; at most 53 characters)");
        return `velure-${serviceName}`;
    }
    return raw;
}

/**
 * The key of the program's URL Secret that the pods of a mode read: the post-renderer points the chart's POSTGRES_URL
 * at it. Each mode's pods have their own shape (a sidecar on 127.0.0.1, a mounted CA), so a pod of the deployed mode
 * that restarts while a switch rolls the release out (or after Helm rolled a failed upgrade back) keeps the URL it
 * works with.
 */
export function modeUrlKey(key: string, mode: string): string {
    return `${key}.${mode}`;
}

/**
 * The program's own Secret of a urlSecret service's URLs, beside the one the chart names: that one is the chart's
 * owner's (velure's External Secrets Operator writes it, with the URL straight to RDS), so the program never writes
 * it, and the post-renderer points the app container at this one instead.
 */
export function poolerUrlSecretName(releaseName: string): string {
    return `${releaseName}-pooler-url`;
}

/** The Secret of a service's password (key POSTGRES_PASSWORD), in its namespace. */
export function credentialsSecretName(releaseName: string): string {
    return `${releaseName}-db-credentials`;
}

/** The Secrets the program makes in a service's namespace for it: its password, its URLs, its sidecar's userlist (the PgBouncer modes). */
function programSecretNames(releaseName: string): string[] {
    return [credentialsSecretName(releaseName), poolerUrlSecretName(releaseName), `${releaseName}-pgbouncer-auth`, `${releaseName}-pgbouncer-auth-template`];
}

interface SecretUser {
    at: string;
    namespace: string;
    releaseName: string;
    connection: ConnectionContract;
}

/**
 * One writer per Secret: the Secret a chart reads is its owner's, never the program's, so it must not be one of the
 * program's own (which the program would then write under the chart).
 */
export function refuseSharedSecrets(r: Reader, services: SecretUser[]): void {
    const owners = new Map<string, string>();
    for (const s of services) {
        for (const name of programSecretNames(s.releaseName)) {
            owners.set(`${s.namespace}/${name}`, `the program's own Secret for ${s.at}`);
        }
    }
    for (const s of services) {
        if (s.connection.contract !== "urlSecret") {
            continue;
        }
        const id = `${s.namespace}/${s.connection.secretName}`;
        const owner = owners.get(id);
        if (owner) {
            r.problem(`${s.at}.connection.secretName`, s.connection.secretName, `expected the Secret the chart reads, which the program never writes: ${id} is ${owner}`);
        }
    }
}
