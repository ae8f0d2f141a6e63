// velure's two database servers (the project's stacks): each with its own host, user, credentials and budget,
// in every mode, and every way to get a server wrong refused before anything is declared.
import * as assert from "assert";
import { K8S, PASSWORD, PASSWORD_TOKEN, ProgramRun, declaredUrl, isWrappedSecret, programError, runProgram, stackConfig, wiredAddress } from "./harness";

const EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret";
const prodServers = () => JSON.parse(stackConfig("prod")["velure-pooling:databaseServers"]) as any[];
const prodServices = () => JSON.parse(stackConfig("prod")["velure-pooling:services"]) as any[];
const ARN = { auth: prodServers()[0].secretsManagerSecret as string, orders: prodServers()[1].secretsManagerSecret as string };

/** prod with the orders server's password given to Pulumi (databasePasswords.orders) instead of Secrets Manager. */
function ordersPasswordInPulumi(overrides: Record<string, unknown> = {}) {
    const servers = prodServers().map(({ secretsManagerSecret, ...s }) => (s.name === "orders" ? s : { ...s, secretsManagerSecret }));
    return stackConfig("prod", { databaseServers: servers, databasePasswords: { orders: PASSWORD }, ...overrides });
}

function iniOf(run: ProgramRun, configMap: string): string {
    return run.one(K8S.configMap, configMap).inputs.data["pgbouncer.ini"];
}

