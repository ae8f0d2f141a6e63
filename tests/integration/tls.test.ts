// server_tls_sslmode = verify-full, as rendered by the program, against a PostgreSQL that serves TLS.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LOCAL_PGBOUNCER_VERSION, loopbackConfig, startPgBouncer } from "./pooler";
import { PgBouncerProcess, PostgresServer, clientConfig, makeCertificates, withClient } from "./servers";

describe(`TLS from PgBouncer ${LOCAL_PGBOUNCER_VERSION} to PostgreSQL (verify-full)`, function () {
    this.timeout(120000);
    let pg: PostgresServer;
    let scratch: string;
    const bouncers: PgBouncerProcess[] = [];

    before(async () => {
        const certificates = makeCertificates();
        scratch = fs.mkdtempSync(path.join(os.tmpdir(), "velure-tls-ca-"));
        fs.writeFileSync(path.join(scratch, "right-ca.pem"), certificates.caCert);
        fs.writeFileSync(path.join(scratch, "wrong-ca.pem"), makeCertificates().caCert);
        pg = await new PostgresServer({ maxConnections: 20, databases: ["velure_auth", "velure_orders"], tls: { cert: certificates.serverCert, key: certificates.serverKey } }).start();
    });

    after(async () => {
        await Promise.all(bouncers.map((b) => b.stop()));
        pg?.stop();
        fs.rmSync(scratch, { recursive: true, force: true });
    });

    async function bouncerTrusting(caFile: string): Promise<PgBouncerProcess> {
        const config = loopbackConfig(pg, { pgbouncerServerTlsSslmode: "verify-full", pgbouncerServerTlsCaFile: path.join(scratch, caFile) });
        const bouncer = await startPgBouncer(config);
        bouncers.push(bouncer);
        return bouncer;
    }

    it("connects over TLS when the server's certificate chains to the configured CA and names the host", async () => {
        const bouncer = await bouncerTrusting("right-ca.pem");
        const ssl = await withClient(clientConfig(bouncer.port, "velure_auth"), async (c) => (await c.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).rows[0].ssl);
        assert.strictEqual(ssl, true, "PgBouncer's server connection is encrypted");
    });

    it("refuses a server whose certificate another CA signed", async () => {
        const bouncer = await bouncerTrusting("wrong-ca.pem");
        // PgBouncer finishes a client's login only once it has a server connection; with none possible,
        // the client never gets in (it times out here), and PgBouncer logs why.
        await assert.rejects(
            withClient(clientConfig(bouncer.port, "velure_auth", { connectionTimeoutMillis: 5000 }), (c) => c.query("SELECT 1")),
            /timeout expired|server login|SSL|TLS|certificate/i,
        );
        assert.match(bouncer.log, /certificate verify failed|self.signed|unknown ca|verify/i, `PgBouncer logs the verification failure:\n${bouncer.log}`);
    });
});
