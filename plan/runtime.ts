// Runs the real program (index.ts) under Pulumi's mock runtime with a stack's config, and records every
// resource it declares. The plan command and the unit tests both use it, so the plan shows exactly what
// the program declares: it has no model of its own.
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { modeUrlKey } from "../config/connection";

export const ROOT = path.resolve(__dirname, "..");
/** The region of a stack that sets no aws:region. */
export const MOCK_REGION = "eu-west-1";
export const MOCK_ACCOUNT = "123456789012";

export interface Declared {
    type: string;
    name: string;
    /** Inputs with Pulumi's secret wrappers removed, for property assertions. */
    inputs: any;
    /** Inputs as the engine received them: secret values still wrapped. */
    raw: any;
}

const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** True when the mock received this value marked as a secret. */
export function isWrappedSecret(value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as any)[SIG_KEY] === SECRET_SIG;
}

export function unwrapSecrets(value: any): any {
    if (isWrappedSecret(value)) {
        return unwrapSecrets(value.value);
    }
    if (Array.isArray(value)) {
        return value.map(unwrapSecrets);
    }
    if (typeof value === "object" && value !== null) {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

export interface ProgramRun {
    resources: Declared[];
    outputs: Record<string, any>;
    /** What the program passed to pulumi.log.warn, which the engine would print. */
    warnings: string[];
    /** The objects the program read from the cluster (its prerequisites), which it does not declare. */
    reads: { type: string; name: string; id: string }[];
    ofType(type: string): Declared[];
    one(type: string, name?: string): Declared;
}

export type StackConfig = Record<string, string>;

/** A subnet's CIDR block as the mock's AWS answers it: a /24 of 10.0.0.0/16 picked by the subnet ID's last byte. */
export function mockSubnetCidr(id: string): string {
    return `10.0.${parseInt(id.slice(-2), 16) % 256}.0/24`;
}

/**
 * What a urlSecret release's pods read: the mode's key of the program's URL Secret (where the post-renderer points the
 * chart's POSTGRES_URL, which read the chart's own Secret), and the URL the program declares under it (our Secret's,
 * or the ExternalSecret's template).
 */
export function podUrl(run: ProgramRun, release: Declared): { secret: string; key: string; chartReference: string; url?: string } {
    const service = Object.values<any>(run.outputs.services).find((s) => s.release === release.inputs.name && s.namespace === release.inputs.namespace);
    const { secret, chartSecret } = service.connection;
    const key = modeUrlKey(service.connection.key, run.outputs.mode);
    const [namespace, name] = secret.split("/");
    const declared = [...run.ofType("kubernetes:core/v1:Secret"), ...run.ofType("kubernetes:external-secrets.io/v1:ExternalSecret")].find(
        (r) => r.inputs.metadata?.name === name && r.inputs.metadata?.namespace === namespace,
    );
    const url: unknown = declared?.inputs.stringData?.[key] ?? declared?.inputs.spec?.target?.template?.data?.[key];
    return { secret, key, chartReference: `${chartSecret} key ${service.connection.key}`, ...(typeof url === "string" ? { url } : {}) };
}

function configValue(value: unknown): string {
    return typeof value === "string" ? value : JSON.stringify(value);
}

/** Pulumi.yaml's defaults, as the CLI passes them to a stack that sets nothing. */
export function projectDefaults(): StackConfig {
    const project = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
    const config: StackConfig = {};
    for (const [key, spec] of Object.entries<any>(project.config)) {
        const value = "value" in spec ? spec.value : spec.default;
        if (value !== undefined) {
            config[`velure-pooling:${key}`] = configValue(value);
        }
    }
    return config;
}

/**
 * The config of a stack, as the CLI would pass it: stack values over Pulumi.yaml defaults, then overrides. `dir`
 * holds the stack file (the project's, or a folder of other stacks such as the tests' fixtures).
 */
export function stackConfig(stack: string, overrides: Record<string, unknown> = {}, dir = ROOT): StackConfig {
    const config = projectDefaults();
    const file = path.join(dir, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) {
        throw new Error(`no stack file Pulumi.${stack}.yaml`);
    }
    const stackFile = YAML.parse(fs.readFileSync(file, "utf8"));
    for (const [key, value] of Object.entries(stackFile.config ?? {})) {
        config[key] = configValue(value);
    }
    for (const [key, value] of Object.entries(overrides)) {
        if (value === undefined) {
            delete config[`velure-pooling:${key}`];
        } else {
            config[`velure-pooling:${key}`] = configValue(value);
        }
    }
    return config;
}

/** The fixture chart with the contract of velure's own charts (POSTGRES_URL from a fixed-name Secret). */
export const STAND_IN_CHART = "tests/fixtures/charts/url-service";

/**
 * The project's stacks name velure's own charts in a velure checkout beside this project. Where it is not there,
 * the fixture chart of the same contract stands in: the mock runtime renders no chart, and the config only checks
 * that the path holds one. Returns what stood in, for the plan's notes.
 */
export function standInCharts(config: StackConfig): string[] {
    const key = "velure-pooling:services";
    const services = config[key] === undefined ? [] : JSON.parse(config[key]);
    if (!Array.isArray(services)) {
        return [];
    }
    const notes: string[] = [];
    services.forEach((service, i) => {
        const chartPath = service?.chart?.path;
        if (typeof chartPath === "string" && !fs.existsSync(path.resolve(ROOT, chartPath, "Chart.yaml"))) {
            service.chart = { path: STAND_IN_CHART };
            notes.push(`services[${i}].chart: ${chartPath} is not checked out here; ${STAND_IN_CHART} (the same contract) stands in`);
        }
    });
    config[key] = JSON.stringify(services);
    return notes;
}

function resolved<T>(value: T): Promise<any> {
    return new Promise((resolve) => pulumi.output(value).apply((v) => resolve(v)));
}

/** The password the mock's random provider "generates" for a RandomPassword: fixed per resource name, of the asked length. */
export function mockRandomPassword(name: string, length: number): string {
    return createHash("sha256").update(name).digest("hex").repeat(2).slice(0, length);
}

/** What the providers would compute for the resources the program reads back (ARNs, endpoints, random results). */
function computedState(type: string, name: string, inputs: any, region: string): Record<string, unknown> {
    switch (type) {
        case "random:index/randomPassword:RandomPassword":
            return { result: mockRandomPassword(name, inputs.length) };
        case "aws:secretsmanager/secret:Secret":
            return { arn: `arn:aws:secretsmanager:${region}:${MOCK_ACCOUNT}:secret:${inputs.namePrefix}AbCdEf` };
        case "aws:iam/role:Role":
            return { arn: `arn:aws:iam::${MOCK_ACCOUNT}:role/${name}` };
        case "aws:rds/proxy:Proxy":
            return { endpoint: `${inputs.name}.proxy-abc123.${region}.rds.amazonaws.com`, arn: `arn:aws:rds:${region}:${MOCK_ACCOUNT}:db-proxy:prx-0123` };
        case "aws:rds/proxyEndpoint:ProxyEndpoint":
            return { endpoint: `${inputs.dbProxyEndpointName}.endpoint.proxy-abc123.${region}.rds.amazonaws.com` };
        case "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup":
            return { name: "default" };
        default:
            return {};
    }
}

const READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs";

export interface RunOptions {
    stack?: string;
    /** Appended to the resource name of an auto-named Kubernetes object (Pulumi adds a random one). */
    autoNameSuffix?: string;
    secretKeys?: string[];
    /** The stack's outputs from its last deployment (`pulumi stack output --json`), as the self stack reference reads them. */
    deployedOutputs?: Record<string, unknown>;
    /**
     * How the backend names stacks: "project" (organization/project/stack, the default), "legacy" (a file backend in
     * the legacy layout: only the bare stack name), or "none" (it refuses every name).
     */
    backendLayout?: "project" | "legacy" | "none";
    /** Objects the cluster lacks, as <type>/<name> (a read of them fails). */
    missingObjects?: string[];
}

/** What the cluster answers a read with: the object, or not found for the ones `missingObjects` names. */
function readExisting(type: string, id: string, options: RunOptions): { id: string; state: Record<string, unknown> } {
    if ((options.missingObjects ?? []).includes(`${type}/${id}`)) {
        throw new Error(`resource '${id}' does not exist`);
    }
    return { id, state: { metadata: { name: id } } };
}

/** The engine's stack-reference function, as a backend of this layout answers it. */
function readStackOutputs(name: string, options: RunOptions): Record<string, unknown> {
    const layout = options.backendLayout ?? "project";
    const qualified = name.includes("/");
    if (layout === "none" || (layout === "legacy" && qualified)) {
        throw new Error(`unknown stack "${name}"`);
    }
    return { name, outputs: options.deployedOutputs ?? {}, secretOutputNames: [] };
}

/** Takes what the program passes to pulumi.log.warn, until the returned function restores it. */
function collectWarnings(into: string[]): () => void {
    const log = pulumi.log as { warn: typeof pulumi.log.warn };
    const warn = log.warn;
    log.warn = async (message: string) => {
        into.push(message);
    };
    return () => {
        log.warn = warn;
    };
}

/** Runs index.ts with this config; rejects with the program's error (and what it declared) when it throws. */
export async function runProgram(config: StackConfig, options: RunOptions = {}): Promise<ProgramRun> {
    const resources: Declared[] = [];
    const reads: ProgramRun["reads"] = [];
    const warnings: string[] = [];
    const suffix = options.autoNameSuffix ?? "-generated";
    // The AWS provider's region: the stack's aws:region, as the real provider takes it.
    const region = config["aws:region"] ?? MOCK_REGION;
    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                const inputs = unwrapSecrets(args.inputs);
                if (args.id) {
                    // A read of an object the cluster already has (the program's prerequisites): it declares nothing.
                    reads.push({ type: args.type, name: args.name, id: args.id });
                    return readExisting(args.type, args.id, options);
                }
                resources.push({ type: args.type, name: args.name, inputs, raw: args.inputs });
                const metadata = inputs.metadata ?? {};
                const state = { ...inputs };
                if (args.type.startsWith("kubernetes:")) {
                    // resourceVersion: what the API server sets on every write (the pods' Secret version annotations).
                    state.metadata = { ...metadata, name: metadata.name ?? `${args.name}${suffix}`, resourceVersion: "1" };
                }
                Object.assign(state, computedState(args.type, args.name, inputs, region));
                return { id: `${args.name}-id`, state };
            },
            call(args) {
                if (args.token === READ_STACK_OUTPUTS) {
                    return readStackOutputs(args.inputs.name, options);
                }
                if (args.token === "aws:index/getRegion:getRegion") {
                    return { region, name: region, id: region };
                }
                if (args.token === "aws:ec2/getSubnet:getSubnet") {
                    return { ...args.inputs, cidrBlock: mockSubnetCidr(String(args.inputs.id)) };
                }
                if (args.token === "aws:index/getCallerIdentity:getCallerIdentity") {
                    return { accountId: MOCK_ACCOUNT, arn: `arn:aws:iam::${MOCK_ACCOUNT}:user/velure`, userId: "AIDAVELURE", id: MOCK_ACCOUNT };
                }
                return args.inputs;
            },
        },
        "velure-pooling",
        options.stack ?? "test",
        false,
        // The DIY backends' organization, which the program's self stack reference names.
        "organization",
    );
    // The passwords come in as a user sets them: with --secret.
    pulumi.runtime.setAllConfig(config, options.secretKeys ?? ["velure-pooling:databasePassword", "velure-pooling:databasePasswords"]);
    const cwd = process.cwd();
    process.chdir(ROOT);
    const restoreWarn = collectWarnings(warnings);
    try {
        let program: Record<string, unknown>;
        try {
            // The program is an async function (as Pulumi's Node runtime calls it) that reads its config when called:
            // its modules load once, and each run calls it again under this run's mocks and config.
            const main: () => Promise<Record<string, unknown>> = require(path.join(ROOT, "index"));
            program = await main();
        } catch (e) {
            // Let pending registrations reach the mock, so that a caller can see whether any happened.
            await pulumi.runtime.disconnect();
            throw Object.assign(e as Error, { declaredResources: resources });
        }
        const outputs: Record<string, any> = {};
        for (const [key, value] of Object.entries(program)) {
            outputs[key] = await resolved(value);
        }
        await pulumi.runtime.disconnect();
        return {
            resources,
            outputs,
            warnings,
            reads,
            ofType: (type) => resources.filter((r) => r.type === type),
            one(type, name) {
                const found = resources.filter((r) => r.type === type && (name === undefined || r.name === name));
                if (found.length !== 1) {
                    throw new Error(`expected one ${type}${name ? ` named ${name}` : ""}, found ${found.length}`);
                }
                return found[0];
            },
        };
    } finally {
        restoreWarn();
        process.chdir(cwd);
    }
}
