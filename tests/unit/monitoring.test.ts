import * as assert from "assert";
import { parser } from "@prometheus-io/lezer-promql";
import { buildServerBudgets } from "../../components/connectionBudget";
import { EXPORTER_METRICS, alertRules, dashboardQueries } from "../../components/pgbouncerMonitoring";
import { serverScopes } from "../../options/pgbouncerMonitoring";
import { DEFAULT_MONITORING_ALERTS } from "../../config/schema";
import { K8S, RANDOM_PASSWORD, isWrappedSecret, mockRandomPassword, PASSWORD_TOKEN, ProgramRun, programError, runProgram, stackConfig } from "./harness";

const CR_PREFIX = "kubernetes:monitoring.coreos.com/v1:";
const PRIMARY = { server: "primary", limit: 80, reserved: 10, limitKey: "databaseMaxConnections", reservedKey: "databaseReservedConnections", pools: ["velure_auth"] };
/** A pooler whose read replica is a server of its own: both servers get a budget alert and a dashboard series. */
const SCOPE = {
    selector: 'namespace="velure-db"',
    servers: serverScopes(
        buildServerBudgets({ primary: PRIMARY, primaryLines: [], replica: { ...PRIMARY, server: "read replica", limit: 40, pools: ["velure_auth_ro"], sameHost: false }, replicaLines: [] }),
    ),
};

/** Parses PromQL with Prometheus's own grammar; returns the metric names it selects (names and __name__ regexes). */
function promql(expr: string): { errors: number; metrics: string[]; nameRegexes: string[] } {
    const tree = parser.parse(expr);
    let errors = 0;
    const metrics: string[] = [];
    tree.iterate({
        enter(node) {
            if (node.type.isError) {
                errors++;
            }
            if (node.name === "Identifier" && node.node.parent?.name === "VectorSelector") {
                metrics.push(expr.slice(node.from, node.to));
            }
        },
    });
    const nameRegexes = [...expr.matchAll(/__name__=~"([^"]+)"/g)].map((m) => m[1]);
    return { errors, metrics, nameRegexes };
}

function operatorObjects(run: ProgramRun) {
    return run.resources.filter((r) => r.type.startsWith(CR_PREFIX));
}

function exporterOf(containers: any[]): any {
    return containers.find((c) => c.name === "pgbouncer-exporter");
}

