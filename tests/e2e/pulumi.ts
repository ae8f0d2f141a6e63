// The real Pulumi CLI on this project, with a local file backend and a PULUMI_HOME of its own in a scratch
// folder. The project is laid out there as symlinks to the repository's files (Pulumi.yaml, the program,
// the chart, node_modules), so that the test's stack file never lands in the repository.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { BIN, ROOT, toolchainVersions } from "../toolchain";

export interface CliResult {
    code: number;
    stdout: string;
    stderr: string;
}

/** The repository's entries that the project needs; stack files and build output stay out. */
const PROJECT_ENTRIES = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "config", "options", "components", "services", "charts", "node_modules", "tests"];

/** The commands whose time the run reports: what a user waits for. */
const TIMED_COMMANDS = ["preview", "up", "destroy", "refresh"];

/** One line per preview, up, destroy and refresh, with its time: a record of what each took on this machine, not a bound. */
function reportTime(stack: string, args: string[], code: number, seconds: number): void {
    if (TIMED_COMMANDS.includes(args[0])) {
        const flags = args.slice(1).filter((a) => a.startsWith("--") && a !== "--yes");
        console.log(`      time: pulumi ${[args[0], ...flags].join(" ")} (stack ${stack}): ${seconds.toFixed(1)} s, exit ${code}`);
    }
}

export class PulumiProject {
    readonly dir: string;
    private readonly home: string;
    private readonly env: NodeJS.ProcessEnv;
    readonly log: string;

    /** `backendEnv`: what the backend is told beyond the harness's own (PULUMI_DIY_BACKEND_LEGACY_LAYOUT, for one). */
    constructor(readonly stack: string, scratch: string, backendEnv: Record<string, string> = {}) {
        this.dir = path.join(scratch, "project");
        this.home = path.join(scratch, "pulumi-home");
        this.log = path.join(scratch, "pulumi.log");
        for (const dir of [this.dir, this.home, path.join(scratch, "state"), path.join(scratch, "helm")]) {
            fs.mkdirSync(dir, { recursive: true });
        }
        for (const entry of PROJECT_ENTRIES) {
            fs.symlinkSync(path.join(ROOT, entry), path.join(this.dir, entry));
        }
        this.env = {
            ...process.env,
            PULUMI_HOME: this.home,
            PULUMI_BACKEND_URL: `file://${path.join(scratch, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "velure-e2e-passphrase",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            // Providers come from PULUMI_HOME only (exact version), never from $PATH.
            PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
            PULUMI_SKIP_CONFIRMATIONS: "true",
            PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
            // Turns on `--event-log` (a debug flag in this CLI), from which the switch tests read the engine's order.
            PULUMI_DEBUG_COMMANDS: "true",
            // The Helm library inside the Kubernetes provider keeps its cache and repositories here.
            HELM_CACHE_HOME: path.join(scratch, "helm", "cache"),
            HELM_CONFIG_HOME: path.join(scratch, "helm", "config"),
            HELM_DATA_HOME: path.join(scratch, "helm", "data"),
            NO_COLOR: "1",
            ...backendEnv,
        };
    }

    /** The stack file the CLI reads for this stack. */
    get stackFile(): string {
        return path.join(this.dir, `Pulumi.${this.stack}.yaml`);
    }

    /** Installs the Kubernetes and random providers that the toolchain built, and creates the stack with `config`. */
    async init(config: Record<string, unknown>, secrets: Record<string, string>): Promise<void> {
        const versions = toolchainVersions();
        await this.ok(["plugin", "install", "resource", "kubernetes", versions.KUBERNETES_PROVIDER, "--file", BIN.kubernetesProvider]);
        await this.ok(["plugin", "install", "resource", "random", versions.RANDOM_PROVIDER, "--file", BIN.randomProvider]);
        await this.ok(["stack", "init"]);
        this.setConfig(config);
        for (const [key, value] of Object.entries(secrets)) {
            await this.ok(["config", "set", "--secret", key, value]);
        }
    }

    /** Rewrites the stack file's config (the encryption salt and the secrets already set stay). */
    setConfig(config: Record<string, unknown>): void {
        const file = YAML.parse(fs.readFileSync(this.stackFile, "utf8")) ?? {};
        const secure = Object.fromEntries(Object.entries(file.config ?? {}).filter(([, v]) => typeof v === "object" && v !== null && "secure" in (v as object)));
        file.config = { ...config, ...secure };
        fs.writeFileSync(this.stackFile, YAML.stringify(file));
    }

    async run(args: string[], timeoutMs = 15 * 60 * 1000): Promise<CliResult> {
        const started = Date.now();
        return new Promise((resolve) => {
            execFile(
                BIN.pulumi,
                [...args, ...(args[0] === "plugin" ? [] : ["--stack", this.stack]), "--non-interactive", "--color", "never"],
                { cwd: this.dir, env: this.env, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 },
                (error, stdout, stderr) => {
                    const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
                    fs.appendFileSync(this.log, `\n$ pulumi ${args.join(" ")}\n[exit ${code}]\n${stdout}\n${stderr}\n`);
                    reportTime(this.stack, args, code, (Date.now() - started) / 1000);
                    resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
                },
            );
        });
    }

    /** Runs and fails with the CLI's own output unless it exits 0. */
    async ok(args: string[], timeoutMs?: number): Promise<CliResult> {
        const result = await this.run(args, timeoutMs);
        if (result.code !== 0) {
            throw new Error(`pulumi ${args.join(" ")} exited ${result.code}:\n${result.stdout.slice(-6000)}\n${result.stderr.slice(-6000)}`);
        }
        return result;
    }

    async outputs(): Promise<Record<string, any>> {
        return JSON.parse((await this.ok(["stack", "output", "--json", "--show-secrets"])).stdout);
    }

}

export function scratch(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `velure-e2e-${prefix}-`));
}
