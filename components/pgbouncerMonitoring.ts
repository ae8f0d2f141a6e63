// velure:pooling:PgBouncerMonitoring: the alert rules and the Grafana dashboard of one PgBouncer option,
// built by pure functions that the tests parse. The exporter container itself is in pgbouncerPod.ts.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { AlertThresholds, EXPORTER_PORT, MonitoringSpec } from "./specs";
import { EXPORTER_CONTAINER } from "./pgbouncerPod";

/**
 * The metrics pgbouncer_exporter exports (collector.go). Newer releases renamed the SHOW STATS counters
 * from pgbouncer_stats_* to pgbouncer_stats_totals_*; both are listed, and the dashboard matches either.
 */
export const EXPORTER_METRICS: readonly string[] = [
    "up",
    "pgbouncer_up",
    "pgbouncer_version_info",
    ...["pool_size", "reserve_pool", "max_connections", "current_connections", "paused", "disabled"].map((m) => `pgbouncer_databases_${m}`),
    ...[
        "client_active_connections",
        "client_waiting_connections",
        "server_active_connections",
        "server_idle_connections",
        "server_used_connections",
        "server_testing_connections",
        "server_login_connections",
        "client_maxwait_seconds",
    ].map((m) => `pgbouncer_pools_${m}`),
    ...["stats", "stats_totals"].flatMap((prefix) =>
        [
            "queries_pooled_total",
            "queries_duration_seconds_total",
            "queries_total",
            "received_bytes_total",
            "sent_bytes_total",
            "client_wait_seconds_total",
            "sql_transactions_pooled_total",
            "server_in_transaction_seconds_total",
        ].map((m) => `pgbouncer_${prefix}_${m}`),
    ),
];

/** A database server the pooler reaches, with the pools that reach it and its budget. */
export interface ServerScope {
    /** "primary" or "read replica". */
    server: string;
    /** PromQL matchers on the `name` label (the [databases] entry) of the pools that reach this server. */
    pools: string;
    /** The server connections this server leaves to the pooler (its budget's `available`). */
    availableConnections: number;
}

export interface AlertScope {
    /** PromQL label matchers that select this pooler's series, e.g. namespace="velure-db". */
    selector: string;
    servers: ServerScope[];
}

/** The server connections of the pools that reach one server, summed over every PgBouncer of the pooler. */
function serverConnections(scope: AlertScope, server: ServerScope): string {
    return `sum(pgbouncer_databases_current_connections{${scope.selector}, ${server.pools}})`;
}

export interface AlertRule {
    alert: string;
    expr: string;
    for: string;
    labels: { severity: string; server?: string };
    annotations: { summary: string; description: string };
}

export function alertRules(t: AlertThresholds, scope: AlertScope): AlertRule[] {
    const s = scope.selector;
    return [
        {
            alert: "PgBouncerClientsWaiting",
            expr: `max by (namespace, pod, database) (pgbouncer_pools_client_maxwait_seconds{${s}}) > ${t.clientWaitSeconds}`,
            for: "2m",
            labels: { severity: "warning" },
            annotations: {
                summary: "Clients wait for a PgBouncer server connection",
                description:
                    `A client of {{ $labels.database }} on {{ $labels.pod }} has waited over ${t.clientWaitSeconds}s for a server connection. ` +
                    "Raise velure-pooling:pgbouncerDefaultPoolSize (within the connection budget) or find the long transactions; " +
                    "the threshold is velure-pooling:monitoringAlerts.clientWaitSeconds.",
            },
        },
        ...scope.servers.map((server) => nearBudgetRule(t, scope, server)),
        {
            alert: "PgBouncerPoolSaturated",
            expr:
                `sum by (namespace, pod, database) (pgbouncer_pools_client_waiting_connections{${s}}) > 0 ` +
                `and sum by (namespace, pod, database) (pgbouncer_pools_server_idle_connections{${s}}) == 0`,
            for: `${t.saturatedMinutes}m`,
            labels: { severity: "warning" },
            annotations: {
                summary: "A PgBouncer pool is saturated",
                description:
                    `The pool of {{ $labels.database }} on {{ $labels.pod }} has had waiting clients and no idle server connection for ${t.saturatedMinutes} minutes. ` +
                    "Raise velure-pooling:pgbouncerDefaultPoolSize or pgbouncerReservePoolSize within the budget; " +
                    "the duration is velure-pooling:monitoringAlerts.saturatedMinutes.",
            },
        },
        {
            alert: "PgBouncerDown",
            expr: `pgbouncer_up{${s}} == 0`,
            for: "2m",
            labels: { severity: "critical" },
            annotations: {
                summary: "The exporter cannot reach PgBouncer",
                description:
                    "pgbouncer_exporter on {{ $labels.pod }} cannot query PgBouncer's admin console: PgBouncer is down, or the stats user " +
                    "(velure-pooling:monitoringExporter) lost its login. Check the pod's pgbouncer container.",
            },
        },
        {
            alert: "PgBouncerExporterDown",
            expr: `up{${s}, container="${EXPORTER_CONTAINER}"} == 0`,
            for: "5m",
            labels: { severity: "warning" },
            annotations: {
                summary: "Prometheus cannot scrape pgbouncer_exporter",
                description:
                    `Prometheus cannot scrape {{ $labels.pod }} on port ${EXPORTER_PORT}. Check the NetworkPolicy for ` +
                    "velure-pooling:monitoringNamespace and the exporter container.",
            },
        },
    ];
}