describe("monitoring of the PgBouncer options", () => {
    describe("pgbouncer-cluster, exporter on (default), no Prometheus Operator", () => {
        let run: ProgramRun;
        before(async () => {
            run = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster" }));
        });

        it("runs a pinned pgbouncer_exporter on 9127 beside PgBouncer, restricted like it", () => {
            const pod = run.one(K8S.deployment).inputs.spec.template.spec;
            const exporter = exporterOf(pod.containers);
            assert.strictEqual(exporter.image, "quay.io/prometheuscommunity/pgbouncer-exporter:v0.12.1");
            assert.deepStrictEqual(exporter.ports, [{ name: "metrics", containerPort: 9127, protocol: "TCP" }]);
            assert.deepStrictEqual(exporter.args, ["--web.listen-address=:9127"], "no connection string (with its password) in the arguments, where ps shows it");
            assert.deepStrictEqual(exporter.livenessProbe.tcpSocket, { port: 9127 }, "it listens on every address of the pod, so a tcpSocket probe reaches it");
            assert.strictEqual(exporter.securityContext.readOnlyRootFilesystem, true);
            assert.deepStrictEqual(exporter.securityContext.capabilities.drop, ["ALL"]);
            assert.ok(exporter.resources.limits.memory);
        });

        it("logs the exporter in as the dedicated stats user, with a random password of its own (@pulumi/random) kept secret in the Secret", () => {
            const pod = run.one(K8S.deployment).inputs.spec.template.spec;
            const env = exporterOf(pod.containers).env;
            assert.deepStrictEqual(env, [{ name: "PGBOUNCER_EXPORTER_CONNECTION_STRING", valueFrom: { secretKeyRef: { name: "velure-pgbouncer-auth", key: "exporter-dsn" } } }]);
            const secret = run.one(K8S.secret, "velure-pgbouncer-auth").inputs.stringData;
            const random = run.one(RANDOM_PASSWORD, "velure-pgbouncer-stats-password");
            assert.deepStrictEqual(random.inputs, { length: 32, special: false, minLower: 1, minUpper: 1, minNumeric: 1 });
            const statsPassword = mockRandomPassword("velure-pgbouncer-stats-password", 32);
            assert.ok(isWrappedSecret(run.one(K8S.secret, "velure-pgbouncer-auth").raw.stringData), "the Secret's data is a secret in the state");
            assert.strictEqual(secret["exporter-dsn"], `postgres://pgbouncer_stats:${statsPassword}@127.0.0.1:5432/pgbouncer?sslmode=disable`);
            assert.ok(!secret["exporter-dsn"].includes(PASSWORD_TOKEN), "the exporter never uses the database user");
            assert.match(secret["userlist.txt"], new RegExp(`^"pgbouncer_stats" "${statsPassword}"$`, "m"));
            assert.match(run.one(K8S.configMap, "velure-pgbouncer-config").inputs.data["pgbouncer.ini"], /^stats_users = pgbouncer_stats$/m);
        });

        it("asks Prometheus to scrape through annotations, and declares no Operator objects", () => {
            const annotations = run.one(K8S.deployment).inputs.spec.template.metadata.annotations;
            assert.deepStrictEqual([annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]], ["true", "9127"]);
            assert.strictEqual(operatorObjects(run).length, 0);
        });

        it("ships a Grafana dashboard in a ConfigMap that Grafana's sidecar discovers", () => {
            const configMap = run.one(K8S.configMap, "velure-pooling-monitoring-dashboard").inputs;
            assert.strictEqual(configMap.metadata.namespace, "monitoring");
            assert.strictEqual(configMap.metadata.labels.grafana_dashboard, "1");
            const dashboard = JSON.parse(configMap.data["velure-pooling-monitoring.json"]);
            assert.deepStrictEqual(dashboard.panels.map((p: any) => p.title), [
                "Clients active and waiting", "Server connections against the budget", "Transactions per second", "Query time and client wait",
            ]);
            const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
            assert.ok(exprs.includes("vector(70)"), "the budget's available connections are drawn");
            assert.ok(exprs.every((e) => e.includes('namespace="velure-db"') || e.startsWith("vector(")));
        });
    });

    describe("with the Prometheus Operator", () => {
        it("pgbouncer-cluster: a metrics Service, a ServiceMonitor and a PrometheusRule, no annotations", async () => {
            const run = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster", monitoringPrometheusOperator: true }));
            const byKind = Object.fromEntries(operatorObjects(run).map((r) => [r.inputs.kind, r.inputs]));
            assert.deepStrictEqual(Object.keys(byKind).sort(), ["PrometheusRule", "ServiceMonitor"]);
            const metrics = run.one(K8S.service, "velure-pgbouncer-metrics").inputs;
            assert.deepStrictEqual(metrics.spec.ports.map((p: any) => p.port), [9127]);
            assert.deepStrictEqual(byKind.ServiceMonitor.spec.selector.matchLabels, metrics.metadata.labels);
            assert.deepStrictEqual(byKind.ServiceMonitor.spec.endpoints, [{ port: "metrics", interval: "30s" }]);
            assert.strictEqual(byKind.PrometheusRule.metadata.namespace, "monitoring");
            const alerts = byKind.PrometheusRule.spec.groups[0].rules.map((r: any) => r.alert);
            assert.deepStrictEqual(alerts, ["PgBouncerClientsWaiting", "PgBouncerServerConnectionsNearBudget", "PgBouncerPoolSaturated", "PgBouncerDown", "PgBouncerExporterDown"]);
            assert.strictEqual(run.one(K8S.deployment).inputs.spec.template.metadata.annotations["prometheus.io/scrape"], undefined);
        });

        it("pgbouncer-sidecar: a PodMonitor per service that selects its pods, and one PrometheusRule", async () => {
            const run = await runProgram(stackConfig("one-server-prod", { mode: "pgbouncer-sidecar", monitoringPrometheusOperator: true }));
            const podMonitors = operatorObjects(run).filter((r) => r.inputs.kind === "PodMonitor").map((r) => r.inputs);
            assert.deepStrictEqual(podMonitors.map((m) => m.spec.selector.matchLabels["app.kubernetes.io/instance"]).sort(), ["velure-auth-service", "velure-publish-order-service"]);
            assert.ok(podMonitors.every((m) => m.metadata.namespace === "velure" && m.spec.podMetricsEndpoints[0].port === "metrics"));
            assert.strictEqual(operatorObjects(run).filter((r) => r.inputs.kind === "PrometheusRule").length, 1);
            const values = run.one(K8S.release, "velure-auth-service").inputs.values;
            const exporter = exporterOf(values.extraContainers);
            assert.ok(exporter, "the exporter runs in the app pod");
            const secret = run.one(K8S.secret, "velure-auth-service-pgbouncer-auth").inputs.stringData;
            assert.match(secret["exporter-dsn"], /@127\.0\.0\.1:6432\/pgbouncer/);
        });
    });

    it("sums the read-only pools against the replica's budget, never into the primary's", () => {
        const rules = alertRules(DEFAULT_MONITORING_ALERTS, SCOPE).filter((r) => r.alert === "PgBouncerServerConnectionsNearBudget");
        assert.deepStrictEqual(
            rules.map((r) => [r.labels.server, r.expr]),
            [
                ["primary", 'sum(pgbouncer_databases_current_connections{namespace="velure-db", name=~"velure_auth"}) > 63'],
                ["read replica", 'sum(pgbouncer_databases_current_connections{namespace="velure-db", name=~"velure_auth_ro"}) > 27'],
            ],
        );
        // With the replica on the primary's host, every pool counts against the primary.
        const shared = serverScopes(
            buildServerBudgets({ primary: PRIMARY, primaryLines: [], replica: { ...PRIMARY, server: "read replica", pools: ["velure_auth_ro"], sameHost: true }, replicaLines: [] }),
        );
        assert.deepStrictEqual(shared, [{ server: "primary", availableConnections: 70, pools: 'name=~"velure_auth|velure_auth_ro"' }]);
    });

    it("thresholds come from config", async () => {
        const run = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster", monitoringPrometheusOperator: true, monitoringAlerts: { clientWaitSeconds: 12 } }));
        const rule = operatorObjects(run).find((r) => r.inputs.kind === "PrometheusRule")!.inputs.spec.groups[0].rules[0];
        assert.match(rule.expr, / > 12$/);
        const error = await programError(stackConfig("one-server-dev", { monitoringAlerts: { clientWait: 3 } }));
        assert.match(error.message, /monitoringAlerts.clientWait: 3 is not allowed; expected one of clientWaitSeconds, serverConnectionsPercent, saturatedMinutes/);
    });

    it("turns off completely: no exporter, no stats user, no dashboard", async () => {
        const run = await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster", monitoringExporter: false }));
        assert.strictEqual(run.one(K8S.deployment).inputs.spec.template.spec.containers.length, 1);
        assert.doesNotMatch(run.one(K8S.configMap).inputs.data["pgbouncer.ini"], /stats_users/);
        assert.strictEqual(run.one(K8S.secret, "velure-pgbouncer-auth").inputs.stringData["exporter-dsn"], undefined);
        assert.strictEqual(run.ofType("velure:pooling:PgBouncerMonitoring").length, 0);
    });

    it("is not part of rds-proxy (CloudWatch alarms cover it)", async () => {
        const run = await runProgram(stackConfig("one-server-prod", { mode: "rds-proxy" }));
        assert.strictEqual(run.ofType("velure:pooling:PgBouncerMonitoring").length, 0);
    });

    describe("PromQL", () => {
        const expressions: Record<string, string> = {
            ...Object.fromEntries(alertRules(DEFAULT_MONITORING_ALERTS, SCOPE).map((r) => [`${r.alert} ${r.labels.server ?? ""}`, r.expr])),
            ...dashboardQueries(SCOPE),
        };
        for (const [name, expr] of Object.entries(expressions)) {
            it(`${name}: parses, and selects only metrics the exporter exports`, () => {
                const parsed = promql(expr);
                assert.strictEqual(parsed.errors, 0, `syntax error in ${expr}`);
                for (const metric of parsed.metrics) {
                    assert.ok(EXPORTER_METRICS.includes(metric), `${metric} is not an exporter metric`);
                }
                for (const pattern of parsed.nameRegexes) {
                    assert.ok(EXPORTER_METRICS.some((m) => new RegExp(`^(?:${pattern})$`).test(m)), `${pattern} matches no exporter metric`);
                }
                assert.ok(parsed.metrics.length + parsed.nameRegexes.length > 0 || expr.startsWith("vector("));
            });
        }

        it("the check catches a syntax error and an unknown metric", () => {
            assert.ok(promql("sum(rate(pgbouncer_up[5m])").errors > 0);
            assert.deepStrictEqual(promql("pgbouncer_pools_cl_waiting > 1").metrics, ["pgbouncer_pools_cl_waiting"]);
        });

        it("every alert tells the operator which config key to change", () => {
            for (const rule of alertRules(DEFAULT_MONITORING_ALERTS, SCOPE)) {
                assert.match(rule.annotations.description, /velure-pooling:[a-zA-Z]+/, rule.alert);
            }
        });
    });
});
