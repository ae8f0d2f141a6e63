// The database servers: either the one server of the databaseHost keys (a stack with one server stays short), or
// the list databaseServers, each with its own host, limits, user and password (databasePasswords.<name>).
import * as pulumi from "@pulumi/pulumi";
import { userlistPasswordProblem } from "../components/pgbouncerIni";
import { Credentials, SecretStoreRef } from "../components/specs";
import { IPV4_ADDRESS, IPV4_CIDR, SECRET_ARN, findDuplicate, refuseSecretInOtherRegion, refuseUnknownKeys } from "./checks";
import { Reader, defaultOf, isRecord, readStringList } from "./reader";
import { ConfigKey, PROJECT } from "./schema";

export interface DatabaseSpec {
    /** The server's name in databaseServers; "" for the one server of the databaseHost keys. */
    name: string;
    host: string;
    port: number;
    user: string;
    /** Where its password is: a Pulumi secret, or a Secrets Manager secret (secretsManagerSecret). */
    credentials: Credentials;
    replicaHost?: string;
    /** Where the database may be: the NetworkPolicy's egress targets (empty: any address). */
    cidrs: string[];
    maxConnections: number;
    /** The read replica's max_connections (the primary's unless configured). */
    replicaMaxConnections: number;
    reservedConnections: number;
    /** The config keys that set its limits, which the budget's messages name. */
    keys: { maxConnections: string; reservedConnections: string; replicaMaxConnections: string };
    /** Where this server's entry is (databaseServers[i]), or the prefix of its keys (database) for the one server. */
    at: string;
}

export const SQL_IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
/** A server's name goes into resource and proxy names (velure-pgbouncer-<name>, <rdsProxyName>-<name>). */
const SERVER_NAME = /^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$/;

const SERVER_FIELDS = [
    "name",
    "host",
    "port",
    "user",
    "maxConnections",
    "reservedConnections",
    "replicaHost",
    "replicaMaxConnections",
    "cidrs",
    "secretsManagerSecret",
    "rdsInstanceIdentifier",
    "rdsClusterIdentifier",
    "rdsDatabaseSecurityGroupId",
    "rdsSecretArn",
] as const;

/** The one-server keys, and the field of a databaseServers entry that each becomes. */
const ONE_SERVER_KEYS: Partial<Record<ConfigKey, (typeof SERVER_FIELDS)[number]>> = {
    databaseHost: "host",
    databasePort: "port",
    databaseUser: "user",
    databaseMaxConnections: "maxConnections",
    databaseReservedConnections: "reservedConnections",
    databaseReplicaHost: "replicaHost",
    databaseReplicaMaxConnections: "replicaMaxConnections",
    databaseCidrs: "cidrs",
    rdsInstanceIdentifier: "rdsInstanceIdentifier",
    rdsClusterIdentifier: "rdsClusterIdentifier",
    rdsDatabaseSecurityGroupId: "rdsDatabaseSecurityGroupId",
    rdsSecretArn: "rdsSecretArn",
};

/** The raw values of one server, from its entry or from the one-server keys. */
type RawServer = Partial<Record<(typeof SERVER_FIELDS)[number], unknown>>;

function checkHost(r: Reader, key: string, host: string, allowed: string): void {
    if (host && !HOSTNAME.test(host)) {
        r.problem(key, host, allowed);
    }
}

function checkedInteger(r: Reader, key: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
        r.problem(key, value, max === Number.MAX_SAFE_INTEGER ? `expected an integer >= ${min}` : `expected an integer from ${min} to ${max}`);
        return min;
    }
    return value as number;
}

/**
 * databaseCidrs, plus the hosts given as IPv4 addresses (their own /32). Empty when a host is a DNS name and no
 * CIDRs are given: its addresses are not known here, so the NetworkPolicy cannot name them.
 */
function withLiteralHosts(cidrs: string[], hosts: (string | undefined)[]): string[] {
    const given = hosts.filter((h): h is string => !!h);
    const literal = given.filter((h) => IPV4_ADDRESS.test(h)).map((h) => `${h}/32`);
    const named = given.length > literal.length;
    return cidrs.length === 0 && named ? [] : [...new Set([...cidrs, ...literal])];
}

