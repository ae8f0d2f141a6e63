// npm run plan -- --stack <dev|prod|…> [--mode <option>] [--deployed <outputs.json>] [--out <dir>]
// Evaluates the real program (index.ts) with Pulumi's mock runtime and shows what a stack would declare,
// without a cloud account. `pulumi up` stays the deployment path.
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { renderAllowPolicy } from "../components/allowPolicy";
import { ConnectionBudget, EVICTION_BOUND, transitionBudget } from "../components/connectionBudget";
import { RDS_CA_SOURCE, subjectsOf } from "../components/rdsCertificates";
import { deployedFromOutputs } from "../options/deployed";
import { readPostRenderPatch } from "../services/postRendererCommand";
import { manifests } from "./kubernetes";
import { Declared, ProgramRun, podUrl, runProgram, stackConfig, standInCharts } from "./runtime";

/** Pulumi adds a random suffix to auto-named objects; the plan shows where. */
const AUTO_NAME_SUFFIX = "-xxxxxxxx";

interface Args {
    stack: string;
    mode?: string;
    out?: string;
    /** A file of the stack's outputs (`pulumi stack output --json`): what is deployed now. */
    deployed?: string;
    /** The directory of the stack file, when not the project's (the tests' fixture stacks). */
    dir?: string;
}

export class UsageError extends Error {}

export function parseArgs(argv: string[]): Args {
    const args: Partial<Args> = {};
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const value = argv[i + 1];
        if (!["--stack", "--mode", "--out", "--deployed", "--dir"].includes(flag) || value === undefined || value.startsWith("--")) {
            throw new UsageError(`unexpected argument "${flag}"; usage: npm run plan -- --stack <dev|prod|…> [--mode <option>] [--deployed <outputs.json>] [--out <dir>] [--dir <stack file's dir>]`);
        }
        args[flag.slice(2) as keyof Args] = value;
        i++;
    }
    if (!args.stack) {
        throw new UsageError("--stack is required; usage: npm run plan -- --stack <dev|prod|…> [--mode <option>] [--deployed <outputs.json>] [--out <dir>] [--dir <stack file's dir>]");
    }
    return args as Args;
}

/**
 * The passwords a user adds outside the stack file come in as labelled placeholders: databasePassword for a stack
 * of one server, databasePasswords.<name> for each of databaseServers whose password is not in Secrets Manager.
 */
function placeholders(config: Record<string, string>, notes: string[]): Record<string, string> {
    const filled = { ...config };
    notes.push(...standInCharts(filled));
    const servers = JSON.parse(filled["velure-pooling:databaseServers"] ?? "[]");
    if (!Array.isArray(servers) || servers.length === 0) {
        if (!filled["velure-pooling:databasePassword"]) {
            filled["velure-pooling:databasePassword"] = "<placeholder for secret databasePassword>";
            notes.push("databasePassword: a placeholder (set it with pulumi config set --secret velure-pooling:databasePassword)");
        }
        return filled;
    }
    const given = JSON.parse(filled["velure-pooling:databasePasswords"] ?? "{}");
    const missing = servers.filter((s: any) => !s.secretsManagerSecret && given[s.name] === undefined).map((s: any) => String(s.name));
    for (const name of missing) {
        given[name] = `<placeholder for secret databasePasswords.${name}>`;
        notes.push(`databasePasswords.${name}: a placeholder (set it with pulumi config set --secret --path 'velure-pooling:databasePasswords.${name}')`);
    }
    filled["velure-pooling:databasePasswords"] = JSON.stringify(given);
    return filled;
}

function keyProperties(r: Declared): string {
    const i = r.inputs;
    const meta = i.metadata ?? {};
    const where = meta.namespace ? `${meta.namespace}/${meta.name ?? `${r.name}${AUTO_NAME_SUFFIX}`}` : meta.name;
    switch (r.type.split(":").pop()) {
        case "Deployment":
            return `${where} replicas=${i.spec.replicas} image=${i.spec.template.spec.containers[0].image}`;
        case "Service":
            return `${where} ports=${i.spec.ports.map((p: any) => p.port).join(",")}`;
        case "ConfigMap":
        case "Secret":
            return `${where} keys=${Object.keys(i.data ?? i.stringData ?? {}).join(",")}`;
        case "Release":
            return `${i.namespace}/${i.name} chart=${i.chart}${i.version ? `@${i.version}` : ""}`;
        case "Proxy":
            return `${i.name} engine=${i.engineFamily} requireTls=${i.requireTls}`;
        case "MetricAlarm":
            return `${i.name} threshold=${i.threshold}`;
        case "LogGroup":
            return `${i.name} retention=${i.retentionInDays}d`;
        default:
            return where ?? i.name ?? "";
    }
}

