// Every Kubernetes object the program declares, for every stack file and mode, against the Kubernetes
// OpenAPI schema (kubernetes-models), and the pods the releases' values would give the chart.
import * as assert from "assert";
import { Pod } from "kubernetes-models/v1/Pod";
import { MODES } from "../../config/schema";
import { Manifest, manifests } from "../../plan/kubernetes";
import { runProgram, stackConfig } from "./harness";

function modelFor(manifest: Manifest): { validate(): void } {
    const { apiVersion, kind } = manifest.object;
    const group = apiVersion.includes("/") ? apiVersion : `v1`;
    // kubernetes-models lays its classes out as <group>/<version>/<Kind> (the core group as v1/<Kind>).
    const module = require(`kubernetes-models/${group}/${kind}`);
    return new module[kind](manifest.object);
}

/** The pod the shipped chart renders from a release's values: the app container plus the hooks. */
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
    for (const stack of ["dev", "prod"]) {
        for (const mode of MODES) {
            it(`${stack} × ${mode}`, async () => {
                const run = await runProgram(stackConfig(stack, { mode }));
                const objects = manifests(run.resources, "-x");
                assert.ok(objects.length >= 3, "too few objects to be a real check");
                for (const manifest of objects) {
                    assert.doesNotThrow(() => modelFor(manifest).validate(), `${manifest.id} is invalid`);
                }
                for (const release of run.ofType("kubernetes:helm.sh/v3:Release")) {
                    assert.doesNotThrow(() => podFromValues(release.inputs.values).validate(), `the pod of ${release.name} is invalid`);
                }
            });
        }
    }

    it("catches an invalid object (the check can fail)", () => {
        const bad: Manifest = { id: "Deployment/x", object: { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { replicas: "two" } } };
        assert.throws(() => modelFor(bad).validate(), /replicas must be integer/);
    });
});
