// Every Kubernetes object the program declares, for every stack file and mode, against the Kubernetes
// OpenAPI schema (kubernetes-models), and the pods the releases' values would give the chart.
import * as assert from "assert";
import { Pod } from "kubernetes-models/v1/Pod";
import { MODES } from "../../config/schema";
import { Manifest, manifests, modelFor } from "../../plan/kubernetes";
import { Declared } from "../../plan/runtime";
import { PROJECT_STACKS, postRenderPatch, runProgram, stackConfig } from "./harness";

/**
 * The pod the shipped chart renders from a release's values: the app container plus the hooks; for a chart with
 * the urlSecret contract, an app container and what the post-renderer adds (the same keys, from its patch file).
 */
function podOf(release: Declared): Pod {
    const values = release.inputs.values;
    return podFromValues(values.env ? values : { ...postRenderPatch(release), image: values.image, env: {}, extraEnv: [] });
}

function podFromValues(values: any): Pod {
    return new Pod({
        metadata: { name: "app", annotations: values.podAnnotations },
        spec: {
            securityContext: values.podSecurityContext,
            terminationGracePeriodSeconds: values.terminationGracePeriodSeconds,
            initContainers: values.initContainers,
            containers: [
                {
                    name: "app",
                    image: `${values.image.repository}:${values.image.tag}`,
                    env: [...Object.entries(values.env).map(([name, value]) => ({ name, value: String(value) })), ...values.extraEnv],
                },
                ...(values.extraContainers ?? []),
            ],
            volumes: values.extraVolumes,
        },
    });
}

describe("Kubernetes objects validate against the OpenAPI schema", () => {
    const variants = [...PROJECT_STACKS, "one-server-dev", "one-server-prod"].flatMap((stack) => MODES.map((mode) => ({ stack, mode, operator: false })));
    // The Prometheus Operator's objects, in both PgBouncer modes.
    variants.push({ stack: "prod", mode: "pgbouncer-cluster", operator: true }, { stack: "prod", mode: "pgbouncer-sidecar", operator: true });
    for (const { stack, mode, operator } of variants) {
        it(`${stack} × ${mode}${operator ? " with the Prometheus Operator" : ""}`, async () => {
            const run = await runProgram(stackConfig(stack, { mode, monitoringPrometheusOperator: operator }));
            const objects = manifests(run.resources, "-x");
            assert.ok(objects.length >= 3, "too few objects to be a real check");
            for (const manifest of objects) {
                const model = await modelFor(manifest);
                assert.doesNotThrow(() => model.validate(), `${manifest.id} is invalid`);
            }
            for (const release of run.ofType("kubernetes:helm.sh/v3:Release")) {
                assert.doesNotThrow(() => podOf(release).validate(), `the pod of ${release.name} is invalid`);
            }
        });
    }

    it("catches an invalid object (the check can fail), an ExternalSecret's too", async () => {
        const bad: Manifest = { id: "Deployment/x", object: { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { replicas: "two" } } };
        await assert.rejects(modelFor(bad).then((m) => m.validate()), /replicas must be integer/);
        const external: Manifest = {
            id: "ExternalSecret/x",
            object: { apiVersion: "external-secrets.io/v1", kind: "ExternalSecret", metadata: { name: "x" }, spec: { target: { creationPolicy: "Sometimes" } } },
        };
        await assert.rejects(modelFor(external).then((m) => m.validate()), /creationPolicy/);
    });
});
