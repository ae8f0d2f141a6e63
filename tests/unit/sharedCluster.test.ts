// A cluster that already runs other people's things (issue 21): what the program may adopt, delete, count and reveal.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { EVICTION_BOUND, transitionBudget } from "../../components/connectionBudget";
import { CLUSTER_DNS_PEER } from "../../components/allowPolicy";
import { POD_NAMES } from "../../components/specs";
import { readKubeconfigContexts } from "../../config/kubeconfig";
import { FIXTURE_STACKS, K8S, PASSWORD_TOKEN, isWrappedSecret, programError, runProgram, stackConfig } from "./harness";

const MODES_WITH_PODS = ["pgbouncer-cluster", "pgbouncer-sidecar", "rds-proxy"] as const;

function prodServices(): any[] {
    return YAML.parse(fs.readFileSync(path.join(FIXTURE_STACKS, "Pulumi.one-server-prod.yaml"), "utf8")).config["velure-pooling:services"];
}

/** Every ConfigMap and Secret name a pod template (a Deployment's, or a release's values) refers to. */
function referencedNames(spec: any): string[] {
    const volumes = (spec.volumes ?? spec.extraVolumes ?? []).flatMap((v: any) => [v.configMap?.name, v.secret?.secretName]);
    const containers = [...(spec.containers ?? []), ...(spec.initContainers ?? []), ...(spec.extraContainers ?? [])];
    const env = [...containers.flatMap((c: any) => c.env ?? []), ...(spec.extraEnv ?? [])].map((e: any) => e.valueFrom?.secretKeyRef?.name);
    return [...volumes, ...env].filter(Boolean);
}