describe("two database servers (velure's: auth and orders)", () => {
    describe("pgbouncer-cluster (prod): a central PgBouncer per server", () => {
        let run: ProgramRun;
        before(async () => {
            run = await runProgram(stackConfig("prod"));
        });

        it("declares one PgBouncerCluster per server, in a namespace of its own, each rendering only its server's databases", () => {
            assert.deepStrictEqual(run.ofType("velure:pooling:PgBouncerCluster").map((c) => c.name), ["velure-pgbouncer-auth", "velure-pgbouncer-orders"]);
            assert.deepStrictEqual(run.ofType(K8S.namespace).map((n) => n.inputs.metadata.name), ["velure-db-auth", "velure-db-orders"]);
            assert.match(iniOf(run, "velure-pgbouncer-auth-config"), /^velure_auth = host=velure-production-auth\.c9akciq32\.us-east-1\.rds\.amazonaws\.com port=5432 dbname=velure_auth$/m);
            assert.doesNotMatch(iniOf(run, "velure-pgbouncer-auth-config"), /velure_orders/);
            assert.match(iniOf(run, "velure-pgbouncer-orders-config"), /^velure_orders = host=velure-production-orders\./m);
            assert.doesNotMatch(iniOf(run, "velure-pgbouncer-orders-config"), /velure_auth/);
        });

        it("lets only its server's services in, and out only to its server's subnets", () => {
            const policy = run.one(K8S.networkPolicy, "velure-pgbouncer-auth-netpol").inputs.spec;
            const clients = policy.ingress[0].from.flatMap((f: any) => f.namespaceSelector.matchExpressions.flatMap((e: any) => e.values));
            assert.deepStrictEqual(clients, ["authentication"], "publish-order-service (order) cannot reach the auth server's PgBouncer");
            const to = policy.egress.flatMap((e: any) => (e.to ?? []).map((t: any) => t.ipBlock?.cidr)).filter(Boolean);
            assert.deepStrictEqual(to, ["10.0.10.0/24", "10.0.12.0/24"]);
        });

        it("wires each release to its own server's PgBouncer, as the server's user", () => {
            const url = (name: string) => declaredUrl(run, run.one(K8S.release, name));
            assert.strictEqual(url("velure-auth").host, "pgbouncer.velure-db-auth.svc.cluster.local:5432");
            assert.strictEqual(url("velure-publish-order").host, "pgbouncer.velure-db-orders.svc.cluster.local:5432");
            assert.strictEqual(url("velure-auth").username, "velure_admin");
            assert.strictEqual(run.outputs.postgresHost, undefined, "no single address: each service has its own (the services output)");
        });

        it("budgets each server on its own, in the output and the error", () => {
            assert.deepStrictEqual(
                run.outputs.connectionBudget.map((s: any) => [s.server, s.used, s.available, s.limitKey, s.pools]),
                [
                    ["server auth", 36, 90, "databaseServers[0].maxConnections", ["velure_auth"]],
                    ["server orders", 64, 90, "databaseServers[1].maxConnections", ["velure_orders"]],
                ],
            );
        });

        it("watches each server's budget with an alert of its own, over that server's pools", async () => {
            const operator = await runProgram(stackConfig("prod", { monitoringPrometheusOperator: true }));
            const rule = operator.ofType("kubernetes:monitoring.coreos.com/v1:PrometheusRule")[0].inputs.spec.groups[0].rules;
            const nearBudget = rule.filter((r: any) => r.alert === "PgBouncerServerConnectionsNearBudget").map((r: any) => [r.labels.server, r.expr]);
            assert.deepStrictEqual(nearBudget, [
                ["server auth", 'sum(pgbouncer_databases_current_connections{namespace=~"velure-db-auth|velure-db-orders", name=~"velure_auth"}) > 81'],
                ["server orders", 'sum(pgbouncer_databases_current_connections{namespace=~"velure-db-auth|velure-db-orders", name=~"velure_orders"}) > 81'],
            ]);
        });
    });

    describe("pgbouncer-sidecar (dev): each service's sidecar on its own server", () => {
        it("renders each sidecar with its server's database, host and user, and budgets each server", async () => {
            const run = await runProgram(stackConfig("dev"));
            assert.match(iniOf(run, "velure-auth-pgbouncer-config"), /^velure_auth = host=velure-dev-auth\./m);
            assert.match(iniOf(run, "velure-publish-order-pgbouncer-config"), /^velure_orders = host=velure-dev-orders\./m);
            assert.deepStrictEqual(
                run.outputs.connectionBudget.map((s: any) => [s.server, s.lines.map((l: any) => `${l.name} ${l.connections}`), s.used]),
                [["server auth", ["auth-service 40"], 40], ["server orders", ["publish-order-service → velure_orders (session pool) 64"], 64]],
            );
        });
    });

    describe("rds-proxy (prod): a proxy per server (a proxy has exactly one target)", () => {
        let run: ProgramRun;
        before(async () => {
            run = await runProgram(stackConfig("prod", { mode: "rds-proxy" }));
        });

        it("declares, per server, its proxy, target, role, security groups and alarms", () => {
            assert.deepStrictEqual(run.ofType("aws:rds/proxy:Proxy").map((p) => p.inputs.name), ["velure-test-auth", "velure-test-orders"]);
            assert.deepStrictEqual(run.ofType("aws:rds/proxyTarget:ProxyTarget").map((t) => t.inputs.dbInstanceIdentifier), ["velure-production-auth", "velure-production-orders"]);
            assert.strictEqual(run.ofType("aws:iam/role:Role").length, 2);
            assert.strictEqual(run.ofType("aws:ec2/securityGroup:SecurityGroup").length, 2);
            assert.deepStrictEqual(
                run.ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter((r) => r.name.endsWith("-database-in")).map((r) => r.inputs.securityGroupId),
                ["sg-0f1e2d3c4b5a697aa", "sg-0f1e2d3c4b5a697ab"],
                "each proxy is let into its own database's security group",
            );
            const alarms = run.ofType("aws:cloudwatch/metricAlarm:MetricAlarm");
            assert.strictEqual(alarms.length, 14);
            assert.ok(alarms.filter((a) => a.name.startsWith("velure-rds-proxy-auth-")).every((a) => JSON.stringify(a.inputs).includes("velure-test-auth")), "each alarm watches its own proxy");
        });

        it("logs each proxy in with its server's Secrets Manager secret, and creates no secret of its own", () => {
            assert.deepStrictEqual(run.ofType("aws:secretsmanager/secret:Secret"), []);
            const auths = run.ofType("aws:rds/proxy:Proxy").map((p) => p.inputs.auths[0].secretArn);
            assert.deepStrictEqual(auths, [ARN.auth, ARN.orders]);
            const policy = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy", "velure-rds-proxy-auth-secrets").inputs.policy);
            assert.deepStrictEqual(policy.Statement[0].Resource, [ARN.auth], "each proxy reads its own server's secret only");
        });

        it("wires each release to its own server's proxy", () => {
            const host = (name: string) => wiredAddress(run, run.one(K8S.release, name)).host;
            assert.match(host("velure-auth"), /^velure-test-auth\.proxy-/);
            assert.match(host("velure-publish-order"), /^velure-test-orders\.proxy-/);
            assert.deepStrictEqual(run.outputs.connectionBudget.map((s: any) => [s.server, s.used, s.available]), [["server auth", 90, 90], ["server orders", 90, 90]]);
        });
    });

    describe("one server over its budget, the other within it", () => {
        it("fails naming the server that does not fit, its keys and its lines only", async () => {
            const services = prodServices().map((s) => (s.name === "auth-service" ? { ...s, maxReplicas: 14 } : s));
            const error = await programError(stackConfig("prod", { mode: "pgbouncer-sidecar", services }));
            assert.match(
                error.message,
                /the pooler can open 102 server connections to the server auth, but it allows 90 \(velure-pooling:databaseServers\[0\]\.maxConnections 100 - velure-pooling:databaseServers\[0\]\.reservedConnections 10\)/,
            );
            assert.match(error.message, /auth-service: \(14 max pods \+ 1 surge \+ 1 draining \+ 1 evicted\) × max_db_connections 6 = 102/);
            assert.doesNotMatch(error.message, /publish-order-service|server orders/, "the orders server fits and is not named");
        });

        it("checks a switch server by server: refused on the server that would overflow, accepted when both fit", async () => {
            const sidecars = await runProgram(stackConfig("prod", { mode: "pgbouncer-sidecar" }));
            const error = await programError(stackConfig("prod"), { deployedOutputs: sidecars.outputs });
            assert.match(error.message, /during the switch from pgbouncer-sidecar to pgbouncer-cluster, the two poolers together can open 114 server connections to the server auth, but it allows 90/);
            assert.match(error.message, /deployed pgbouncer-sidecar: auth-service: .* = 78\n {2}new pgbouncer-cluster: pgbouncer → velure_auth: .* = 36/);
            const capped = prodServices().map((s) => (s.name === "auth-service" ? { ...s, maxReplicas: 5 } : s));
            const smaller = await runProgram(stackConfig("prod", { mode: "pgbouncer-sidecar", services: capped }));
            const run = await runProgram(stackConfig("prod"), { deployedOutputs: smaller.outputs });
            assert.strictEqual(run.ofType("velure:pooling:PgBouncerCluster").length, 2, "48 + 30 and 24 + 30 of 90: the switch goes through");
        });

        it("reads a budget output of the version before servers were a list (one server, its replica nested) as that server's", async () => {
            const [primary, replica] = (await runProgram(stackConfig("one-server-prod", { mode: "pgbouncer-cluster", pgbouncerReplicas: 2 }))).outputs.connectionBudget;
            const older = { mode: "pgbouncer-cluster", connectionBudget: { ...primary, replica } };
            const run = await runProgram(stackConfig("one-server-prod"), { deployedOutputs: older });
            assert.ok(run.ofType("velure:pooling:PgBouncerSidecar").length === 2, "120 + 264 of 390: the switch goes through");
            const error = await programError(stackConfig("one-server-prod"), {
                deployedOutputs: { ...older, connectionBudget: { ...older.connectionBudget, lines: [{ ...primary.lines[0], connections: 200 }] } },
            });
            assert.match(error.message, /to the primary, but it allows 390/);
        });
    });

    describe("credentials: from Secrets Manager, or a Pulumi secret per server", () => {
        it("Secrets Manager: ExternalSecrets render the userlist and the app's Secret; no object of the program holds the password", async () => {
            const run = await runProgram(stackConfig("prod"));
            const external = run.one(EXTERNAL_SECRET, "velure-pgbouncer-auth-auth").inputs;
            assert.strictEqual(external.metadata.namespace, "velure-db-auth");
            assert.deepStrictEqual(external.spec.data, [{ secretKey: "password", remoteRef: { key: ARN.auth, property: "password" } }]);
            assert.deepStrictEqual(external.spec.secretStoreRef, { kind: "ClusterSecretStore", name: "aws-secrets-manager" });
            assert.deepStrictEqual(external.spec.target.name, "velure-pgbouncer-auth-auth");
            assert.strictEqual(external.spec.target.creationPolicy, "Owner");
            assert.deepStrictEqual(external.spec.target.template.templateFrom, [
                { target: "Data", secret: { name: "velure-pgbouncer-auth-auth-template", items: [{ key: "userlist.txt" }, { key: "exporter-dsn" }] } },
            ]);
            const template = run.one(K8S.secret, "velure-pgbouncer-auth-auth-template");
            assert.ok(isWrappedSecret(template.raw.stringData), "the template holds the stats password: a secret");
            assert.match(template.inputs.stringData["userlist.txt"], /^"velure_admin" "\{\{ \.password \| replace "\\"" "\\"\\"" \}\}"\n"pgbouncer_stats" "[0-9a-f]{32}"\n$/);
            assert.deepStrictEqual(
                run.ofType(EXTERNAL_SECRET).map((e) => e.name).filter((n) => n.endsWith("-db-credentials")),
                [],
                "velure's apps read only the URL: no password Secret of their own beside it",
            );
            const proxied = await runProgram(stackConfig("prod", { mode: "rds-proxy" }));
            const app = proxied.one(EXTERNAL_SECRET, "velure-auth-db-credentials").inputs;
            assert.deepStrictEqual([app.metadata.namespace, app.spec.target.template.data], ["authentication", { POSTGRES_PASSWORD: "{{ .password }}" }], "the proxy's login check logs in with it");
            const url = run.one(EXTERNAL_SECRET, "velure-auth-pooler-url").inputs;
            assert.deepStrictEqual([url.metadata.namespace, url.spec.target.name], ["authentication", "velure-auth-pooler-url"], "the program's own Secret, beside the one velure's chart reads");
            assert.strictEqual(url.metadata.annotations["pulumi.com/waitFor"], "condition=Ready", "what reads the Secret waits for the operator's render");
            const pooled = 'postgres://velure_admin:{{ .password | urlquery | replace "+" "%20" }}@pgbouncer.velure-db-auth.svc.cluster.local:5432/velure_auth?sslmode=disable';
            assert.deepStrictEqual(url.spec.target.template.data, { "url.pgbouncer-cluster": pooled });
            const release = run.one(K8S.release, "velure-auth").inputs.values;
            assert.deepStrictEqual([release.env, release.extraEnv], [undefined, undefined], "velure's chart takes no env: the URL is all it reads");
            assert.deepStrictEqual(run.ofType(K8S.secret).map((s) => s.name).sort(), ["velure-pgbouncer-auth-auth-template", "velure-pgbouncer-orders-auth-template"], "no Secret of ours with a password");
        });

        it("a Pulumi secret per server (databasePasswords.<name>): that server's Secrets hold it, kept secret; the other server still reads Secrets Manager", async () => {
            const run = await runProgram(ordersPasswordInPulumi());
            const auth = run.one(K8S.secret, "velure-pgbouncer-orders-auth");
            assert.ok(isWrappedSecret(auth.raw.stringData));
            assert.match(auth.inputs.stringData["userlist.txt"], new RegExp(`^"velure_admin" "${PASSWORD.replace(/"/g, '""')}"$`, "m"));
            const url = run.one(K8S.secret, "velure-publish-order-pooler-url");
            assert.strictEqual(url.inputs.metadata.name, "velure-publish-order-pooler-url");
            assert.ok(isWrappedSecret(url.raw.stringData), "the URL holds the password: a secret");
            assert.strictEqual(decodeURIComponent(new URL(url.inputs.stringData["url.pgbouncer-cluster"]).password), PASSWORD, "the password, percent-encoded in the URL");
            assert.ok(run.one(EXTERNAL_SECRET, "velure-pgbouncer-auth-auth"), "auth still from Secrets Manager");
            assert.ok(!JSON.stringify(run.one(EXTERNAL_SECRET, "velure-pgbouncer-auth-auth").raw).includes(PASSWORD_TOKEN));
            const proxies = await runProgram(ordersPasswordInPulumi({ mode: "rds-proxy" }));
            assert.deepStrictEqual(proxies.ofType("aws:secretsmanager/secret:Secret").map((s) => s.name), ["velure-rds-proxy-orders-credentials"], "a secret for orders' proxy only");
            const app = proxies.one(K8S.secret, "velure-publish-order-db-credentials");
            assert.strictEqual(app.inputs.stringData.POSTGRES_PASSWORD, PASSWORD, "the proxy check's password Secret");
            assert.ok(isWrappedSecret(app.raw.stringData) || isWrappedSecret(app.raw.stringData.POSTGRES_PASSWORD), "kept a secret");
        });

        it("needs the ExternalSecret CRD and the ClusterSecretStore in the cluster: missing, preview fails naming the key", async () => {
            const error = await programError(stackConfig("prod"), {
                missingObjects: ["kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition/externalsecrets.external-secrets.io", "kubernetes:external-secrets.io/v1:ClusterSecretStore/aws-secrets-manager"],
            });
            assert.match(error.message, /velure-pooling:databaseServers\[0\]\.secretsManagerSecret: CustomResourceDefinition externalsecrets\.external-secrets\.io was not found/);
            assert.match(error.message, /velure-pooling:externalSecretsStore: ClusterSecretStore aws-secrets-manager was not found/);
        });
    });

    describe("refused before anything is declared, naming the key", () => {
        const refused = async (config: Record<string, string>, pattern: RegExp) => assert.match((await programError(config)).message, pattern);

        it("a service that names no server, or one that does not exist", async () => {
            const services = prodServices();
            await refused(stackConfig("prod", { services: [{ ...services[0], server: "nope" }, services[1]] }), /services\[0\]\.server: "nope" is not allowed; expected the name of one of databaseServers: auth, orders/);
            const { server: _, ...unnamed } = services[1];
            await refused(stackConfig("prod", { services: [services[0], unnamed] }), /services\[1\]\.server: undefined is not allowed; expected the name of one of databaseServers: auth, orders/);
            await refused(stackConfig("one-server-dev", { services: [{ ...JSON.parse(stackConfig("one-server-dev")["velure-pooling:services"])[0], server: "auth" }] }), /services\[0\]\.server: "auth" is not allowed; expected no server: without databaseServers/);
        });

        it("the one-server keys beside databaseServers, with the entry to write instead", async () => {
            await refused(
                stackConfig("prod", { databaseHost: "old.c9akciq32.us-east-1.rds.amazonaws.com", databaseMaxConnections: 80 }),
                /databaseHost, databaseMaxConnections: not read with databaseServers, where each server has its own; move them into the server's entry, e\.g\. databaseServers: \[\{"name":"<name>","host":"old\.c9akciq32\.us-east-1\.rds\.amazonaws\.com","maxConnections":80\}\]/,
            );
            await refused(stackConfig("prod", { databasePassword: "x" }), /databasePassword is not read with databaseServers: each server's password is databasePasswords\.<name>/);
        });

        it("a bad server entry: its name, a duplicate, an unknown field, a bad limit, a bad secret ARN", async () => {
            const [auth, orders] = prodServers();
            await refused(stackConfig("prod", { databaseServers: [{ ...auth, name: "Auth_1" }, orders] }), /databaseServers\[0\]\.name: "Auth_1" is not allowed; expected a DNS label/);
            await refused(stackConfig("prod", { databaseServers: [auth, { ...orders, name: "auth" }] }), /databaseServers: "auth" is not allowed; expected each server name once/);
            await refused(stackConfig("prod", { databaseServers: [{ ...auth, maxConn: 100 }, orders] }), /databaseServers\[0\]\.maxConn: 100 is not allowed; expected one of the keys name, host/);
            await refused(stackConfig("prod", { databaseServers: [{ ...auth, reservedConnections: 100 }, orders] }), /databaseServers\[0\]\.reservedConnections: 100 is not allowed; expected less than databaseServers\[0\]\.maxConnections \(100\)/);
            await refused(stackConfig("prod", { databaseServers: [{ ...auth, secretsManagerSecret: "velure/production/rds-auth" }, orders] }), /databaseServers\[0\]\.secretsManagerSecret: "velure\/production\/rds-auth" is not allowed; expected a Secrets Manager secret ARN/);
            await refused(stackConfig("prod", { databaseServers: [{ ...auth, secretsManagerSecret: ARN.auth.replace("us-east-1", "eu-west-1") }, orders] }), /databaseServers\[0\]\.secretsManagerSecret: ".*" is not allowed; expected a secret in the proxy's region, aws:region us-east-1 \(it is in eu-west-1\)/);
            await refused(stackConfig("prod", { mode: "rds-proxy", databaseServers: [{ ...auth, rdsSecretArn: ARN.auth }, orders] }), /databaseServers\[0\]\.rdsSecretArn: .* expected none: the proxy reads the server's secretsManagerSecret/);
        });

        it("a server that no service names: a warning on every run, and no pooler or budget for it", async () => {
            const services = prodServices().filter((s) => s.server === "auth");
            const run = await runProgram(stackConfig("prod", { services }));
            assert.ok(run.warnings.some((w) => w.includes("databaseServers[1] (orders): no service names this server")), run.warnings.join("\n"));
            assert.deepStrictEqual(run.ofType("velure:pooling:PgBouncerCluster").map((c) => c.name), ["velure-pgbouncer-auth"]);
            assert.deepStrictEqual(run.outputs.connectionBudget.map((s: any) => s.server), ["server auth"]);
        });

        it("a missing, extra, plain or misplaced password, never showing it", async () => {
            const servers = prodServers().map(({ secretsManagerSecret: _, ...s }) => s);
            const missing = await programError(stackConfig("prod", { databaseServers: servers, databasePasswords: { auth: PASSWORD } }));
            assert.match(missing.message, /databasePasswords\.orders is required: set it with `pulumi config set --secret --path 'velure-pooling:databasePasswords\.orders' <password>`/);
            await refused(ordersPasswordInPulumi({ databasePasswords: { orders: PASSWORD, auth: PASSWORD } }), /databasePasswords\.auth: not read: server auth reads its password from secretsManagerSecret/);
            const plain = await programError(ordersPasswordInPulumi(), { secretKeys: [] });
            assert.match(plain.message, /databasePasswords: set in plain text \(its value is not shown\); set each password with --secret/);
            for (const error of [missing, plain]) {
                assert.ok(!error.message.includes(PASSWORD_TOKEN), "the password is shown");
            }
        });
    });
});