/** The resource tree: each component with the resources named after it, then the rest. */
function printTree(run: ProgramRun): void {
    const components = run.resources.filter((r) => r.type.startsWith("velure:pooling:"));
    const owned = new Set<Declared>(components);
    console.log("Resources");
    for (const component of components) {
        console.log(`  ${component.type} ${component.name}`);
        for (const child of run.resources.filter((r) => r !== component && r.name.startsWith(`${component.name}-`))) {
            owned.add(child);
            console.log(`    ${child.type} ${child.name}  ${keyProperties(child)}`);
        }
    }
    for (const r of run.resources.filter((r) => !owned.has(r))) {
        console.log(`  ${r.type} ${r.name}  ${keyProperties(r)}`);
    }
}

function printWiring(run: ProgramRun): void {
    console.log("\nThe connection each release gets");
    for (const release of run.ofType("kubernetes:helm.sh/v3:Release")) {
        const name = String(release.inputs.name).padEnd(24);
        const env = release.inputs.values.env;
        if (env) {
            console.log(`  ${name} env: ${env.POSTGRES_HOST}:${env.POSTGRES_PORT}  db=${env.POSTGRES_DB} sslmode=${env.POSTGRES_SSLMODE}`);
            continue;
        }
        const { secret, key, chartReference, url } = podUrl(run, release);
        const masked = url ? url.replace(/^(postgres:\/\/[^:]*:)[^@]*@/, "$1***@") : "(not declared)";
        console.log(`  ${name} POSTGRES_URL from Secret ${secret} key ${key} (the chart's ${chartReference}, its owner's, left as it is): ${masked}`);
        printAllowPolicy(release);
    }
}

/** The allow policy the post-renderer puts beside the chart's deny-all: its name and every path it opens. */
function printAllowPolicy(release: Declared): void {
    const patch = readPostRenderPatch(String(release.inputs.postrender));
    if (!patch.allowPolicy) {
        return;
    }
    const policy = renderAllowPolicy(patch.allowPolicy, String(release.inputs.namespace), {}) as any;
    const peer = (p: any) => p.ipBlock?.cidr ?? [p.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"], ...Object.entries(p.podSelector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`)].join(" ");
    const ports = (r: any) => r.ports.map((p: any) => `${p.protocol} ${p.port}`).join(", ");
    const rules = [
        ...policy.spec.egress.map((r: any) => `egress to ${r.to.map(peer).join(" | ")} on ${ports(r)}`),
        ...policy.spec.ingress.map((r: any) => `ingress from ${r.from.map(peer).join(" | ")} on ${ports(r)}`),
    ];
    console.log(`  ${"".padEnd(24)} NetworkPolicy ${policy.metadata.namespace}/${policy.metadata.name} (the chart's pods; nothing else opened):`);
    for (const rule of rules) {
        console.log(`  ${"".padEnd(26)} ${rule}`);
    }
}

/** The CA certificates each ConfigMap holds: what PgBouncer, or the apps behind RDS Proxy, trust. */
function printTrust(run: ProgramRun): void {
    const bundles = run.ofType("kubernetes:core/v1:ConfigMap").flatMap((configMap) =>
        Object.entries<string>(configMap.inputs.data ?? {})
            .filter(([key]) => key.endsWith(".pem"))
            .map(([key, pem]) => ({ where: `${configMap.name} ${key}`, subjects: subjectsOf(pem) })),
    );
    if (bundles.length > 0) {
        console.log(`\nTrusted CA certificates (default source: ${RDS_CA_SOURCE})`);
    }
    for (const bundle of bundles) {
        console.log(`  ${bundle.where}: ${bundle.subjects.join(", ")}`);
    }
}

/** One table per database server: the primary, and the read replica when it has a budget of its own. */
function printBudget(budget: ConnectionBudget, what = "Connection budget"): void {
    for (const server of budget) {
        console.log(`\n${what} of the ${server.server} (server connections, worst case)`);
        for (const line of server.lines) {
            console.log(`  ${line.name.padEnd(52)} ${String(line.connections).padStart(5)}  = ${line.formula}`);
        }
        console.log(`  ${"total".padEnd(52)} ${String(server.used).padStart(5)}  of ${server.available} available (${server.limitKey} ${server.limit} - reserved ${server.reserved})`);
        if (server.lines.some((line: any) => / evicted\)/.test(line.formula))) {
            console.log(`  note: ${EVICTION_BOUND}`);
        }
    }
}