function nearBudgetRule(t: AlertThresholds, scope: AlertScope, server: ServerScope): AlertRule {
    const near = Math.floor((server.availableConnections * t.serverConnectionsPercent) / 100);
    return {
        alert: "PgBouncerServerConnectionsNearBudget",
        expr: `${serverConnections(scope, server)} > ${near}`,
        for: "5m",
        labels: { severity: "warning", server: server.server },
        annotations: {
            summary: `PgBouncer holds most of the ${server.server}'s connections it may use`,
            description:
                `PgBouncer holds more than ${near} server connections to the ${server.server} (${t.serverConnectionsPercent}% of the ` +
                `${server.availableConnections} it leaves to the pooler). Lower velure-pooling:pgbouncerDefaultPoolSize or pgbouncerReplicas / ` +
                "the services' maxReplicas, or raise databaseMaxConnections (databaseReplicaMaxConnections) with the instance class; " +
                "the threshold is velure-pooling:monitoringAlerts.serverConnectionsPercent.",
        },
    };
}

/** Every PromQL expression of the rules and the dashboard, for the syntax and metric-name checks. */
export function dashboardQueries(scope: AlertScope): Record<string, string> {
    const s = scope.selector;
    const stats = (metric: string) => `{__name__=~"pgbouncer_stats(_totals)?_${metric}", ${s}}`;
    return {
        "Clients active": `sum by (database) (pgbouncer_pools_client_active_connections{${s}})`,
        "Clients waiting": `sum by (database) (pgbouncer_pools_client_waiting_connections{${s}})`,
        ...Object.fromEntries(
            scope.servers.flatMap((server) => [
                [`Server connections (${server.server})`, serverConnections(scope, server)],
                [`Connection budget (${server.server})`, `vector(${server.availableConnections})`],
            ]),
        ),
        "Transactions per second": `sum by (database) (rate(${stats("sql_transactions_pooled_total")}[5m]))`,
        "Query time per query (s)": `sum by (database) (rate(${stats("queries_duration_seconds_total")}[5m])) / sum by (database) (rate(${stats("queries_pooled_total")}[5m]))`,
        "Client wait per transaction (s)": `sum by (database) (rate(${stats("client_wait_seconds_total")}[5m])) / sum by (database) (rate(${stats("sql_transactions_pooled_total")}[5m]))`,
    };
}

/** A Grafana dashboard (schema 39) for one pooler; Grafana's sidecar picks it up from a labelled ConfigMap. */
export function grafanaDashboard(title: string, scope: AlertScope): Record<string, unknown> {
    const queries = dashboardQueries(scope);
    const panel = (id: number, panelTitle: string, exprs: string[], unit: string) => ({
        id,
        title: panelTitle,
        type: "timeseries",
        datasource: { type: "prometheus", uid: "${datasource}" },
        gridPos: { h: 8, w: 12, x: ((id - 1) % 2) * 12, y: Math.floor((id - 1) / 2) * 8 },
        fieldConfig: { defaults: { unit }, overrides: [] },
        targets: exprs.map((expr, i) => ({ refId: String.fromCharCode(65 + i), expr, legendFormat: "{{database}}" })),
    });
    return {
        title,
        uid: title.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 40),
        schemaVersion: 39,
        tags: ["velure", "pgbouncer"],
        time: { from: "now-6h", to: "now" },
        refresh: "30s",
        templating: { list: [{ name: "datasource", type: "datasource", query: "prometheus" }] },
        panels: [
            panel(1, "Clients active and waiting", [queries["Clients active"], queries["Clients waiting"]], "short"),
            panel(2, "Server connections against the budget", Object.keys(queries).filter((q) => /^(Server connections|Connection budget) /.test(q)).map((q) => queries[q]), "short"),
            panel(3, "Transactions per second", [queries["Transactions per second"]], "ops"),
            panel(4, "Query time and client wait", [queries["Query time per query (s)"], queries["Client wait per transaction (s)"]], "s"),
        ],
    };
}

export interface PgBouncerMonitoringArgs {
    /** Shown as the dashboard's title. */
    title: string;
    scope: AlertScope;
    spec: MonitoringSpec;
}

/** The PrometheusRule (with the Prometheus Operator) and the Grafana dashboard, in the monitoring namespace. */
export class PgBouncerMonitoring extends pulumi.ComponentResource {
    constructor(name: string, args: PgBouncerMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
        super("velure:pooling:PgBouncerMonitoring", name, {}, opts);
        const labels = { "app.kubernetes.io/part-of": "velure", "app.kubernetes.io/component": "pgbouncer-monitoring" };
        if (args.spec.prometheusOperator) {
            new k8s.apiextensions.CustomResource(
                `${name}-rules`,
                {
                    apiVersion: "monitoring.coreos.com/v1",
                    kind: "PrometheusRule",
                    metadata: { namespace: args.spec.namespace, labels: { ...args.spec.selectorLabels, ...labels } },
                    spec: { groups: [{ name: `${name}.rules`, rules: alertRules(args.spec.alerts, args.scope) }] },
                },
                { parent: this },
            );
        }
        if (args.spec.dashboard) {
            new k8s.core.v1.ConfigMap(
                `${name}-dashboard`,
                {
                    metadata: { namespace: args.spec.namespace, labels: { ...labels, grafana_dashboard: "1" } },
                    data: { [`${name}.json`]: JSON.stringify(grafanaDashboard(args.title, args.scope), null, 2) },
                },
                { parent: this },
            );
        }
        this.registerOutputs({});
    }
}
