// How each service's chart takes its database connection (services[].connection): the env contract of the shipped
// chart, or a URL in the Secret velure's own charts read (urlSecret), with the pooler put into their pods by a Helm
// post-renderer. The real Helm renders of every stack × mode are in tests/e2e/helm.test.ts.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { postgresUrl, postgresUrlTemplate } from "../../components/connectionUrl";
import { PodPatch, postRender } from "../../services/postRender";
import { K8S, PASSWORD, ProgramRun, ROOT, declaredUrl, isWrappedSecret, postRenderPatch, programError, runProgram, stackConfig } from "./harness";

const TARGET = { user: "velure_admin", host: "pgbouncer.velure-db-auth.svc.cluster.local", port: 5432, database: "velure_auth", sslmode: "disable" };

/** Go's url.QueryEscape, as ESO's `urlquery` applies it (bytes other than A-Z a-z 0-9 - _ . ~ encoded, space as "+"). */
function goQueryEscape(value: string): string {
    return [...Buffer.from(value, "utf8")]
        .map((b) => {
            const c = String.fromCharCode(b);
            if (/[A-Za-z0-9\-_.~]/.test(c)) {
                return c;
            }
            return c === " " ? "+" : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
        })
        .join("");
}

/** The template as ESO renders it: the password through urlquery, then `replace "+" "%20"`. */
function renderAsEso(template: string, password: string): string {
    return template.replace('{{ .password | urlquery | replace "+" "%20" }}', goQueryEscape(password).replace(/\+/g, "%20"));
}

/** The shipped fixture chart's objects as Helm renders them by default (replicas 2, no HPA), in YAML. */
function fixtureManifests(): string {
    const deployment = {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "velure-auth" },
        spec: {
            selector: { matchLabels: { "app.kubernetes.io/instance": "velure-auth" } },
            template: {
                metadata: { labels: { "app.kubernetes.io/instance": "velure-auth", "app.kubernetes.io/name": "url-service" }, annotations: { "rolled-at": "x" } },
                spec: {
                    securityContext: { fsGroup: 65532 },
                    containers: [
                        {
                            name: "url-service",
                            ports: [{ containerPort: 3020 }],
                            env: [{ name: "POSTGRES_URL", valueFrom: { secretKeyRef: { name: "velure-auth-postgres", key: "url" } } }],
                            volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
                        },
                    ],
                    volumes: [{ name: "tmp", emptyDir: {} }],
                },
            },
        },
    };
    const hpa = { apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", metadata: { name: "velure-auth" }, spec: { scaleTargetRef: { kind: "Deployment", name: "velure-auth" } } };
    const pdb = { apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name: "velure-auth-pdb" }, spec: { minAvailable: 1, selector: { matchLabels: { "app.kubernetes.io/instance": "velure-auth" } } } };
    return [deployment, hpa, pdb].map((o) => YAML.stringify(o)).join("---\n");
}

const URL_KEY = { secretName: "velure-auth-postgres", key: "url", target: "velure-auth-pooler-url", modeKey: "url.pgbouncer-sidecar" };

function rendered(patch: PodPatch, manifests = fixtureManifests()): any[] {
    return YAML.parseAllDocuments(postRender("authentication/velure-auth", manifests, patch)).map((d) => d.toJS());
}

