// Real PostgreSQL and PgBouncer processes for the integration tests and the benchmark, on 127.0.0.1 only.
// Both refuse to run as root, so as root (CI) they run as the `postgres` user that Debian's package creates.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { Client, ClientConfig } from "pg";

export const HOST = "127.0.0.1";
export const PASSWORD = "velure-integration-pw";
export const USER = "velure";

/**
 * The binaries the suite runs on: Debian 12's PgBouncer 1.18 and PostgreSQL 15 (the machine's own packages), or with
 * VELURE_LAYER=trixie Debian 13's PgBouncer 1.24 and PostgreSQL 17, unpacked by scripts/trixie.sh.
 */
export const LAYER = process.env.VELURE_LAYER === "trixie" ? "trixie" : "bookworm";
const TRIXIE_ROOT = process.env.VELURE_TRIXIE_ROOT ?? path.resolve(__dirname, "../../.toolchain/trixie");

function requireFile(file: string, install: string): string {
    if (!fs.existsSync(file)) {
        throw new Error(`${file} not found: ${install}`);
    }
    return file;
}

/** The PostgreSQL server binaries of a layer: trixie's 17, or the newest that bookworm's packages installed. */
export function postgresBinDir(layer = LAYER): string {
    if (layer === "trixie") {
        return path.dirname(requireFile(path.join(TRIXIE_ROOT, "usr/lib/postgresql/17/bin/initdb"), "bash scripts/trixie.sh"));
    }
    const root = "/usr/lib/postgresql";
    const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
    const found = versions.map((v) => path.join(root, v, "bin")).find((dir) => fs.existsSync(path.join(dir, "initdb")));
    if (!found) {
        throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install -y postgresql");
    }
    return found;
}

/** A file of the trixie tree that scripts/trixie.sh unpacks (pgpool-II for the benchmark, say). */
export function trixieFile(relative: string): string {
    return requireFile(path.join(TRIXIE_ROOT, relative), "bash scripts/trixie.sh");
}

/** The PgBouncer binary of a layer. */
export function pgbouncerBin(layer = LAYER): string {
    if (layer === "trixie") {
        return requireFile(path.join(TRIXIE_ROOT, "usr/sbin/pgbouncer"), "bash scripts/trixie.sh");
    }
    return ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((p) => fs.existsSync(p)) ?? "pgbouncer";
}

export const PG_BIN = postgresBinDir();
export const PGBOUNCER_BIN = pgbouncerBin();

/** The user that the servers run as: the postgres user when this process is root. */
export const runAs = (() => {
    if (process.getuid?.() !== 0) {
        return {};
    }
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    return { uid, gid };
})();

/** A scratch directory the server user can write. */
export function scratchDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `velure-${prefix}-`));
    if (runAs.uid !== undefined) {
        fs.chownSync(dir, runAs.uid, runAs.gid as number);
    }
    return dir;
}

export function writeOwned(file: string, content: string, mode = 0o600): void {
    fs.writeFileSync(file, content, { mode });
    if (runAs.uid !== undefined) {
        fs.chownSync(file, runAs.uid, runAs.gid as number);
    }
}

export async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.unref();
        server.on("error", reject);
        server.listen(0, HOST, () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (await check()) {
            return;
        }
        await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
}

function run(bin: string, args: string[]): string {
    return execFileSync(bin, args, { ...runAs, stdio: ["ignore", "pipe", "pipe"], cwd: "/" }).toString();
}

export interface PostgresOptions {
    maxConnections: number;
    databases: string[];
    /** Where it listens: a loopback address (127.0.0.0/8; a second server on 127.0.0.2 plays the read replica), or one of the real node's host addresses. */
    host?: string;
    port?: number;
    /** Serve TLS with this certificate and key (PEM). */
    tls?: { cert: string; key: string };
    /** The role the services log in as (velure's servers each have their own master credentials); default USER, PASSWORD. */
    role?: { user: string; password: string };
    /** The layer whose PostgreSQL runs (default: the suite's, VELURE_LAYER). */
    layer?: typeof LAYER;
}

/** A throwaway PostgreSQL cluster with SCRAM auth, the velure role and the services' databases. */
export class PostgresServer {
    readonly dir: string;
    port = 0;

    constructor(private readonly options: PostgresOptions) {
        this.dir = scratchDir("pg");
    }

    get host(): string {
        return this.options.host ?? HOST;
    }

    private get binDir(): string {
        return this.options.layer ? postgresBinDir(this.options.layer) : PG_BIN;
    }

    get role(): { user: string; password: string } {
        return this.options.role ?? { user: USER, password: PASSWORD };
    }

