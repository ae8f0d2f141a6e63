import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "../../config";
import { mergeValues } from "../../services/releases";
import { K8S, PASSWORD, PASSWORD_TOKEN, ProgramRun, isWrappedSecret, runProgram, stackConfig } from "./harness";

describe("Helm releases of the services", () => {
    let run: ProgramRun;

    before(async () => {
        run = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster" }));
    });

    it("declares velure-auth-service and velure-publish-order-service from the shipped chart", () => {
        const releases = run.ofType(K8S.release);
        assert.deepStrictEqual(releases.map((r) => r.inputs.name).sort(), ["velure-auth-service", "velure-publish-order-service"]);
        for (const release of releases) {
            assert.strictEqual(release.inputs.chart, "charts/velure-service");
            assert.strictEqual(release.inputs.namespace, "velure");
            assert.strictEqual(release.inputs.atomic, true);
        }
    });

    it("feeds POSTGRES_HOST and POSTGRES_PORT from the pooler, the same values as the stack outputs", () => {
        for (const [service, database] of [["auth-service", "velure_auth"], ["publish-order-service", "velure_orders"]]) {
            const values = run.one(K8S.release, `velure-${service}`).inputs.values;
            assert.strictEqual(values.env.POSTGRES_HOST, run.outputs.postgresHost);
            assert.strictEqual(values.env.POSTGRES_PORT, String(run.outputs.postgresPort));
            assert.strictEqual(values.env.POSTGRES_DB, database);
            assert.strictEqual(values.env.POSTGRES_USER, "velure");
            assert.strictEqual(values.env.POSTGRES_SSLMODE, "disable");
            assert.strictEqual(run.outputs.services[service].host, run.outputs.postgresHost);
            assert.strictEqual(run.outputs.services[service].database, database);
        }
    });

    it("passes the password through a Secret reference, never as a value", () => {
        const values = run.one(K8S.release, "velure-auth-service").inputs.values;
        const secret = run.one(K8S.secret, "velure-auth-service-db-credentials");
        assert.deepStrictEqual(values.extraEnv, [
            { name: "POSTGRES_PASSWORD", valueFrom: { secretKeyRef: { name: "velure-auth-service-db-credentials", key: "POSTGRES_PASSWORD" } } },
        ]);
        assert.strictEqual(secret.inputs.metadata.namespace, "velure");
        assert.ok(isWrappedSecret(secret.raw.stringData));
        assert.strictEqual(secret.inputs.stringData.POSTGRES_PASSWORD, PASSWORD);
    });

    it("sets image, replicas and autoscaling from the service config, with the CPU request the HPA scales on", () => {
        const values = run.one(K8S.release, "velure-auth-service").inputs.values;
        assert.deepStrictEqual(values.resources, { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "128Mi" } });
        assert.strictEqual(values.containerPort, 8080, "the shipped chart's port");
        assert.deepStrictEqual(values.image, { repository: "ghcr.io/velure/auth-service", tag: "latest" });
        assert.strictEqual(values.replicaCount, 1);
        assert.deepStrictEqual(values.autoscaling, { enabled: true, minReplicas: 1, maxReplicas: 2 });
    });

    it("takes the list of services from config, each with its own chart source and values", async () => {
        const services = [
            { name: "billing", database: "velure_billing", namespace: "billing", replicas: 2, image: { repository: "r/billing", tag: "1.0.0" },
              chart: { repo: "https://charts.example.com", name: "go-service", version: "3.1.0" },
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
              values: { env: { LOG_LEVEL: "debug" }, containerPort: 9000 } },
        ];
        const custom = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster", services }));
        const release = custom.one(K8S.release).inputs;
        assert.strictEqual(release.name, "velure-billing");
        assert.strictEqual(release.namespace, "billing");
        assert.strictEqual(release.chart, "go-service");
        assert.strictEqual(release.version, "3.1.0");
        assert.deepStrictEqual(release.repositoryOpts, { repo: "https://charts.example.com" });
        assert.strictEqual(release.values.env.LOG_LEVEL, "debug", "user values are kept");
        assert.strictEqual(release.values.env.POSTGRES_HOST, "pgbouncer.velure-db.svc.cluster.local", "the pooler's wiring is beside them");
        assert.deepStrictEqual(release.values.resources, { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } });
        assert.strictEqual(release.values.containerPort, 9000);
        assert.strictEqual(release.values.autoscaling.enabled, false);
        assert.deepStrictEqual(custom.one(K8S.namespace, "velure-namespace-billing").inputs.metadata.name, "billing");
        const policy = custom.one(K8S.networkPolicy).inputs.spec;
        assert.deepStrictEqual(policy.ingress[0].from[0].namespaceSelector.matchExpressions[0].values, ["billing"]);
    });

    it("creates the services' namespaces only when asked", async () => {
        assert.strictEqual(run.one(K8S.namespace, "velure-namespace-velure").inputs.metadata.name, "velure");
        assert.deepStrictEqual(run.one(K8S.namespace, "velure-namespace-velure").inputs.metadata.labels, {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        });
        const existing = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster", createServiceNamespaces: false }));
        assert.strictEqual(existing.ofType(K8S.namespace).filter((n) => n.name.startsWith("velure-namespace-")).length, 0);
        assert.strictEqual(existing.one(K8S.release, "velure-auth-service").inputs.namespace, "velure");
    });

    it("uses an explicit Kubernetes provider, on the kubeconfig's current context unless kubernetesContext names one", async () => {
        const provider = run.one("pulumi:providers:kubernetes").inputs;
        assert.strictEqual(provider.context, undefined, "the stack files set no context: `aws eks update-kubeconfig` names it by the cluster's ARN");
        assert.strictEqual(provider.enableServerSideApply, "false", "creates are client-side: an object that exists is never adopted");
    });

    it("merges values: objects key by key, lists joined with the program's entries first, the program's side wins", () => {
        assert.deepStrictEqual(mergeValues({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, e: 2 }), { a: { b: 1, c: [3, 1, 2] }, d: 1, e: 2 });
        assert.deepStrictEqual(mergeValues({ a: [1], b: { c: 1 } }, { a: "x", b: [2] }), { a: "x", b: [2] }, "a list meets a list only");
    });
});

