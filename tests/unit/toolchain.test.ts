// The real tools are pinned in three places that must agree: package-lock.json (what the program runs
// against), scripts/toolchain.sh (what it builds and stamps) and the go.mod files under tools/.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS } from "../../config/schema";
import { ROOT, toolchainVersions } from "../toolchain";

const lock = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8"));
const goMod = (dir: string) => fs.readFileSync(path.join(ROOT, "tools", dir, "go.mod"), "utf8");
const npmVersion = (name: string) => lock.packages[`node_modules/${name}`]?.version;

/** The version that a go.mod requires a module at, or undefined. */
function required(mod: string, module: string): string | undefined {
    const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    return mod.match(new RegExp(`^\\s*(?:require\\s+)?${escaped} (v\\S+)`, "m"))?.[1];
}

/**
 * The Kubernetes provider module has no release tags; the module proxy serves it only as the pseudo-version
 * of the release commit. Each entry: npm version → that pseudo-version.
 */
const KUBERNETES_PROVIDER_COMMITS: Record<string, string> = {
    "4.25.0": "v4.0.0-20260115033456-f47bc2d6f199",
};

/**
 * pulumi-random's provider module is not served by the module proxy, so tools/pulumi-random bridges the terraform
 * provider itself: with the bridge and the terraform-provider-random commit that release's provider/go.mod pins.
 */
const RANDOM_PROVIDER_PINS: Record<string, { bridge: string; terraformProvider: string }> = {
    "4.19.1": { bridge: "v3.119.0", terraformProvider: "v1.3.2-0.20260127150608-de3700a633e4" },
};

describe("the real tools' versions", () => {
    const versions = toolchainVersions();

    it("builds the Pulumi CLI at the version of @pulumi/pulumi, with pkg and sdk at that same version", () => {
        assert.strictEqual(versions.PULUMI, npmVersion("@pulumi/pulumi"));
        assert.strictEqual(required(goMod("pulumi"), "github.com/pulumi/pulumi/pkg/v3"), `v${versions.PULUMI}`);
        assert.strictEqual(required(goMod("pulumi"), "github.com/pulumi/pulumi/sdk/v3"), `v${versions.PULUMI}`);
    });

    it("builds the Kubernetes provider from the release commit of @pulumi/kubernetes", () => {
        assert.strictEqual(versions.KUBERNETES_PROVIDER, npmVersion("@pulumi/kubernetes"));
        assert.strictEqual(
            required(goMod("pulumi-kubernetes"), "github.com/pulumi/pulumi-kubernetes/provider/v4"),
            KUBERNETES_PROVIDER_COMMITS[versions.KUBERNETES_PROVIDER],
        );
    });

    it("bridges terraform-provider-random for @pulumi/random's version, with the bridge and the terraform provider that pulumi-random's release pins", () => {
        assert.strictEqual(versions.RANDOM_PROVIDER, npmVersion("@pulumi/random"));
        const pins = RANDOM_PROVIDER_PINS[versions.RANDOM_PROVIDER];
        assert.ok(pins, `pins known for @pulumi/random ${versions.RANDOM_PROVIDER}`);
        assert.strictEqual(required(goMod("pulumi-random"), "github.com/pulumi/pulumi-terraform-bridge/v3"), pins.bridge);
        assert.strictEqual(required(goMod("pulumi-random/shim"), "github.com/terraform-providers/terraform-provider-random"), pins.terraformProvider);
    });

    it("takes External Secrets Operator's CRDs from a release that serves external-secrets.io/v1 (v0.16 or later)", () => {
        const version = required(goMod("external-secrets"), "github.com/external-secrets/external-secrets") ?? "";
        const [major, minor] = version.slice(1).split(".").map(Number);
        assert.ok(major > 0 || minor >= 16, version);
    });

    it("pins Helm, etcd and kwok in their go.mod files", () => {
        assert.strictEqual(required(goMod("helm"), "helm.sh/helm/v3"), `v${versions.HELM}`);
        assert.strictEqual(required(goMod("etcd"), "go.etcd.io/etcd/server/v3"), `v${versions.ETCD}`);
        assert.strictEqual(required(goMod("kwok"), "sigs.k8s.io/kwok"), `v${versions.KWOK}`);
    });

    it("builds the pgbouncer_exporter that the default monitoringExporterImage runs", () => {
        const tag = /:v(\d+\.\d+\.\d+)$/.exec(CONFIG_KEYS.monitoringExporterImage.default)?.[1];
        assert.strictEqual(versions.PGBOUNCER_EXPORTER, tag);
        assert.strictEqual(required(goMod("pgbouncer-exporter"), "github.com/prometheus-community/pgbouncer_exporter"), `v${tag}`);
    });

    it("builds the control plane from k8s.io/kubernetes with every staging module at the same release", () => {
        const mod = goMod("kube-control-plane");
        assert.strictEqual(required(mod, "k8s.io/kubernetes"), `v${versions.KUBE}`);
        const staging = `v0.${versions.KUBE.split(".").slice(1).join(".")}`;
        const replaces = [...mod.matchAll(/^\s*(k8s\.io\/\S+) v0\.0\.0 => (\S+) (v\S+)$/gm)];
        assert.ok(replaces.length >= 30, `every staging module is replaced (${replaces.length})`);
        for (const [, from, to, version] of replaces) {
            assert.deepStrictEqual([to, version], [from, staging], from);
        }
    });
});
