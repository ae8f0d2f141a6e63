// The single list of the program's config keys. Pulumi.yaml declares the same keys with the same types
// and defaults (a unit test holds the two together), and the README documents them. The defaults here
// apply when the Pulumi CLI did not fill them in from Pulumi.yaml (the mock runtime, automation).

export const PROJECT = "velure-pooling";

export const MODES = ["rds-proxy", "pgbouncer-cluster", "pgbouncer-sidecar"] as const;
export type Mode = (typeof MODES)[number];

export type KeyType = "string" | "integer" | "boolean" | "object";

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

export const CONFIG_KEYS = {
    mode: {
        type: "string",
        default: "pgbouncer-cluster",
        description: "The pooler: rds-proxy, pgbouncer-cluster or pgbouncer-sidecar.",
    },
    databasePassword: {
        type: "string",
        secret: true,
        description: "Password of the database user (set with --secret).",
    },
    databaseHost: {
        type: "string",
        description: "Hostname of the RDS PostgreSQL writer endpoint (a DNS name, so that TLS verify-full can check it).",
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
    services: {
        type: "object",
        default: DEFAULT_SERVICES,
        description:
            "The services: a list of {name, database, namespace, replicas, maxReplicas?, image{repository,tag}, " +
            "chart?{path} | chart?{repo,name,version}, values?}. Each becomes the Helm release velure-<name>.",
    },
    createServiceNamespaces: {
        type: "boolean",
        default: true,
        description: "Create the services' namespaces. Set false when they already exist.",
    },
    kubeconfig: {
        type: "string",
        default: "",
        description: "Kubeconfig (path or contents) for the Kubernetes provider. Empty: the ambient KUBECONFIG.",
    },
    kubernetesContext: { type: "string", default: "", description: "Kubeconfig context. Empty: its current context." },
    pgbouncerImage: {
        type: "string",
        default: "ghcr.io/icoretech/pgbouncer-docker:1.26.1",
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
        default: 10,
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
        default: "certs/rds-ca-bundle.pem",
        description: "Path (relative to the project) of the RDS CA bundle used with verify-ca / verify-full.",
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
        description: "PgBouncer pods of the central Deployment (pgbouncer-cluster). At least 2 for HA.",
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
        description: "pgbouncer-sidecar: the port PgBouncer listens on, on 127.0.0.1 inside each application pod.",
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
} satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;
