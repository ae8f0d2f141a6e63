// A config reader that collects problems instead of stopping at the first one, so that one run reports
// all of them, each naming the key, the bad value and what is allowed.
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEYS, ConfigKey, KeySpec, PROJECT } from "./schema";

// The SDK's own test of `pulumi config set --secret` (runtime/config.js); its type declarations leave it out.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const runtimeConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(key: string): boolean };

export class ConfigError extends Error {
    constructor(public readonly problems: string[]) {
        super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
        this.name = "ConfigError";
    }
}

export function defaultOf(key: ConfigKey): unknown {
    return (CONFIG_KEYS[key] as KeySpec).default;
}

/** A reader that collects problems instead of stopping at the first one. */
export class Reader {
    readonly problems: string[] = [];
    private readonly refused = new Set<string>();

    constructor(private readonly config: pulumi.Config) {}

    /** A problem with a key's value; the value is not shown when the key (or the key it is part of) is a secret. */
    problem(key: string, value: unknown, allowed: string): void {
        this.refused.add(key);
        const root = key.split(/[.[]/)[0];
        const shown = root in CONFIG_KEYS && this.isSecret(root as ConfigKey) ? "the value (not shown: a secret)" : JSON.stringify(value);
        this.problems.push(`${PROJECT}:${key}: ${shown} is not allowed; ${allowed}`);
    }

    /** Whether every one of these keys was read without a problem: a check that compares keys needs both valid. */
    valid(...keys: string[]): boolean {
        return keys.every((key) => !this.refused.has(key));
    }

    /** Whether the user set this key with --secret. */
    isSecret(key: ConfigKey): boolean {
        return runtimeConfig.isConfigSecret(`${PROJECT}:${key}`);
    }

    raw(key: ConfigKey): string | undefined {
        return this.config.get(key);
    }

    string(key: ConfigKey): string {
        const value = this.raw(key);
        if (value !== undefined) {
            return value;
        }
        const fallback = defaultOf(key);
        if (fallback === undefined) {
            this.problems.push(`${PROJECT}:${key} is required: ${CONFIG_KEYS[key].description}`);
            return "";
        }
        return String(fallback);
    }

    oneOf<T extends string>(key: ConfigKey, allowed: readonly T[]): T {
        const value = this.string(key);
        if (!allowed.includes(value as T)) {
            this.problem(key, value, `expected one of ${allowed.join(", ")}`);
        }
        return value as T;
    }

    integer(key: ConfigKey, min: number, max = Number.MAX_SAFE_INTEGER): number {
        const text = this.string(key);
        const value = Number(text);
        if (!/^-?\d+$/.test(text.trim()) || value < min || value > max) {
            this.problem(key, text, max === Number.MAX_SAFE_INTEGER ? `expected an integer >= ${min}` : `expected an integer from ${min} to ${max}`);
            return min;
        }
        return value;
    }

    boolean(key: ConfigKey): boolean {
        const text = this.string(key);
        if (text !== "true" && text !== "false") {
            this.problem(key, text, "expected true or false");
        }
        return text === "true";
    }

    object<T>(key: ConfigKey): T {
        const value = this.raw(key);
        if (value === undefined) {
            return defaultOf(key) as T;
        }
        try {
            return JSON.parse(value) as T;
        } catch {
            this.problem(key, value, "expected a structured (YAML/JSON) value");
            return defaultOf(key) as T;
        }
    }
}


export function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A list of strings, each matching `pattern`. */
export function readStringList(r: Reader, key: ConfigKey, pattern: RegExp, allowed: string): string[] {
    const raw = r.object<unknown>(key);
    if (!Array.isArray(raw)) {
        r.problem(key, raw, "expected a list of strings");
        return [];
    }
    for (const item of raw) {
        if (typeof item !== "string" || !pattern.test(item)) {
            r.problem(key, item, allowed);
        }
    }
    return raw.filter((item): item is string => typeof item === "string");
}

/** A string that must match `pattern`. */
export function requiredMatch(r: Reader, key: ConfigKey, pattern: RegExp, allowed: string): string {
    const value = r.string(key);
    if (!pattern.test(value)) {
        r.problem(key, value, allowed);
    }
    return value;
}

/**
 * A map of numeric thresholds over `defaults`: only its keys, each a number at or above 0 (above 0 when
 * `positive`). Keys ending in Percent lie strictly between 0 and 100: at either end an alarm would always or never fire.
 */
export function readThresholds<T extends { [K in keyof T]: number }>(r: Reader, key: ConfigKey, defaults: T, positive: boolean): T {
    const raw = r.object<unknown>(key);
    const merged: Record<string, unknown> = { ...defaults, ...(isRecord(raw) ? raw : {}) };
    const allowed = Object.keys(defaults).join(", ");
    if (!isRecord(raw)) {
        r.problem(key, raw, `expected a map with ${allowed}`);
    }
    const floor = positive ? "above 0" : ">= 0";
    for (const [name, value] of Object.entries(merged)) {
        const percent = name.endsWith("Percent");
        if (!(name in defaults)) {
            r.problem(`${key}.${name}`, value, `expected one of ${allowed}`);
        } else if (percent ? typeof value !== "number" || !(value > 0 && value < 100) : typeof value !== "number" || !(positive ? value > 0 : value >= 0)) {
            const why = "above 0 and below 100 (at 0 or 100 the alarm would always or never fire)";
            r.problem(`${key}.${name}`, value, percent ? `expected a number ${why}` : `expected a number ${floor}`);
        } else if (name.endsWith("Minutes") && !Number.isInteger(value)) {
            // A Prometheus rule's `for` of "0.5m" is refused by the PrometheusRule CRD.
            r.problem(`${key}.${name}`, value, "expected a whole number of minutes");
        }
    }
    return merged as T;
}