describe("connection URLs", () => {
    it("percent-encodes the user, the password and the database, and keeps the CA path readable", () => {
        const password = 'p@ss:w/rd?#% +"\'é';
        const url = new URL(postgresUrl({ ...TARGET, sslmode: "verify-full", sslrootcert: "/etc/velure/rds-proxy-ca/ca.pem" }, password));
        assert.strictEqual(decodeURIComponent(url.password), password);
        assert.strictEqual(url.username, "velure_admin");
        assert.strictEqual(url.host, "pgbouncer.velure-db-auth.svc.cluster.local:5432");
        assert.strictEqual(url.pathname, "/velure_auth");
        assert.strictEqual(url.searchParams.get("sslrootcert"), "/etc/velure/rds-proxy-ca/ca.pem");
        assert.match(url.search, /sslrootcert=\/etc\/velure\//);
    });

    it("as an ESO template, renders to the URL that the program itself would write, for any password", () => {
        const template = postgresUrlTemplate(TARGET);
        assert.strictEqual(template, 'postgres://velure_admin:{{ .password | urlquery | replace "+" "%20" }}@pgbouncer.velure-db-auth.svc.cluster.local:5432/velure_auth?sslmode=disable');
        for (const password of ["plain", 'sm-Auth P4ss+"q"@/?#%', "a+b c", "ü~*'()!"]) {
            const url: URL = new URL(renderAsEso(template, password));
            assert.strictEqual(decodeURIComponent(url.password), password, `${password} survives`);
        }
    });
});

describe("the post-renderer (services/postRender.ts)", () => {
    const sidecar: PodPatch = {
        initContainers: [{ name: "pgbouncer", image: "pgbouncer:1.26.0", ports: [{ containerPort: 6432 }] }],
        extraContainers: [{ name: "pgbouncer-exporter", image: "exporter" }],
        extraVolumes: [{ name: "pgbouncer-config", configMap: { name: "c" } }],
        podAnnotations: { "checksum/pgbouncer-config": "abc" },
        podSecurityContext: { fsGroup: 70 },
        terminationGracePeriodSeconds: 45,
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        minReadySeconds: 45,
        autoscaling: { behavior: { scaleDown: { policies: [{ type: "Pods", value: 1, periodSeconds: 45 }] } } },
        ownDisruptionBudget: { "app.kubernetes.io/instance": "velure-auth" },
        urlKey: URL_KEY,
    };

    it("puts the sidecar, its volumes and the rollout into the chart's Deployment, scales its HPA down one pod at a time, and drops the chart's PDB", () => {
        const [deployment, hpa, ...rest] = rendered(sidecar);
        const pod = deployment.spec.template.spec;
        assert.deepStrictEqual(pod.initContainers.map((c: any) => c.name), ["pgbouncer"]);
        assert.deepStrictEqual(pod.containers.map((c: any) => c.name), ["url-service", "pgbouncer-exporter"]);
        assert.deepStrictEqual(pod.volumes.map((v: any) => v.name), ["tmp", "pgbouncer-config"]);
        assert.strictEqual(pod.securityContext.fsGroup, 65532, "the chart's fsGroup stays: it is every container's supplementary group");
        assert.strictEqual(pod.terminationGracePeriodSeconds, 45);
        assert.deepStrictEqual(deployment.spec.template.metadata.annotations, { "rolled-at": "x", "checksum/pgbouncer-config": "abc" });
        assert.deepStrictEqual([deployment.spec.strategy.rollingUpdate, deployment.spec.minReadySeconds], [{ maxSurge: 1, maxUnavailable: 0 }, 45]);
        assert.deepStrictEqual(hpa.spec.behavior, sidecar.autoscaling?.behavior);
        assert.deepStrictEqual(rest, [], "the chart's PDB is gone: Kubernetes refuses to evict a pod that two budgets select");
        assert.deepStrictEqual(pod.containers[0].env[0].valueFrom.secretKeyRef, { name: "velure-auth-pooler-url", key: "url.pgbouncer-sidecar" }, "the app reads its mode's key of the program's Secret");
        assert.ok(!JSON.stringify(deployment).includes("velure-auth-postgres"), "nothing in the pod reads the chart's own Secret any more");
    });

    it("labels the pods as the sidecar's PDB and PodMonitor select them when the chart does not (velure-publish-order: app only), and refuses another value", () => {
        const ownDisruptionBudget = { "app.kubernetes.io/instance": "velure-publish-order" };
        const orderLike = fixtureManifests().replace(/app\.kubernetes\.io\/instance: velure-auth\n/g, "app: velure-publish-order\n");
        const [deployment] = rendered({ ...sidecar, ownDisruptionBudget }, orderLike);
        assert.deepStrictEqual(deployment.spec.selector.matchLabels, { app: "velure-publish-order" }, "the selector stays");
        assert.strictEqual(deployment.spec.template.metadata.labels["app.kubernetes.io/instance"], "velure-publish-order");
        assert.throws(
            () => postRender("order/velure-publish-order", fixtureManifests(), { ...sidecar, ownDisruptionBudget }),
            /the chart labels its pods app\.kubernetes\.io\/instance=velure-auth, but the sidecar's PodDisruptionBudget and PodMonitor select app\.kubernetes\.io\/instance=velure-publish-order/,
        );
    });

    it("keeps the chart's PDB beside a pooler that declares none, and mounts the CA into the chart's containers", () => {
        const objects = rendered({ extraVolumes: [{ name: "rds-proxy-ca", configMap: { name: "ca" } }], extraVolumeMounts: [{ name: "rds-proxy-ca", mountPath: "/etc/velure/rds-proxy-ca" }], urlKey: URL_KEY });
        assert.deepStrictEqual(objects.map((o) => o.kind), ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"]);
        assert.deepStrictEqual(objects[0].spec.template.spec.containers[0].volumeMounts.map((m: any) => m.name), ["tmp", "rds-proxy-ca"]);
    });

    it("refuses, naming the release and the fix: no Deployment or two, a name or port the chart already uses, hostNetwork, a URL the chart does not read", () => {
        const refuses = (patch: PodPatch, manifests: string, message: RegExp) => assert.throws(() => postRender("authentication/velure-auth", manifests, patch), message);
        const [deployment] = YAML.parseAllDocuments(fixtureManifests()).map((d) => d.toJS());
        const twice = [deployment, { ...deployment, metadata: { name: "worker" } }].map((o) => YAML.stringify(o)).join("---\n");
        refuses(sidecar, twice, /authentication\/velure-auth: expected the chart to render exactly one Deployment .*found velure-auth, worker/);
        refuses(sidecar, "kind: Service\nmetadata: {name: x}\n", /exactly one Deployment .*found none/);
        refuses({ ...sidecar, extraContainers: [{ name: "url-service", image: "x" }] }, fixtureManifests(), /already has containers url-service, which the pooler adds/);
        refuses({ ...sidecar, initContainers: [{ name: "pgbouncer", image: "x", ports: [{ containerPort: 3020 }] }] }, fixtureManifests(), /already listens on port 3020.*pgbouncerSidecarPort/);
        refuses({ ...sidecar, extraVolumes: [{ name: "tmp" }] }, fixtureManifests(), /already has volumes tmp/);
        deployment.spec.template.spec.hostNetwork = true;
        refuses(sidecar, YAML.stringify(deployment), /uses hostNetwork.*use mode pgbouncer-cluster/);
        refuses({ ...sidecar, urlKey: { ...URL_KEY, secretName: "other" } }, fixtureManifests(), /no container of the chart's pod reads key url of Secret other, which services\[\]\.connection names/);
    });
});

describe("services[].connection and services[].release", () => {
    const prodServices = () => JSON.parse(stackConfig("prod")["velure-pooling:services"]);

    it("refuses a bad contract, Secret name or key, a read key without a replica, a bad release name, naming each key", async () => {
        const services = prodServices();
        services[0].connection = { contract: "url" };
        services[1].connection = { contract: "urlSecret", secretName: "Bad_Name", key: "u rl", readKey: "read-url" };
        services[1].release = "Velure";
        const error = await programError(stackConfig("prod", { services }));
        assert.match(error.message, /services\[0\]\.connection\.contract: "url" is not allowed; expected \{contract: "env"\} or \{contract: "urlSecret", secretName, key\?, readKey\?\}/);
        assert.match(error.message, /services\[1\]\.connection\.secretName: "Bad_Name" is not allowed; expected the name of the Secret the chart reads/);
        assert.match(error.message, /services\[1\]\.connection\.key: "u rl" is not allowed; expected a Secret key/);
        assert.match(error.message, /services\[1\]\.connection\.readKey: "read-url" is not allowed; expected no readKey: the service's server has no read replica/);
        assert.match(error.message, /services\[1\]\.release: "Velure" is not allowed; expected a Helm release name/);
    });

    it("refuses a chart Secret that is one of the program's own, and lets two services read one chart Secret (the program writes neither)", async () => {
        const ours = prodServices();
        ours[0].connection.secretName = "velure-auth-pooler-url";
        const own = await programError(stackConfig("prod", { services: ours }));
        assert.match(own.message, /services\[0\]\.connection\.secretName: "velure-auth-pooler-url" is not allowed; expected the Secret the chart reads, which the program never writes: authentication\/velure-auth-pooler-url is the program's own Secret for services\[0\]/);
        ours[0].connection.secretName = "velure-auth-db-credentials";
        assert.match((await programError(stackConfig("prod", { services: ours }))).message, /authentication\/velure-auth-db-credentials is the program's own Secret for services\[0\]/);
        const shared = prodServices();
        shared[1].namespace = "authentication";
        shared[1].connection.secretName = "velure-auth-postgres";
        const run = await runProgram(stackConfig("prod", { services: shared }));
        assert.deepStrictEqual(run.ofType(K8S.externalSecret).map((e) => e.inputs.spec.target.name).filter((n: string) => n.endsWith("-pooler-url")).sort(), ["velure-auth-pooler-url", "velure-publish-order-pooler-url"]);
    });

    for (const mode of ["pgbouncer-cluster", "pgbouncer-sidecar", "rds-proxy", "pgbouncer-cluster with databasePasswords"]) {
        it(`prod × ${mode}: no object of the program writes, nor names, the Secret a chart reads; every Secret has one writer`, async () => {
            const passwords = mode.endsWith("databasePasswords");
            const servers = JSON.parse(stackConfig("prod")["velure-pooling:databaseServers"]).map(({ secretsManagerSecret: _s, ...rest }: any) => rest);
            const run = await runProgram(
                passwords
                    ? stackConfig("prod", { databaseServers: servers, databasePasswords: { auth: PASSWORD, orders: PASSWORD } })
                    : stackConfig("prod", { mode }),
            );
            const writes = [
                ...run.ofType(K8S.secret).map((r) => `${r.inputs.metadata.namespace}/${r.inputs.metadata.name}`),
                ...run.ofType(K8S.externalSecret).map((r) => `${r.inputs.metadata.namespace}/${r.inputs.spec.target.name}`),
            ];
            assert.deepStrictEqual(writes.filter((w, i) => writes.indexOf(w) !== i), [], "no Secret that two of the program's objects write");
            for (const chartSecret of ["authentication/velure-auth-postgres", "order/order-database"]) {
                assert.ok(!writes.includes(chartSecret), `${chartSecret} is velure's External Secrets Operator's alone`);
            }
        });
    }

    for (const mode of ["pgbouncer-cluster", "pgbouncer-sidecar", "rds-proxy"]) {
        it(`prod × ${mode}: velure's releases by their own names, their Secret's URL at the pooler under the mode's key, a post-renderer, the contract in the outputs`, async () => {
            const run = await runProgram(stackConfig("prod", { mode }));
            for (const [name, namespace, secret] of [["velure-auth", "authentication", "velure-auth-postgres"], ["velure-publish-order", "order", "order-database"]]) {
                const release = run.one(K8S.release, name);
                assert.strictEqual(release.inputs.namespace, namespace);
                assert.strictEqual(release.inputs.values.env, undefined, "velure's chart has no env map");
                const patch = postRenderPatch(release);
                assert.deepStrictEqual(patch.urlKey, { secretName: secret, key: "url", target: `${name}-pooler-url`, modeKey: `url.${mode}` });
                assert.deepStrictEqual(patch.ownDisruptionBudget, mode === "pgbouncer-sidecar" ? { "app.kubernetes.io/instance": name } : undefined, "what the sidecar's PDB selects");
                assert.strictEqual(Boolean(patch.initContainers?.some((c) => c.name === "pgbouncer")), mode === "pgbouncer-sidecar");
                assert.strictEqual(Boolean(patch.extraVolumeMounts?.some((m) => m.name === "rds-proxy-ca")), mode === "rds-proxy");
                const external = run.one(K8S.externalSecret, `${name}-pooler-url`).inputs;
                assert.deepStrictEqual([external.metadata.name, external.metadata.namespace, external.spec.target.name], [`${name}-pooler-url`, namespace, `${name}-pooler-url`]);
                const keys = external.spec.target.template.data;
                assert.deepStrictEqual(Object.keys(keys), [`url.${mode}`], "the mode's URL only: the chart's own key is in velure's Secret");
                const service = Object.values<any>(run.outputs.services).find((s) => s.release === name);
                assert.deepStrictEqual(service.connection, { contract: "urlSecret", secret: `${namespace}/${name}-pooler-url`, key: "url", chartSecret: `${namespace}/${secret}` });
                const url = new URL(keys[`url.${mode}`].replace(/\{\{[^}]*\}\}/, "x"));
                assert.deepStrictEqual([url.hostname, url.port], [service.host, String(service.port)]);
            }
        });
    }

    it("while a switch is deployed, keeps the deployed mode's key with its URL for the pods still on it", async () => {
        const sidecars = await runProgram(stackConfig("dev"));
        const run = await runProgram(stackConfig("dev", { mode: "pgbouncer-cluster" }), { deployedOutputs: sidecars.outputs });
        const external = run.one(K8S.externalSecret, "velure-auth-pooler-url").inputs;
        const keys = external.spec.target.template.data;
        assert.deepStrictEqual(Object.keys(keys).sort(), ["url.pgbouncer-cluster", "url.pgbouncer-sidecar"]);
        assert.match(keys["url.pgbouncer-sidecar"], /@127\.0\.0\.1:6432\/velure_auth\?sslmode=disable$/);
        assert.match(keys["url.pgbouncer-cluster"], /@pgbouncer\.velure-db-auth\.svc\.cluster\.local:5432\//);
    });

    it("with the password a Pulumi secret, writes its own URL Secret itself, a secret, the password percent-encoded", async () => {
        const run: ProgramRun = await runProgram(stackConfig("one-server-dev", { services: withUrlContract() }));
        const secret = run.one(K8S.secret, "velure-auth-service-pooler-url");
        assert.ok(isWrappedSecret(secret.raw.stringData));
        assert.strictEqual(secret.inputs.metadata.name, "velure-auth-service-pooler-url");
        const url = declaredUrl(run, run.one(K8S.release, "velure-auth-service"));
        assert.strictEqual(url.hostname, "pgbouncer.velure-db.svc.cluster.local");
        assert.strictEqual(decodeURIComponent(new URL(secret.inputs.stringData["url.pgbouncer-cluster"]).password), PASSWORD);
    });

    it("the shipped chart's env contract names the database as auth-service reads it too (POSTGRES_DATABASE_NAME)", async () => {
        const run = await runProgram(stackConfig("one-server-dev"));
        const env = run.one(K8S.release, "velure-auth-service").inputs.values.env;
        assert.deepStrictEqual([env.POSTGRES_DB, env.POSTGRES_DATABASE_NAME], ["velure_auth", "velure_auth"]);
        assert.strictEqual(run.one(K8S.release, "velure-auth-service").inputs.postrender, undefined, "the shipped chart takes the pooler through its values");
    });

    it("the fixture chart has the contract the stacks' comments give velure's charts", () => {
        const chart = path.join(ROOT, "tests", "fixtures", "charts", "url-service");
        const deployment = fs.readFileSync(path.join(chart, "templates", "deployment.yaml"), "utf8");
        assert.match(deployment, /name: POSTGRES_URL\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: \{\{ include "url-service.databaseSecret" \. \}\}\n\s+key: url/);
        assert.match(deployment, /readOnlyRootFilesystem: true/);
        assert.doesNotMatch(deployment, /extraContainers|initContainers|extraVolumes|extraEnv|\.Values\.env/);
    });
});

/** one-server-dev with auth-service on the urlSecret contract and the fixture chart. */
function withUrlContract(): unknown[] {
    const services = JSON.parse(stackConfig("one-server-dev")["velure-pooling:services"]);
    services[0].connection = { contract: "urlSecret", secretName: "velure-auth-postgres" };
    services[0].chart = { path: "tests/fixtures/charts/url-service" };
    return services;
}