    async start(): Promise<this> {
        this.port = this.options.port ?? (await freePort());
        const data = path.join(this.dir, "data");
        run(path.join(this.binDir, "initdb"), ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]);
        fs.appendFileSync(
            path.join(data, "postgresql.conf"),
            [
                `port = ${this.port}`,
                `listen_addresses = '${this.host}'`,
                `unix_socket_directories = '${this.dir}'`,
                `max_connections = ${this.options.maxConnections}`,
                "superuser_reserved_connections = 3",
                "password_encryption = 'scram-sha-256'",
                "shared_buffers = '32MB'",
                "log_min_messages = warning",
                ...this.tlsSettings(data),
                "",
            ].join("\n"),
        );
        // As RDS: a password from any address that reaches the server (initdb's own lines cover loopback only; the
        // real node's pods connect from the pod network).
        fs.appendFileSync(path.join(data, "pg_hba.conf"), "host all all 0.0.0.0/0 scram-sha-256\n");
        this.pgctl(["start", "-w", "-t", "30", "-l", path.join(this.dir, "server.log")]);
        const { user, password } = this.role;
        await this.superuser(async (c) => {
            await c.query(`CREATE ROLE ${user} LOGIN PASSWORD '${password.replace(/'/g, "''")}'`);
            for (const db of this.options.databases) {
                await c.query(`CREATE DATABASE ${db} OWNER ${user}`);
            }
        });
        for (const db of this.options.databases) {
            await this.superuser((c) => c.query(`CREATE TABLE acked (id text PRIMARY KEY, at timestamptz DEFAULT now()); ALTER TABLE acked OWNER TO ${user}`), db);
        }
        return this;
    }

    private tlsSettings(data: string): string[] {
        if (!this.options.tls) {
            return [];
        }
        writeOwned(path.join(data, "server.crt"), this.options.tls.cert);
        writeOwned(path.join(data, "server.key"), this.options.tls.key);
        return ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"];
    }

    private pgctl(args: string[]): void {
        run(path.join(this.binDir, "pg_ctl"), ["-D", path.join(this.dir, "data"), ...args]);
    }

    /** mode: fast (clean) or immediate (a crash: recovery replays the WAL). */
    restart(mode: "fast" | "immediate"): void {
        this.pgctl(["restart", "-w", "-t", "60", "-m", mode, "-l", path.join(this.dir, "server.log")]);
    }

    /** Stops the server and keeps its data: start it again with resume() (an outage with the address unchanged). */
    halt(mode: "fast" | "immediate"): void {
        this.pgctl(["stop", "-w", "-m", mode]);
    }

    resume(): void {
        this.pgctl(["start", "-w", "-t", "60", "-l", path.join(this.dir, "server.log")]);
    }

    stop(): void {
        try {
            this.pgctl(["stop", "-w", "-m", "immediate"]);
        } catch {
            // already stopped
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    /** A superuser session over the unix socket: it works even when every TCP slot is taken. */
    async superuser<T>(work: (c: Client) => Promise<T>, database = "postgres"): Promise<T> {
        const client = new Client({ host: this.dir, port: this.port, user: "postgres", database });
        await client.connect();
        try {
            return await work(client);
        } finally {
            await client.end();
        }
    }

    /** Server connections (backends) of the velure user, optionally for one database. */
    async backends(database?: string): Promise<number> {
        return this.superuser(async (c) => {
            const sql = `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1${database ? " AND datname = $2" : ""}`;
            const result = await c.query(sql, database ? [this.role.user, database] : [this.role.user]);
            return result.rows[0].n as number;
        });
    }
}

/** Samples a figure every `everyMs` until stopped, and keeps the maximum. */
export function sampleMax(read: () => Promise<number>, everyMs = 50): { stop: () => Promise<number> } {
    let max = 0;
    let running = true;
    const loop = (async () => {
        while (running) {
            max = Math.max(max, await read().catch(() => 0));
            await sleep(everyMs);
        }
    })();
    return {
        stop: async () => {
            running = false;
            await loop;
            return max;
        },
    };
}

/** A PgBouncer process running a given pgbouncer.ini and userlist.txt. */
export class PgBouncerProcess {
    readonly dir: string;
    readonly iniFile: string;
    readonly authFile: string;
    port = 0;
    private child?: ChildProcess;
    private exited?: Promise<number | null>;
    log = "";

    /**
     * `bin`: the PgBouncer to run, this layer's by default (the benchmark runs both layers' side by side).
     * `entrypoint`: run it under the pods' entrypoint (PGBOUNCER_ENTRYPOINT_SCRIPT) with this command line, so that
     * SIGTERM is the pod's stop as the kubelet sends it.
     */
    constructor(
        private readonly bin = PGBOUNCER_BIN,
        private readonly entrypoint?: (iniFile: string) => string[],
    ) {
        this.dir = scratchDir("pgbouncer");
        this.iniFile = path.join(this.dir, "pgbouncer.ini");
        this.authFile = path.join(this.dir, "userlist.txt");
    }

    get pid(): number {
        return this.child?.pid as number;
    }

    /** The pgbouncer.ini it runs. */
    get ini(): string {
        return fs.readFileSync(this.iniFile, "utf8");
    }

    /** `render` gets the port to listen on and returns pgbouncer.ini. */
    async start(render: (port: number) => string, userlist: string, port?: number): Promise<this> {
        this.port = port ?? (await freePort());
        writeOwned(this.iniFile, render(this.port));
        writeOwned(this.authFile, userlist);
        const child = this.entrypoint
            ? spawn("/bin/sh", this.entrypoint(this.iniFile).slice(1), {
                  ...runAs,
                  cwd: this.dir,
                  stdio: ["ignore", "pipe", "pipe"],
                  // The entrypoint runs `pgbouncer` from PATH: this layer's.
                  env: { ...process.env, PATH: `${path.dirname(this.bin)}:${process.env.PATH}` },
              })
            : spawn(this.bin, [this.iniFile], { ...runAs, cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
        this.log = "";
        child.stdout?.on("data", (d) => (this.log += d));
        child.stderr?.on("data", (d) => (this.log += d));
        this.child = child;
        this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
        // Its log line, not a probe connection: PgBouncer may not yet have seen a probe's close when a test's first
        // clients arrive, and would count it against max_client_conn.
        const listening = new RegExp(`listening on \\S+:${this.port}\\b`);
        await Promise.race([
            waitFor(`PgBouncer on port ${this.port}`, async () => listening.test(this.log)),
            this.exited.then((code) => {
                throw new Error(`PgBouncer exited with ${code}:\n${this.log}`);
            }),
        ]);
        return this;
    }

    /** Rewrites pgbouncer.ini and sends SIGHUP, as a config rollout without restart would. */
    async reload(render: (port: number) => string): Promise<void> {
        writeOwned(this.iniFile, render(this.port));
        this.signal("SIGHUP");
        await waitFor("the reload", async () => this.log.includes("got SIGHUP"), 5000);
        await sleep(200);
    }

    signal(signal: NodeJS.Signals): void {
        this.child?.kill(signal);
    }

    async waitExit(timeoutMs: number): Promise<number | null> {
        return Promise.race([this.exited as Promise<number | null>, sleep(timeoutMs).then(() => Promise.reject(new Error("PgBouncer did not exit in time")))]);
    }

    async stop(): Promise<void> {
        await stopChild(this.child, "SIGQUIT");
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/**
 * Stops a server the tests started, by its PID: `signal` (its own quick shutdown), then SIGKILL when it has not
 * exited within `graceMs`. Nothing to do when it already ended.
 */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals, graceMs = 5000): Promise<void> {
    if (!child || child.exitCode !== null || child.signalCode !== null) {
        return;
    }
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await Promise.race([exited, sleep(graceMs)]);
    if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
    }
}

/**
 * Runs `pgbouncer` on a config to see whether it loads and keeps running for `seconds`; returns its log.
 * A config error ends the process at once.
 */
export function pgbouncerConfigCheck(ini: string, userlist: string, seconds = 2): { ok: boolean; log: string } {
    const dir = scratchDir("pgbouncer-check");
    writeOwned(path.join(dir, "pgbouncer.ini"), ini);
    writeOwned(path.join(dir, "userlist.txt"), userlist);
    try {
        const out = execFileSync("timeout", [String(seconds), PGBOUNCER_BIN, path.join(dir, "pgbouncer.ini")], { ...runAs, stdio: ["ignore", "pipe", "pipe"], cwd: dir });
        return { ok: true, log: out.toString() };
    } catch (e: any) {
        const log = `${e.stdout ?? ""}${e.stderr ?? ""}`;
        // `timeout` ends a process that loaded its config and kept running with status 124.
        return { ok: e.status === 124 && !/FATAL|ERROR/.test(log), log };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

export function clientConfig(port: number, database: string, overrides: Partial<ClientConfig> = {}): ClientConfig {
    return { host: HOST, port, user: USER, password: PASSWORD, database, connectionTimeoutMillis: 10000, ...overrides };
}

export async function withClient<T>(config: ClientConfig, work: (c: Client) => Promise<T>): Promise<T> {
    const client = new Client(config);
    // A dropped connection also surfaces as the failed query; the event must not crash the run.
    client.on("error", () => undefined);
    await client.connect();
    try {
        return await work(client);
    } finally {
        await client.end().catch(() => undefined);
    }
}

export interface TestCertificates {
    caCert: string;
    serverCert: string;
    serverKey: string;
}

/**
 * A throwaway CA and a server certificate, made with openssl, for 127.0.0.1, 127.0.0.2 (the second of velure's
 * servers in the drivers tests and the benchmark) and localhost, or for the subject alternative names given (the
 * real node's stand-ins answer for the RDS endpoints' names).
 */
export function makeCertificates(names = ["IP:127.0.0.1", "IP:127.0.0.2", "DNS:localhost"]): TestCertificates {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "velure-tls-"));
    const file = (name: string) => path.join(dir, name);
    const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] });
    try {
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "2", "-subj", "/CN=velure test CA");
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=127.0.0.1");
        fs.writeFileSync(file("san.ext"), `subjectAltName = ${names.join(", ")}\n`);
        openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial", "-out", file("server.crt"), "-days", "2", "-extfile", file("san.ext"));
        return { caCert: fs.readFileSync(file("ca.crt"), "utf8"), serverCert: fs.readFileSync(file("server.crt"), "utf8"), serverKey: fs.readFileSync(file("server.key"), "utf8") };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