function checkPassword(r: Reader, key: string, plain: string | undefined, setIt: string): void {
    if (!plain) {
        r.problems.push(`${PROJECT}:${key} is required: set it with \`${setIt}\``);
        return;
    }
    // The plaintext is read only to check it; it is never shown.
    const problem = userlistPasswordProblem(plain);
    if (problem) {
        r.problems.push(`${PROJECT}:${key}: the value (not shown: a secret) is not allowed; ${problem}`);
    }
}

/**
 * One server's spec from its raw values: `name` and `at` ("" and "" for the one server of the databaseHost keys),
 * `key(field)` the config key of a field in messages.
 */
function readServer(r: Reader, name: string, at: string, raw: RawServer, key: (field: keyof RawServer) => string, credentials: Credentials): DatabaseSpec {
    const host = typeof raw.host === "string" ? raw.host : "";
    if (!host) {
        r.problem(key("host"), raw.host, "expected the RDS writer endpoint's DNS hostname (required)");
    }
    checkHost(r, key("host"), host, "expected a DNS hostname such as mydb.abc123.us-east-1.rds.amazonaws.com");
    const replicaHost = typeof raw.replicaHost === "string" ? raw.replicaHost : "";
    checkHost(r, key("replicaHost"), replicaHost, "expected a DNS hostname, or empty for no replica");
    const user = raw.user;
    if (typeof user !== "string" || !SQL_IDENTIFIER.test(user)) {
        r.problem(key("user"), user, "expected a lower-case PostgreSQL role name (a-z, 0-9, _)");
    }
    const maxConnections = checkedInteger(r, key("maxConnections"), raw.maxConnections, 1);
    const reservedConnections = checkedInteger(r, key("reservedConnections"), raw.reservedConnections, 0);
    if (r.valid(key("maxConnections"), key("reservedConnections")) && reservedConnections >= maxConnections) {
        r.problem(key("reservedConnections"), reservedConnections, `expected less than ${key("maxConnections")} (${maxConnections})`);
    }
    const replicaMaxConnections = checkedInteger(r, key("replicaMaxConnections"), raw.replicaMaxConnections ?? 0, 0) || maxConnections;
    if (replicaHost && r.valid(key("replicaMaxConnections"), key("reservedConnections")) && reservedConnections >= replicaMaxConnections) {
        r.problem(key("replicaMaxConnections"), replicaMaxConnections, `expected more than ${key("reservedConnections")} (${reservedConnections})`);
    }
    const cidrs = Array.isArray(raw.cidrs) ? raw.cidrs : [];
    for (const cidr of cidrs.filter((c) => typeof c !== "string" || !IPV4_CIDR.test(c))) {
        r.problem(key("cidrs"), cidr, "expected IPv4 CIDR blocks such as 10.0.0.0/16");
    }
    return {
        name,
        host,
        port: checkedInteger(r, key("port"), raw.port, 1, 65535),
        user: typeof user === "string" ? user : "",
        credentials,
        replicaHost: replicaHost || undefined,
        maxConnections,
        reservedConnections,
        replicaMaxConnections,
        cidrs: withLiteralHosts(cidrs as string[], [host, replicaHost]),
        keys: { maxConnections: key("maxConnections"), reservedConnections: key("reservedConnections"), replicaMaxConnections: key("replicaMaxConnections") },
        at,
    };
}

/** Reads a one-server key as its field's value (numbers and lists parsed), for readServer and for the refusal's example. */
function oneServerValue(r: Reader, key: ConfigKey): unknown {
    const field = ONE_SERVER_KEYS[key];
    if (field === "cidrs") {
        return readStringList(r, key, IPV4_CIDR, "expected IPv4 CIDR blocks such as 10.0.0.0/16");
    }
    const text = r.raw(key) ?? defaultOf(key);
    return typeof defaultOf(key) === "number" && /^-?\d+$/.test(String(text).trim()) ? Number(text) : text;
}

/** The one server of the databaseHost keys and databasePassword. */
function readOneServer(r: Reader, config: pulumi.Config): DatabaseSpec {
    const raw: RawServer = Object.fromEntries(
        Object.entries(ONE_SERVER_KEYS).map(([key, field]) => [field as string, oneServerValue(r, key as ConfigKey)]),
    );
    const keyOf = (field: keyof RawServer) => (Object.entries(ONE_SERVER_KEYS).find(([, f]) => f === field)?.[0] ?? field) as string;
    const password = config.getSecret("databasePassword");
    const plain = config.get("databasePassword");
    const setIt = `pulumi config set --secret ${PROJECT}:databasePassword <password>`;
    checkPassword(r, "databasePassword", plain, setIt);
    // Pulumi.yaml cannot mark the key secret (the CLI would then require it on every stack, one with databaseServers
    // too), so the program refuses what the CLI refused: a password in the stack file in plain text.
    if (plain && !r.isSecret("databasePassword")) {
        r.problems.push(`${PROJECT}:databasePassword: set in plain text (its value is not shown); set it with --secret: ${setIt}`);
    }
    return readServer(r, "", "", raw, keyOf, { source: "pulumi", password: pulumi.secret(password ?? pulumi.output("")) });
}