describe("secrets stay secret", () => {
    it("the config hands the password on as a Pulumi secret (pulumi.isSecret)", async () => {
        pulumi.runtime.setAllConfig(stackConfig("one-server-dev"), ["velure-pooling:databasePassword"]);
        const config = loadConfig();
        assert.strictEqual(await pulumi.isSecret((config.servers[0].credentials as any).password), true);
    });

    it("refuses it set without --secret (in the stack file in plain text), as the CLI would for a secret key, never showing it", async () => {
        pulumi.runtime.setAllConfig(stackConfig("one-server-dev"), []);
        assert.throws(() => loadConfig(), (e: Error) => /databasePassword: set in plain text \(its value is not shown\); set it with --secret/.test(e.message) && !e.message.includes(PASSWORD_TOKEN));
    });

    for (const mode of ["pgbouncer-cluster", "pgbouncer-sidecar"]) {
        it(`${mode}: the password is in no ConfigMap, no release value and no non-Secret resource`, async () => {
            const run = await runProgram(stackConfig("one-server-dev", { mode }));
            for (const resource of run.resources) {
                const text = JSON.stringify(resource.raw);
                if (resource.type === K8S.secret) {
                    assert.ok(isWrappedSecret(resource.raw.stringData), `${resource.name} holds its data as a secret`);
                } else {
                    assert.ok(!text.includes(PASSWORD_TOKEN), `${resource.type} ${resource.name} holds the password`);
                }
            }
            assert.ok(!JSON.stringify(run.outputs).includes(PASSWORD_TOKEN), "a stack output holds the password");
        });
    }
});
