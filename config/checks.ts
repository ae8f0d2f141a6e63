// Checks that several config keys share: image references, unknown keys in objects, resource quantities, duplicates,
// Secrets Manager ARNs.
import * as pulumi from "@pulumi/pulumi";
import { Reader, isRecord } from "./reader";

/** A registry path as the OCI distribution spec allows it (lower-case path components, optional host:port). */
const REPOSITORY = /^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?\/)?[a-z0-9]+([._-]+[a-z0-9]+)*(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
export const IMAGE_ALLOWED = "expected an image reference, repository[:tag][@sha256:digest], without spaces, quotes or line breaks";

export function isRepository(value: unknown): boolean {
    return typeof value === "string" && value.length <= 255 && REPOSITORY.test(value);
}

export function isTag(value: unknown): boolean {
    return typeof value === "string" && TAG.test(value);
}

/** repository[:tag][@sha256:digest] */
export function isImageReference(value: string): boolean {
    const [name, digest, ...rest] = value.split("@");
    if (rest.length > 0 || (digest !== undefined && !DIGEST.test(digest))) {
        return false;
    }
    const colon = name.lastIndexOf(":");
    const hasTag = colon > name.lastIndexOf("/");
    return hasTag ? isRepository(name.slice(0, colon)) && isTag(name.slice(colon + 1)) : isRepository(name);
}

/** Refuses keys of an object that the program does not read: a typo (maxReplica) would otherwise pass in silence. */
export function refuseUnknownKeys(r: Reader, at: string, raw: unknown, allowed: readonly string[]): void {
    if (!isRecord(raw)) {
        return;
    }
    for (const key of Object.keys(raw).filter((k) => !allowed.includes(k))) {
        r.problem(`${at}.${key}`, raw[key], `expected one of the keys ${allowed.join(", ")}`);
    }
}

const IPV4 = String.raw`((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)`;
export const IPV4_ADDRESS = new RegExp(`^${IPV4}$`);
export const IPV4_CIDR = new RegExp(String.raw`^${IPV4}\/(3[0-2]|[12]?\d)$`);

export const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const UNITS: Record<string, number> = { "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A Kubernetes quantity as a number (cores or bytes), for comparisons. */
export function quantityValue(quantity: string): number {
    const match = /^([0-9.]+)([a-zA-Z]*)$/.exec(quantity);
    return match ? Number(match[1]) * (UNITS[match[2]] ?? NaN) : NaN;
}

/** A limit below its request is refused by the API server only at deploy time; refuse it before anything. */
export function refuseLimitsBelowRequests(r: Reader, at: string, requests: Record<string, unknown>, limits: Record<string, unknown> | undefined): void {
    for (const [name, limit] of Object.entries(limits ?? {})) {
        const request = requests[name];
        if (typeof limit === "string" && typeof request === "string" && quantityValue(limit) < quantityValue(request)) {
            r.problem(`${at}.limits.${name}`, limit, `expected at least the request (${request})`);
        }
    }
}

/** The first value that a list holds twice ("" does not count: a problem was already reported for it). */
export function findDuplicate(values: string[]): string | undefined {
    return values.find((v, i) => v !== "" && values.indexOf(v) !== i);
}

export const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;

/** A proxy reads Secrets Manager secrets of its own region (aws:region) only: a secret elsewhere is refused at `key`. */
export function refuseSecretInOtherRegion(r: Reader, key: string, arn: string): void {
    const region = new pulumi.Config("aws").get("region");
    const secretRegion = arn.split(":")[3];
    if (region && r.valid(key) && secretRegion !== region) {
        r.problem(key, arn, `expected a secret in the proxy's region, aws:region ${region} (it is in ${secretRegion}): a proxy reads secrets of its own region only`);
    }
}