/** The one-server keys that a stack with databaseServers still sets (to something other than their default). */
function oneServerKeysSet(r: Reader): ConfigKey[] {
    return (Object.keys(ONE_SERVER_KEYS) as ConfigKey[]).filter((key) => {
        const value = r.raw(key);
        return value !== undefined && value !== "" && JSON.stringify(oneServerValue(r, key)) !== JSON.stringify(defaultOf(key));
    });
}

/**
 * With databaseServers, the one-server keys are refused (each server says its own), with the entry to write: the
 * message shows the first server as it would be with the values those keys held.
 */
function refuseOneServerKeys(r: Reader, config: pulumi.Config): void {
    const set = oneServerKeysSet(r);
    if (config.get("databasePassword")) {
        r.problems.push(
            `${PROJECT}:databasePassword is not read with databaseServers: each server's password is databasePasswords.<name> ` +
                `(pulumi config set --secret --path '${PROJECT}:databasePasswords.<name>' <password>); remove it: pulumi config rm ${PROJECT}:databasePassword`,
        );
    }
    if (set.length === 0) {
        return;
    }
    const entry = Object.fromEntries(set.map((key) => [ONE_SERVER_KEYS[key] as string, oneServerValue(r, key)]));
    r.problems.push(
        `${PROJECT}:${set.join(", ")}: not read with databaseServers, where each server has its own; move ${set.length > 1 ? "them" : "it"} ` +
            `into the server's entry, e.g. databaseServers: [${JSON.stringify({ name: "<name>", ...entry })}], and remove ` +
            `${set.map((key) => `pulumi config rm ${PROJECT}:${key}`).join("; ")}`,
    );
}

/**
 * The passwords of databaseServers: databasePasswords.<name>, a secret map, for the servers in `names`; a server
 * in `elsewhere` has its password in Secrets Manager, so one here is refused (it would be in the state for nothing).
 */
function readPasswords(r: Reader, config: pulumi.Config, names: string[], elsewhere: string[]): Record<string, pulumi.Output<string>> {
    const plain = config.getObject<Record<string, unknown>>("databasePasswords") ?? {};
    if (!isRecord(plain)) {
        r.problems.push(`${PROJECT}:databasePasswords: the value (not shown: a secret) is not allowed; expected a map of server names to passwords`);
        return {};
    }
    if (Object.keys(plain).length > 0 && !r.isSecret("databasePasswords")) {
        r.problems.push(
            `${PROJECT}:databasePasswords: set in plain text (its value is not shown); set each password with --secret: ` +
                `pulumi config set --secret --path '${PROJECT}:databasePasswords.<name>' <password>`,
        );
    }
    for (const extra of Object.keys(plain).filter((n) => !names.includes(n))) {
        const why = elsewhere.includes(extra)
            ? `server ${extra} reads its password from secretsManagerSecret, and this one would sit in the state for nothing`
            : `names no server of databaseServers whose password is set here (${names.join(", ") || "none"})`;
        r.problems.push(`${PROJECT}:databasePasswords.${extra}: not read: ${why}; remove it: pulumi config rm --path '${PROJECT}:databasePasswords.${extra}'`);
    }
    const secret = config.getSecretObject<Record<string, string>>("databasePasswords");
    return Object.fromEntries(
        names.map((name) => {
            const value = plain[name];
            checkPassword(r, `databasePasswords.${name}`, typeof value === "string" ? value : undefined, `pulumi config set --secret --path '${PROJECT}:databasePasswords.${name}' <password>`);
            return [name, pulumi.secret(pulumi.output(secret).apply((s) => String(s?.[name] ?? "")))];
        }),
    );
}