describe("on a cluster that already runs other people's things", () => {
    describe("nothing a pod reads is ever replaced (a failed release would be left pointing at a deleted object)", () => {
        for (const mode of MODES_WITH_PODS) {
            it(`${mode}: every ConfigMap and Secret a pod refers to has a fixed name, so a change updates it in place`, async () => {
                const run = await runProgram(stackConfig("one-server-prod", { mode }), { autoNameSuffix: "-AUTONAMED" });
                const specs = [
                    ...run.ofType(K8S.deployment).map((d) => d.inputs.spec.template.spec),
                    ...run.ofType(K8S.release).map((r) => r.inputs.values),
                ];
                const names = specs.flatMap(referencedNames);
                assert.ok(names.length >= 2, `${mode}: pods refer to ${names.join(", ")}`);
                for (const name of names) {
                    assert.doesNotMatch(name, /AUTONAMED/, `${name} is auto-named: Pulumi would replace it on a change`);
                    const declared = [...run.ofType(K8S.configMap), ...run.ofType(K8S.secret)].filter((o) => o.inputs.metadata.name === name);
                    assert.strictEqual(declared.length, 1, `${name} is declared once, with that name`);
                }
            });
        }

        it("rolls the pods when a Secret they read changes, by its resourceVersion, never by a hash of the password", async () => {
            const run = await runProgram(stackConfig("one-server-prod", { mode: "pgbouncer-sidecar" }));
            const annotations = run.one(K8S.release, "velure-auth-service").inputs.values.podAnnotations;
            assert.strictEqual(annotations["velure-pooling/db-credentials-version"], "1", "the app's credentials Secret");
            assert.strictEqual(annotations["velure-pooling/pgbouncer-auth-version"], "1", "the sidecar's userlist Secret");
            assert.match(annotations["checksum/pgbouncer-config"], /^[0-9a-f]{64}$/);
            const cluster = await runProgram(stackConfig("one-server-dev"));
            const template = cluster.one(K8S.deployment).inputs.spec.template.metadata.annotations;
            assert.strictEqual(template["velure-pooling/pgbouncer-auth-version"], "1");
        });
    });

    it("creates with client-side apply, so that a name that exists fails instead of being taken over", async () => {
        const run = await runProgram(stackConfig("one-server-dev"));
        assert.strictEqual(run.one("pulumi:providers:kubernetes").inputs.enableServerSideApply, "false");
    });

    describe("a service's own list values are joined with the program's", () => {
        it("keeps the service's init containers, extra containers, volumes and env beside the sidecar's, the sidecar first", async () => {
            const services = prodServices();
            services[0].values = {
                initContainers: [{ name: "wait-for-queue", image: "busybox:1.36" }],
                extraContainers: [{ name: "log-shipper", image: "fluent-bit:3" }],
                extraVolumes: [{ name: "cache", emptyDir: {} }],
                extraVolumeMounts: [{ name: "cache", mountPath: "/cache" }],
                extraEnv: [{ name: "API_KEY", valueFrom: { secretKeyRef: { name: "api", key: "key" } } }],
            };
            const run = await runProgram(stackConfig("one-server-prod", { services }));
            const values = run.one(K8S.release, "velure-auth-service").inputs.values;
            assert.deepStrictEqual(values.initContainers.map((c: any) => c.name), ["pgbouncer", "wait-for-queue"]);
            assert.deepStrictEqual(values.extraContainers.map((c: any) => c.name), ["pgbouncer-exporter", "log-shipper"]);
            assert.deepStrictEqual(values.extraVolumes.map((v: any) => v.name), ["pgbouncer-config", "pgbouncer-auth", "cache"]);
            assert.deepStrictEqual(values.extraVolumeMounts, [{ name: "cache", mountPath: "/cache" }], "the mount keeps its volume");
            assert.deepStrictEqual(values.extraEnv.map((e: any) => e.name), ["POSTGRES_PASSWORD", "API_KEY"]);
        });

        it("refuses, up front, an entry that takes a name the program uses in the pod", async () => {
            const services = prodServices();
            services[1].values = {
                extraContainers: [{ name: "pgbouncer", image: "x" }],
                extraVolumes: [{ name: "rds-proxy-ca", emptyDir: {} }],
                extraEnv: [{ name: "POSTGRES_PASSWORD", value: "not shown" }],
                env: { POSTGRES_HOST: "db.example.com" },
            };
            const error = await programError(stackConfig("one-server-prod", { services }));
            assert.match(error.message, /services\[1\]\.values\.extraContainers: "pgbouncer" is not allowed; expected another name: pgbouncer is a container the program adds/);
            assert.match(error.message, /services\[1\]\.values\.extraVolumes: "rds-proxy-ca" is not allowed; expected another name/);
            assert.match(error.message, /services\[1\]\.values\.extraEnv: "POSTGRES_PASSWORD" is not allowed/);
            assert.match(error.message, /services\[1\]\.values\.env\.POSTGRES_HOST: expected no POSTGRES_HOST here: the program sets it from the pooler/);
            assert.doesNotMatch(error.message, /db\.example\.com/, "an env value is never shown");
            assert.deepStrictEqual((error as any).declaredResources, []);
        });

        it("reserves every variable the program writes into the app container, in every mode", async () => {
            for (const mode of MODES_WITH_PODS) {
                const run = await runProgram(stackConfig("one-server-prod", { mode }));
                for (const release of run.ofType(K8S.release)) {
                    const written = [...Object.keys(release.inputs.values.env), ...release.inputs.values.extraEnv.map((e: any) => e.name)];
                    for (const name of written) {
                        assert.ok((POD_NAMES.env as readonly string[]).includes(name), `${mode}: ${name} is not in POD_NAMES.env`);
                    }
                }
            }
        });
    });

    describe("a key set as a secret stays a secret", () => {
        const secretKeys = (...keys: string[]) => ["velure-pooling:databasePassword", ...keys.map((k) => `velure-pooling:${k}`)];

        it("services: the releases' values and the services output are secrets, and every run says what cannot be", async () => {
            const services = prodServices();
            services[0].values = { env: { API_KEY: "api-K3y-0042" } };
            const run = await runProgram(stackConfig("one-server-prod", { services }), { secretKeys: secretKeys("services") });
            for (const release of run.ofType(K8S.release)) {
                assert.ok(isWrappedSecret(release.raw.values), `${release.name}: the values are a secret`);
            }
            for (const resource of run.resources.filter((r) => r.type !== K8S.release)) {
                assert.ok(!JSON.stringify(resource.raw).includes("api-K3y-0042"), `${resource.type} ${resource.name} holds the service's value`);
            }
            assert.match(run.warnings.join("\n"), /services: set as a secret, so the releases' values and the services output are secret; the service names, namespaces and databases are not/);
            const plain = await runProgram(stackConfig("one-server-prod", { services }));
            assert.ok(!isWrappedSecret(plain.one(K8S.release, "velure-auth-service").raw.values), "without --secret they stay plain");
        });

        it("a key the program writes in the clear is refused when set as a secret, and its value is never shown", async () => {
            const error = await programError(stackConfig("one-server-dev", { databaseMaxConnections: 77, pgbouncerSettings: { server_lifetime: 1800 } }), {
                secretKeys: secretKeys("databaseMaxConnections", "pgbouncerSettings"),
            });
            assert.match(error.message, /velure-pooling:databaseMaxConnections: set as a secret, which the program cannot keep/);
            assert.match(error.message, /velure-pooling:pgbouncerSettings: set as a secret/);
            assert.match(error.message, /Keys that may be secrets: databasePassword, databasePasswords, kubeconfig, kubernetesContext, services/);
            const bad = await programError(stackConfig("one-server-prod", { services: [{ name: "x", database: "d", namespace: "Bad Namespace", replicas: 1, image: { repository: "r", tag: "1" } }] }), {
                secretKeys: secretKeys("services"),
            });
            assert.match(bad.message, /services\[0\]\.namespace: the value \(not shown: a secret\) is not allowed/);
            assert.doesNotMatch(bad.message, /Bad Namespace/);
        });

        it("kubeconfig and kubernetesContext: the provider gets them as secrets", async () => {
            const file = writeKubeconfig(["arn:aws:eks:us-east-1:123456789012:cluster/velure"]);
            const run = await runProgram(stackConfig("one-server-dev", { kubeconfig: file, kubernetesContext: "arn:aws:eks:us-east-1:123456789012:cluster/velure" }), {
                secretKeys: secretKeys("kubeconfig", "kubernetesContext"),
            });
            const provider = run.one("pulumi:providers:kubernetes").raw;
            assert.ok(isWrappedSecret(provider.kubeconfig) && isWrappedSecret(provider.context));
            assert.ok(!JSON.stringify(run.outputs).includes(PASSWORD_TOKEN));
        });
    });

    describe("the kubeconfig context", () => {
        it("refuses a context the kubeconfig lacks, with the contexts it has and what `aws eks update-kubeconfig` names them", async () => {
            const file = writeKubeconfig(["arn:aws:eks:us-east-1:123456789012:cluster/velure-dev", "kind-local"]);
            const error = await programError(stackConfig("one-server-dev", { kubeconfig: file, kubernetesContext: "velure-dev" }));
            assert.match(
                error.message,
                new RegExp(
                    `kubernetesContext: "velure-dev" is not allowed; expected a context of ${file.replace(/[.]/g, "\\.")} \\(it has: arn:aws:eks:us-east-1:123456789012:cluster/velure-dev, kind-local\\), ` +
                        "or empty for its current context\\. `aws eks update-kubeconfig --name <cluster>` names the context by the cluster's ARN",
                ),
            );
            const ok = await runProgram(stackConfig("one-server-dev", { kubeconfig: file, kubernetesContext: "kind-local" }));
            assert.strictEqual(ok.one("pulumi:providers:kubernetes").inputs.context, "kind-local");
        });

        it("reads contexts from the key's contents, $KUBECONFIG's files, or ~/.kube/config, as kubectl does", () => {
            const a = writeKubeconfig(["a"]);
            const b = writeKubeconfig(["b"]);
            assert.deepStrictEqual(readKubeconfigContexts({ env: `${a}${path.delimiter}${b}`, isContents: false }).contexts, ["a", "b"]);
            assert.deepStrictEqual(readKubeconfigContexts({ given: fs.readFileSync(a, "utf8"), isContents: true }).contexts, ["a"]);
            assert.throws(() => readKubeconfigContexts({ isContents: false, home: path.join(os.tmpdir(), "no-such-home") }), /no kubeconfig at .*no-such-home\/\.kube\/config/);
        });
    });

    describe("monitoring's prerequisites", () => {
        it("refuses, before anything is declared in the cluster, a monitoringNamespace or an Operator CRD the cluster lacks", async () => {
            const error = await programError(stackConfig("one-server-dev", { monitoringPrometheusOperator: true, monitoringSelectorLabels: { release: "kube-prometheus-stack" } }), {
                missingObjects: ["kubernetes:core/v1:Namespace/monitoring", "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition/servicemonitors.monitoring.coreos.com"],
            });
            assert.match(error.message, /velure-pooling:monitoringNamespace: namespace monitoring was not found in the cluster .*the program never creates \(nor deletes\) Prometheus's namespace/);
            assert.match(error.message, /velure-pooling:monitoringPrometheusOperator: CustomResourceDefinition servicemonitors\.monitoring\.coreos\.com was not found/);
            assert.deepStrictEqual((error as any).declaredResources.map((r: any) => r.type), ["pulumi:providers:kubernetes"], "only the provider");
        });

        it("reads them under names that say which key needs them (the engine's own error names the read)", async () => {
            const run = await runProgram(stackConfig("one-server-prod", { monitoringPrometheusOperator: true, monitoringSelectorLabels: { release: "kps" } }));
            assert.deepStrictEqual(run.reads.map((r) => `${r.name} → ${r.id}`).sort(), [
                "required-by-monitoringNamespace → monitoring",
                "required-by-monitoringPrometheusOperator-podmonitors.monitoring.coreos.com → podmonitors.monitoring.coreos.com",
                "required-by-monitoringPrometheusOperator-prometheusrules.monitoring.coreos.com → prometheusrules.monitoring.coreos.com",
            ]);
            const off = await runProgram(stackConfig("one-server-prod", { monitoringExporter: false }));
            assert.deepStrictEqual(off.reads, [], "without the exporter, nothing in monitoringNamespace is needed");
        });

        it("labels the Operator's objects for the Prometheus that selects them, and warns when nothing would select them", async () => {
            const labelled = await runProgram(stackConfig("one-server-dev", { monitoringPrometheusOperator: true, monitoringSelectorLabels: { release: "kube-prometheus-stack" } }));
            for (const monitor of labelled.ofType("kubernetes:monitoring.coreos.com/v1:ServiceMonitor").concat(labelled.ofType("kubernetes:monitoring.coreos.com/v1:PrometheusRule"))) {
                assert.strictEqual(monitor.inputs.metadata.labels.release, "kube-prometheus-stack", monitor.name);
            }
            assert.ok(!labelled.warnings.some((w) => w.startsWith("monitoringSelectorLabels")));
            const unlabelled = await runProgram(stackConfig("one-server-prod", { monitoringPrometheusOperator: true }));
            assert.strictEqual(unlabelled.ofType("kubernetes:monitoring.coreos.com/v1:PodMonitor").length, 2);
            assert.match(unlabelled.warnings.join("\n"), /monitoringSelectorLabels: empty, while monitoringPrometheusOperator is true/);
            const bad = await programError(stackConfig("one-server-dev", { monitoringSelectorLabels: { "bad key!": "x" } }));
            assert.match(bad.message, /monitoringSelectorLabels\.bad key!: "x" is not allowed; expected a Kubernetes label/);
        });
    });

    describe("Helm's wait and the HPA's limits follow the rollout", () => {
        it("gives each release the time of its rollout at the HPA's maximum, one pod per grace period", async () => {
            const slow = await runProgram(stackConfig("one-server-prod", { appDrainSeconds: 60 }));
            const release = slow.one(K8S.release, "velure-auth-service").inputs;
            // 8 pods × (60 s to start + minReadySeconds 70) + 120 s.
            assert.strictEqual(release.values.minReadySeconds, 70);
            assert.strictEqual(release.timeout, 8 * (60 + 70) + 120);
            const central = await runProgram(stackConfig("one-server-dev"));
            assert.strictEqual(central.one(K8S.release, "velure-auth-service").inputs.timeout, 600, "a rollout without minReadySeconds keeps the 10 minutes");
        });

        it("refuses an appDrainSeconds whose grace period the HPA's scale-down policy cannot take (periodSeconds at most 1800)", async () => {
            await runProgram(stackConfig("one-server-prod", { appDrainSeconds: 1790 }));
            const error = await programError(stackConfig("one-server-prod", { appDrainSeconds: 1791 }));
            assert.match(error.message, /appDrainSeconds: 1791 is not allowed; expected at most 1790: the grace period \(appDrainSeconds \+ 10\) is the sidecar HPA's scale-down periodSeconds/);
        });
    });

    describe("the budget counts every pod that can hold a pool", () => {
        it("sidecar: a PodDisruptionBudget per service bounds evictions to one pod at a time, counted as one evicted pod", async () => {
            const run = await runProgram(stackConfig("one-server-prod"));
            const pdbs = run.ofType(K8S.pdb);
            assert.deepStrictEqual(
                pdbs.map((p) => [p.inputs.metadata.namespace, p.inputs.spec.maxUnavailable, p.inputs.spec.selector.matchLabels["app.kubernetes.io/instance"]]),
                [["velure", 1, "velure-auth-service"], ["velure", 1, "velure-publish-order-service"]],
            );
            assert.match(run.outputs.connectionBudget[0].lines[0].formula, /^\(8 max pods \+ 1 surge \+ 1 draining \+ 1 evicted\)/);
            assert.match(EVICTION_BOUND, /not bounded at all/, "what the term cannot bound is said");
        });

        it("within a mode, shrinking the pools while adding replicas counts the larger pods at the larger pool", async () => {
            const deployed = await runProgram(stackConfig("one-server-dev", { databaseMaxConnections: 120 }));
            const error = await programError(stackConfig("one-server-dev", { databaseMaxConnections: 120, pgbouncerReplicas: 5, pgbouncerDefaultPoolSize: 4 }), {
                deployedOutputs: deployed.outputs,
            });
            // Alone, the new config fits: (5 + 3) × 5 × 2 = 80 of 110. Beside the deployed pods' pools of 7: (5 + 3) × 7 × 2 = 112.
            assert.match(error.message, /during this update of pgbouncer-cluster, the deployed and the new pods together can open 112 server connections to the primary, but it allows 110/);
            assert.match(error.message, /pgbouncer → velure_auth: max\(5, 8\) pods × max\(7, 5\) per pod/);
            assert.match(error.message, /acceptSwitchOverBudget pgbouncer-cluster->pgbouncer-cluster/);
            const accepted = await runProgram(
                stackConfig("one-server-dev", { databaseMaxConnections: 120, pgbouncerReplicas: 5, pgbouncerDefaultPoolSize: 4, acceptSwitchOverBudget: "pgbouncer-cluster->pgbouncer-cluster" }),
                { deployedOutputs: deployed.outputs },
            );
            assert.match(accepted.warnings.join("\n"), /accepted for this update/);
        });

        it("within a mode, a new namespace or name is a second generation: both count until the old one is gone", async () => {
            const deployed = await runProgram(stackConfig("one-server-dev"));
            const moved = await programError(stackConfig("one-server-dev", { pgbouncerNamespace: "velure-pooler" }), { deployedOutputs: deployed.outputs });
            assert.match(moved.message, /the deployed and the new pods together can open 140 server connections to the primary, but it allows 70/);
            assert.match(moved.message, /deployed: pgbouncer → velure_auth: \(2 replicas/);
            const sidecars = await runProgram(stackConfig("one-server-prod", { mode: "pgbouncer-sidecar" }));
            const services = prodServices();
            services[0].namespace = "authentication";
            const budget = transitionBudget(
                { mode: "pgbouncer-sidecar", budget: sidecars.outputs.connectionBudget },
                { mode: "pgbouncer-sidecar", budget: (await runProgram(stackConfig("one-server-prod", { services, createServiceNamespaces: true }))).outputs.connectionBudget },
            );
            assert.deepStrictEqual(
                budget[0].lines.map((l) => [l.name, l.connections]),
                [["auth-service", 132], ["publish-order-service", 132], ["deployed: auth-service", 132]],
            );
        });

        it("refuses a switch it cannot check (outputs of this program with a budget of another shape), unless accepted", async () => {
            const outputs = { mode: "pgbouncer-sidecar", connectionBudget: { total: 3 } };
            const error = await programError(stackConfig("one-server-dev"), { deployedOutputs: outputs });
            assert.match(error.message, /cannot check the switch from pgbouncer-sidecar to pgbouncer-cluster: the stack's last outputs say mode pgbouncer-sidecar, but its connectionBudget output is missing or of another shape/);
            const accepted = await runProgram(stackConfig("one-server-dev", { acceptSwitchOverBudget: "pgbouncer-sidecar->pgbouncer-cluster" }), { deployedOutputs: outputs });
            assert.match(accepted.warnings.join("\n"), /this update's worst case beside the deployed pods is not checked/);
            const foreign = await runProgram(stackConfig("one-server-dev"), { deployedOutputs: { url: "https://example.com" } });
            assert.strictEqual(foreign.outputs.mode, "pgbouncer-cluster", "outputs without a mode are not this program's: nothing to check");
            const otherMode = await runProgram(stackConfig("one-server-dev"), { deployedOutputs: { mode: "pgpool" } });
            assert.match(otherMode.warnings.join("\n"), /the stack's last outputs have a mode "pgpool", none of rds-proxy, pgbouncer-cluster, pgbouncer-sidecar: nothing deployed is counted/);
        });
    });

    describe("the stack's own last outputs, on every backend layout", () => {
        it("falls back to the bare stack name on a file backend in the legacy layout, and still checks the switch", async () => {
            const deployed = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-sidecar" }));
            const error = await programError(stackConfig("one-server-dev"), { deployedOutputs: deployed.outputs, backendLayout: "legacy" });
            assert.match(error.message, /during the switch from pgbouncer-sidecar to pgbouncer-cluster, the two poolers together/);
        });

        it("ends the run, naming both names tried, when the backend refuses them", async () => {
            const error = await programError(stackConfig("one-server-dev", {}), { backendLayout: "none", stack: "dev" });
            assert.match(error.message, /reads the stack's own last outputs to check a switch of mode, and the backend refused both names:\n {2}organization\/velure-pooling\/dev: .*\n {2}dev: /);
        });

        it("declares no resource to read them (no StackReference in the state)", async () => {
            const run = await runProgram(stackConfig("one-server-dev"));
            assert.strictEqual(run.resources.filter((r) => r.type === "pulumi:pulumi:StackReference").length, 0);
        });
    });

    describe("rds-proxy: no release moves onto a proxy that does not serve yet", () => {
        it("declares, per service, a Job that logs in through the proxy as the service does, in the service's namespace", async () => {
            const run = await runProgram(stackConfig("one-server-prod", { mode: "rds-proxy" }));
            const jobs = run.ofType("kubernetes:batch/v1:Job");
            assert.deepStrictEqual(jobs.map((j) => [j.name, j.inputs.metadata.namespace]), [
                ["velure-auth-service-rds-proxy-check-job", "velure"],
                ["velure-publish-order-service-rds-proxy-check-job", "velure"],
            ]);
            const pod = jobs[0].inputs.spec.template.spec;
            assert.deepStrictEqual([jobs[0].inputs.spec.backoffLimit, pod.restartPolicy, pod.containers[0].image], [0, "Never", "ghcr.io/icoretech/pgbouncer-docker:1.26.0"]);
            assert.deepStrictEqual(pod.volumes, [{ name: "rds-proxy-ca", configMap: { name: "velure-auth-service-rds-proxy-trust-ca", defaultMode: 0o444 } }]);
            assert.strictEqual(pod.containers[0].securityContext.runAsNonRoot, true, "it runs under the namespace's restricted Pod Security");
            assert.ok(!JSON.stringify(jobs[0].raw).includes(PASSWORD_TOKEN), "the password comes from the Secret");
        });

        it("with IAM auth required, checks nothing (a password cannot log in) and says so on every run", async () => {
            const run = await runProgram(stackConfig("one-server-prod", { mode: "rds-proxy", rdsIamAuth: "REQUIRED" }));
            assert.strictEqual(run.ofType("kubernetes:batch/v1:Job").length, 0);
            assert.match(run.warnings.join("\n"), /rdsIamAuth: REQUIRED, so the program cannot log in through the proxy/);
        });
    });

    it("the central PgBouncer reaches DNS only at the cluster's DNS pods, and warns while its database egress is open", async () => {
        const run = await runProgram(stackConfig("one-server-dev"));
        const dns = run.one(K8S.networkPolicy).inputs.spec.egress.find((e: any) => e.ports.some((p: any) => p.port === 53));
        assert.deepStrictEqual(dns.to, [CLUSTER_DNS_PEER]);
        assert.deepStrictEqual(CLUSTER_DNS_PEER.podSelector.matchLabels, { "k8s-app": "kube-dns" });
        assert.match(run.warnings.join("\n"), /databaseCidrs: empty, so the central PgBouncer's NetworkPolicy lets it reach port 5432 on any address/);
        const narrowed = await runProgram(stackConfig("one-server-dev", { databaseCidrs: ["10.20.0.0/16"] }));
        assert.ok(!narrowed.warnings.some((w) => w.startsWith("databaseCidrs")));
    });
});

/** A kubeconfig file with these contexts, in a scratch folder. */
function writeKubeconfig(contexts: string[]): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "velure-kubeconfig-"));
    const file = path.join(dir, "config");
    const kubeconfig = {
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443" } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: contexts.map((name) => ({ name, context: { cluster: "c", user: "u" } })),
        "current-context": contexts[0],
    };
    fs.writeFileSync(file, YAML.stringify(kubeconfig));
    return file;
}
