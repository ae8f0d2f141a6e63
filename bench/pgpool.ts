// pgpool-II 4.6 (Debian trixie's, from scripts/trixie.sh), the peer the velure scenario runs beside PgBouncer: one
// process in front of one PostgreSQL, in raw mode (no replication, no load balancing, no health checks), with
// connection caching. pgpool-II pools by session only: each client connection takes one of num_init_children
// processes for its whole life, and each process keeps max_pool cached server connections, so num_init_children ×
// max_pool bounds the server connections (max_pool 1: one user and database per pgpool here). TLS to the server,
// its certificate checked against the CA (ssl_ca_cert: one from another CA fails with "certificate verify failed",
// seen here; whether pgpool-II also checks the host name was not tested).
import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import { PASSWORD, PostgresServer, USER, freePort, runAs, scratchDir, stopChild, trixieFile, waitFor, writeOwned } from "../tests/integration/servers";

export class PgpoolProcess {
    readonly dir = scratchDir("pgpool");
    port = 0;
    log = "";
    private child?: ChildProcess;

    /** `children`: num_init_children, the clients it serves at once (and the server connections it may open). */
    async start(server: PostgresServer, children: number, caFile: string): Promise<this> {
        this.port = await freePort();
        const conf = path.join(this.dir, "pgpool.conf");
        writeOwned(conf, this.config(server, children, caFile));
        writeOwned(path.join(this.dir, "pool_hba.conf"), "host all all 127.0.0.0/8 scram-sha-256\n");
        // The password pgpool-II logs in with, and checks the clients' SCRAM against: "TEXT" marks it as plain text.
        writeOwned(path.join(this.dir, "pool_passwd"), `${USER}:TEXT${PASSWORD}\n`);
        writeOwned(path.join(this.dir, "pcp.conf"), "");
        const child = spawn(trixieFile("usr/sbin/pgpool"), ["-n", "-f", conf, "-F", path.join(this.dir, "pcp.conf"), "-a", path.join(this.dir, "pool_hba.conf")], {
            ...runAs,
            cwd: this.dir,
            stdio: ["ignore", "pipe", "pipe"],
        });
        child.stdout?.on("data", (d) => (this.log += d));
        child.stderr?.on("data", (d) => (this.log += d));
        this.child = child;
        await waitFor(`pgpool-II on port ${this.port}`, async () => {
            if (child.exitCode !== null) {
                throw new Error(`pgpool-II exited with ${child.exitCode}:\n${this.log}`);
            }
            return this.log.includes("successfully started");
        });
        return this;
    }

    private config(server: PostgresServer, children: number, caFile: string): string {
        const settings: Record<string, string | number> = {
            backend_clustering_mode: "'raw'",
            listen_addresses: "'127.0.0.1'",
            port: this.port,
            unix_socket_directories: `'${this.dir}'`,
            pcp_listen_addresses: "''",
            pcp_socket_dir: `'${this.dir}'`,
            backend_hostname0: `'${server.host}'`,
            backend_port0: server.port,
            backend_weight0: 1,
            backend_flag0: "'DISALLOW_TO_FAILOVER'",
            num_init_children: children,
            max_pool: 1,
            connection_cache: "on",
            enable_pool_hba: "on",
            pool_passwd: "'pool_passwd'",
            ssl: "on",
            ssl_ca_cert: `'${caFile}'`,
            load_balance_mode: "off",
            health_check_period: 0,
            sr_check_period: 0,
            failover_on_backend_error: "off",
            pid_file_name: `'${path.join(this.dir, "pgpool.pid")}'`,
            logdir: `'${this.dir}'`,
            log_destination: "'stderr'",
        };
        return Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join("\n") + "\n";
    }

    /** SIGINT: pgpool-II's fast shutdown (its children end their sessions). */
    async stop(): Promise<void> {
        await stopChild(this.child, "SIGINT");
    }
}