/** The store that External Secrets Operator reads Secrets Manager through. */
function readSecretStore(r: Reader): SecretStoreRef {
    const raw = r.object<unknown>("externalSecretsStore");
    const kinds = ["ClusterSecretStore", "SecretStore"];
    if (!isRecord(raw) || !kinds.includes(raw.kind as string) || typeof raw.name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(raw.name)) {
        r.problem("externalSecretsStore", raw, `expected {kind: ${kinds.join(" | ")}, name: <the store's name>}`);
        return defaultOf("externalSecretsStore") as SecretStoreRef;
    }
    refuseUnknownKeys(r, "externalSecretsStore", raw, ["kind", "name"]);
    return { kind: raw.kind as SecretStoreRef["kind"], name: raw.name };
}

/** A server's secretsManagerSecret: an ARN, and then no password of it in databasePasswords. */
function readSecretsManagerSecret(r: Reader, at: string, raw: unknown): string | undefined {
    if (raw === undefined) {
        return undefined;
    }
    if (typeof raw !== "string" || !SECRET_ARN.test(raw)) {
        r.problem(`${at}.secretsManagerSecret`, raw, "expected a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>), whose JSON has password");
        return undefined;
    }
    refuseSecretInOtherRegion(r, `${at}.secretsManagerSecret`, raw);
    return raw;
}

function readServerList(r: Reader, config: pulumi.Config, list: unknown[]): DatabaseSpec[] {
    const names = list.map((raw, i) => {
        const name = isRecord(raw) ? raw.name : undefined;
        if (typeof name !== "string" || !SERVER_NAME.test(name)) {
            r.problem(`databaseServers[${i}].name`, name, "expected a DNS label (a-z, 0-9, -) of at most 20 characters");
            return "";
        }
        return name;
    });
    const duplicate = findDuplicate(names);
    if (duplicate) {
        r.problem("databaseServers", duplicate, "expected each server name once");
    }
    const fromSecretsManager = list.map((raw, i) => readSecretsManagerSecret(r, `databaseServers[${i}]`, isRecord(raw) ? raw.secretsManagerSecret : undefined));
    const passwords = readPasswords(r, config, names.filter((name, i) => name && !fromSecretsManager[i]), names.filter((name, i) => name && fromSecretsManager[i]));
    const store = fromSecretsManager.some(Boolean) ? readSecretStore(r) : undefined;
    return list.map((raw, i) => {
        const at = `databaseServers[${i}]`;
        if (!isRecord(raw)) {
            r.problem(at, raw, "expected an object with name, host and the server's limits");
            return undefined;
        }
        refuseUnknownKeys(r, at, raw, SERVER_FIELDS);
        const withDefaults: RawServer = { port: 5432, user: "velure", maxConnections: 100, reservedConnections: 10, ...raw };
        const secretArn = fromSecretsManager[i];
        const credentials: Credentials = secretArn
            ? { source: "secretsManager", secretArn, store: store as SecretStoreRef }
            : { source: "pulumi", password: passwords[names[i]] ?? pulumi.secret("") };
        return readServer(r, names[i], at, withDefaults, (field) => `${at}.${field}`, credentials);
    }).filter((s): s is DatabaseSpec => s !== undefined);
}

/** The database servers: databaseServers when set, else the one server of the databaseHost keys. */
export function readDatabaseServers(r: Reader, config: pulumi.Config): DatabaseSpec[] {
    const list = r.object<unknown>("databaseServers");
    if (!Array.isArray(list)) {
        r.problem("databaseServers", list, "expected a list of servers ({name, host, port?, user?, maxConnections?, reservedConnections?, ...})");
        return [];
    }
    if (list.length === 0) {
        return [readOneServer(r, config)];
    }
    refuseOneServerKeys(r, config);
    return readServerList(r, config, list);
}

export type RdsServerKey = "rdsInstanceIdentifier" | "rdsClusterIdentifier" | "rdsDatabaseSecurityGroupId" | "rdsSecretArn";

/**
 * A server's rds* value for mode rds-proxy, with the key that holds it: the one-server key, or the field of the
 * server's databaseServers entry.
 */
export function serverRdsValue(r: Reader, server: DatabaseSpec, key: RdsServerKey): { value: string; key: string } {
    if (!server.name) {
        return { value: r.string(key), key };
    }
    const entry = r.object<unknown[]>("databaseServers").find((raw) => isRecord(raw) && raw.name === server.name) as Record<string, unknown>;
    const value = entry?.[key];
    if (value !== undefined && typeof value !== "string") {
        r.problem(`${server.at}.${key}`, value, "expected a string");
    }
    return { value: typeof value === "string" ? value : "", key: `${server.at}.${key}` };
}
