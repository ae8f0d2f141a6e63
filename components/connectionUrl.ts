// The connection URL a chart with the urlSecret contract reads (velure's POSTGRES_URL): one place that knows its
// shape, for both sources of the password: Pulumi's config (the URL itself, a secret) and Secrets Manager (a Go
// template that External Secrets Operator fills in, so that the password never passes through Pulumi).
import { SECRETS_MANAGER_PASSWORD_PROPERTY } from "./externalSecret";

export interface UrlTarget {
    user: string;
    host: string;
    port: number;
    database: string;
    sslmode: string;
    /** The CA file inside the pod (sslmode verify-full). */
    sslrootcert?: string;
    /** The driver's own connection parameters (config/client.ts urlDriverParams). */
    driverParams?: Record<string, string>;
}

/**
 * Every part percent-encoded as RFC 3986 wants it in userinfo, path and query: encodeURIComponent leaves only
 * A-Z a-z 0-9 - _ . ! ~ * ' ( ) as they are, none of which ends a URL part. lib/pq and pgx both decode it
 * (net/url).
 */
const encode = encodeURIComponent;

function query(target: UrlTarget): string {
    const params: [string, string][] = [["sslmode", target.sslmode]];
    if (target.sslrootcert) {
        params.push(["sslrootcert", target.sslrootcert]);
    }
    params.push(...Object.entries(target.driverParams ?? {}));
    // A path may keep its slashes in a query (RFC 3986), which reads better in the Secret.
    return params.map(([k, v]) => `${k}=${encode(v).replace(/%2F/g, "/")}`).join("&");
}

/** postgres://<user>:<password>@<host>:<port>/<database>?sslmode=…, around an already encoded password. */
function urlAround(target: UrlTarget, encodedPassword: string): string {
    return `postgres://${encode(target.user)}:${encodedPassword}@${target.host}:${target.port}/${encode(target.database)}?${query(target)}`;
}

export function postgresUrl(target: UrlTarget, password: string): string {
    return urlAround(target, encode(password));
}

/**
 * The same URL as an ESO template (engine v2: Go's text/template with sprig). `urlquery` is Go's
 * url.QueryEscape, which encodes every byte but A-Z a-z 0-9 - _ . ~ and writes a space as "+"; "+" itself becomes
 * %2B, so every "+" left is a space, which userinfo needs as %20. The rest of the URL is literal text: the program
 * checked that none of it holds "{{".
 */
export function postgresUrlTemplate(target: UrlTarget): string {
    const url = urlAround(target, `{{ .${SECRETS_MANAGER_PASSWORD_PROPERTY} | urlquery | replace "+" "%20" }}`);
    if (url.replace(/\{\{ \.password [^}]*\}\}/, "").includes("{{")) {
        throw new Error(`connection URL template: ${url} holds "{{" outside the password`);
    }
    return url;
}