function writeOut(dir: string, run: ProgramRun, args: Args): string[] {
    const written: string[] = [];
    const write = (file: string, content: string) => {
        const full = path.join(dir, file);
        fs.mkdirSync(path.dirname(full), { recursive: true });
        fs.writeFileSync(full, content);
        written.push(file);
    };
    for (const manifest of manifests(run.resources, AUTO_NAME_SUFFIX)) {
        write(`kubernetes/${manifest.id.replace(/\//g, "_")}.yaml`, YAML.stringify(manifest.object));
    }
    for (const release of run.ofType("kubernetes:helm.sh/v3:Release")) {
        write(`helm/${release.inputs.name}.values.yaml`, YAML.stringify(release.inputs.values));
    }
    for (const configMap of run.ofType("kubernetes:core/v1:ConfigMap")) {
        const ini = configMap.inputs.data?.["pgbouncer.ini"];
        if (ini) {
            write(`pgbouncer/${configMap.name}.ini`, ini);
        }
    }
    const summary = {
        stack: args.stack,
        mode: run.outputs.mode,
        outputs: run.outputs,
        resources: run.resources.map((r) => ({ type: r.type, name: r.name })),
        releases: run.ofType("kubernetes:helm.sh/v3:Release").map((r) => ({
            name: r.inputs.name,
            namespace: r.inputs.namespace,
            chart: r.inputs.chart,
            env: r.inputs.values.env,
            postrender: r.inputs.postrender,
        })),
    };
    write("summary.json", `${JSON.stringify(summary, null, 2)}\n`);
    return written;
}

/** What is deployed now, from a saved `pulumi stack output --json`; the program reads the same from the backend. */
function readDeployed(file: string | undefined): Record<string, unknown> | undefined {
    if (!file) {
        return undefined;
    }
    const outputs = JSON.parse(fs.readFileSync(file, "utf8"));
    const deployed = deployedFromOutputs(outputs);
    const what =
        deployed.kind === "pooler"
            ? `mode ${deployed.pooler.mode}, ${deployed.pooler.budget.map((s) => `${s.used} of ${s.available} server connections to the ${s.server}`).join(", ")}`
            : deployed.kind === "none"
              ? (deployed.foreign ?? "no pooler (the outputs have no mode)")
              : `mode ${deployed.mode}, but ${deployed.why}`;
    console.log(`Deployed now (${file}): ${what}\n`);
    return outputs;
}

/** The update's table: the deployed and the new generation at once, as the program checked it. */
function printSwitch(deployedOutputs: Record<string, unknown> | undefined, run: ProgramRun): void {
    const deployed = deployedOutputs && deployedFromOutputs(deployedOutputs);
    const next = deployedFromOutputs(run.outputs);
    if (deployed?.kind !== "pooler" || next.kind !== "pooler") {
        return;
    }
    const budget = transitionBudget(deployed.pooler, next.pooler);
    if (deployed.pooler.mode !== next.pooler.mode) {
        printBudget(budget, `Switch ${deployed.pooler.mode} -> ${next.pooler.mode}: connection budget`);
    } else if (JSON.stringify(budget) !== JSON.stringify(next.pooler.budget)) {
        printBudget(budget, `Update within ${next.pooler.mode} (deployed and new pods at once): connection budget`);
    }
}

export async function plan(argv: string[]): Promise<number> {
    const args = parseArgs(argv);
    const notes: string[] = [];
    const config = placeholders(stackConfig(args.stack, args.mode ? { mode: args.mode } : {}, args.dir ? path.resolve(args.dir) : undefined), notes);
    const deployedOutputs = readDeployed(args.deployed);
    const run = await runProgram(config, { stack: args.stack, autoNameSuffix: AUTO_NAME_SUFFIX, deployedOutputs });
    console.log(`Plan of stack ${args.stack}, mode ${run.outputs.mode} (Pulumi mock runtime: nothing is deployed)\n`);
    for (const note of notes) {
        console.log(`note: ${note}`);
    }
    for (const warning of run.warnings) {
        console.log(`warning: ${warning}`);
    }
    if (notes.length + run.warnings.length > 0) {
        console.log("");
    }
    printTree(run);
    console.log("\nOutputs");
    console.log(YAML.stringify(run.outputs).replace(/^/gm, "  ").trimEnd());
    printWiring(run);
    printTrust(run);
    printBudget(run.outputs.connectionBudget);
    printSwitch(deployedOutputs, run);
    if (args.out) {
        const written = writeOut(args.out, run, args);
        console.log(`\nwrote ${written.length} files to ${args.out}`);
    }
    return 0;
}

if (require.main === module) {
    plan(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (e: Error) => {
            console.error(e instanceof UsageError ? e.message : `error: ${e.message}`);
            process.exit(e instanceof UsageError ? 2 : 1);
        },
    );
}
