// The kubeconfig context the Kubernetes provider will use, checked before anything is declared: a context the
// kubeconfig lacks would otherwise fail the first `pulumi up` on its way to the cluster, half-way through.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";

/** Where the provider reads its kubeconfig, as kubectl does: the `kubeconfig` key, else $KUBECONFIG's files, else ~/.kube/config. */
export interface KubeconfigSource {
    /** The key's value: a path, or the contents themselves. */
    given?: string;
    isContents: boolean;
    env?: string;
    home?: string;
}

export interface KubeconfigContexts {
    /** What was read, for the message: the paths, or "the kubeconfig key's contents". */
    where: string;
    contexts: string[];
}

function contextsIn(text: string): string[] {
    const parsed = YAML.parse(text) as { contexts?: { name?: unknown }[] } | null;
    return (parsed?.contexts ?? []).map((c) => c?.name).filter((name): name is string => typeof name === "string");
}

function files(source: KubeconfigSource): string[] {
    if (source.given) {
        return [source.given];
    }
    if (source.env) {
        return source.env.split(path.delimiter).filter(Boolean);
    }
    return [path.join(source.home ?? os.homedir(), ".kube", "config")];
}

/** The contexts the provider could pick from; throws with the file and the reason when none can be read. */
export function readKubeconfigContexts(source: KubeconfigSource): KubeconfigContexts {
    if (source.given && source.isContents) {
        return { where: "the kubeconfig key's contents", contexts: contextsIn(source.given) };
    }
    const paths = files(source);
    const readable = paths.filter((file) => fs.existsSync(file));
    if (readable.length === 0) {
        throw new Error(`no kubeconfig at ${paths.join(", ")}`);
    }
    return { where: readable.join(", "), contexts: readable.flatMap((file) => contextsIn(fs.readFileSync(file, "utf8"))) };
}

/** The problem with `context`, or undefined when the kubeconfig has it. */
export function contextProblem(context: string, source: KubeconfigSource): string | undefined {
    let found: KubeconfigContexts;
    try {
        found = readKubeconfigContexts(source);
    } catch (e) {
        return `${(e as Error).message} to look the context up in; set kubeconfig, or leave kubernetesContext empty`;
    }
    if (found.contexts.includes(context)) {
        return undefined;
    }
    const list = found.contexts.length > 0 ? found.contexts.join(", ") : "none";
    return (
        `expected a context of ${found.where} (it has: ${list}), or empty for its current context. ` +
        "`aws eks update-kubeconfig --name <cluster>` names the context by the cluster's ARN (or by its --alias)"
    );
}
