// Plain types that config/ reads into and the components consume. They live here, below both layers, so
// that config/ never imports a component and no component imports config/.
import * as pulumi from "@pulumi/pulumi";

export interface ResourceSpec {
    requests: { cpu: string; memory: string };
    limits: { cpu: string; memory: string };
}

export interface AlertThresholds {
    clientWaitSeconds: number;
    serverConnectionsPercent: number;
    saturatedMinutes: number;
}

export interface MonitoringSpec {
    exporterImage: string;
    prometheusOperator: boolean;
    /** Prometheus's namespace, which also holds the dashboard. */
    namespace: string;
    alerts: AlertThresholds;
    dashboard: boolean;
    /** Labels on the Prometheus Operator's objects, which its Prometheus selects them by. */
    selectorLabels: Record<string, string>;
}

/** Clients reach the read replica through a second pooler entry, <database>_ro. */
export const READ_ONLY_SUFFIX = "_ro";

/** The port pgbouncer_exporter serves /metrics on, beside PgBouncer (and, with sidecars, in the app's pod). */
export const EXPORTER_PORT = 9127;
/** The app container's port in the shipped chart (values.yaml `containerPort`), unless a service's values set it. */
export const APP_CONTAINER_PORT = 8080;

/** An app container's resources: requests are required (the HPA scales on CPU utilisation of the requests). */
export interface AppResources {
    requests: { cpu: string; memory: string };
    limits?: { cpu?: string; memory?: string };
}

export type RdsTarget = { kind: "instance"; identifier: string } | { kind: "cluster"; identifier: string };
/** CloudWatch alarm thresholds of the proxy (percentages strictly between 0 and 100, counts >= 0). */
export interface AlarmThresholds {
    databaseConnectionsPercent: number;
    clientConnections: number;
    borrowLatencyMicroseconds: number;
    sessionPinnedConnections: number;
    databaseConnectionsSetupFailed: number;
    clientAuthFailures: number;
    availabilityPercent: number;
}

/** What differs between the proxies of two database servers: a proxy has exactly one target. */
export interface RdsServerSpec {
    /** The database server's name ("" for the one server of databaseHost). */
    server: string;
    /** The proxy's name. */
    name: string;
    target: RdsTarget;
    databaseSecurityGroupId: string;
    /** An existing secret; when absent the program creates one. */
    secretArn?: string;
}

export interface RdsProxySpec {
    /** One proxy per database server. */
    servers: RdsServerSpec[];
    vpcId: string;
    subnetIds: string[];
    clientSecurityGroupIds: string[];
    clientCidrs: string[];
    kmsKeyArn?: string;
    requireTls: boolean;
    /** The apps verify the proxy's certificate (sslmode verify-full with Amazon's root CAs). */
    verifyCertificate: boolean;
    iamAuth: "DISABLED" | "REQUIRED";
    idleClientTimeout: number;
    debugLogging: boolean;
    pool: {
        maxConnectionsPercent: number;
        maxIdleConnectionsPercent: number;
        connectionBorrowTimeout: number;
        initQuery?: string;
    };
    readOnlyEndpoint: boolean;
    logRetentionDays: number;
    alarmTopicArn?: string;
    alarms: AlarmThresholds;
    tags: Record<string, string>;
}

/** How much longer than the app's drain a classic sidecar stays up, and the kubelet's slack after that. */
export const SIDECAR_MARGIN_SECONDS = 5;

/** What PgBouncer's immediate shutdown gets before the kubelet's SIGKILL. */
export const IMMEDIATE_SHUTDOWN_SECONDS = 2;

/**
 * How long a sidecar's safe shutdown may take: its SIGTERM comes once the app has drained (or after the preStop
 * of a classic sidecar), SIDECAR_MARGIN_SECONDS before the kubelet's SIGKILL.
 */
export const SIDECAR_SAFE_SHUTDOWN_SECONDS = SIDECAR_MARGIN_SECONDS - IMMEDIATE_SHUTDOWN_SECONDS;

/** The pod's grace period with a sidecar: the app's drain, then the sidecar's own stop. */
export function sidecarGracePeriod(appDrainSeconds: number): number {
    return appDrainSeconds + 2 * SIDECAR_MARGIN_SECONDS;
}

/** The longest periodSeconds an HPA scaling policy may have (the API server refuses more). */
export const HPA_MAX_PERIOD_SECONDS = 1800;

/**
 * What the program puts into a service's pods, by name: a service's own chart values may not take these names (its
 * lists are joined with the program's, and two containers, volumes or variables of one name break the pod).
 */
export const POD_NAMES = {
    containers: { sidecar: "pgbouncer", exporter: "pgbouncer-exporter" },
    volumes: { config: "pgbouncer-config", auth: "pgbouncer-auth", proxyCa: "rds-proxy-ca" },
    /** Every variable the program sets in the app container, from env (a map) or extraEnv (a list). */
    env: [
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_DB",
        "POSTGRES_DATABASE_NAME",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_SSLMODE",
        "POSTGRES_SSLROOTCERT",
        "PGSSLROOTCERT",
        "POSTGRES_READ_HOST",
        "POSTGRES_READ_PORT",
        "POSTGRES_READ_DB",
    ],
} as const;

/** The key of a service's credentials Secret that holds its password, and the app's variable for it. */
export const CREDENTIALS_PASSWORD_KEY = "POSTGRES_PASSWORD";

/** The External Secrets Operator store that reads AWS Secrets Manager (velure's: the ClusterSecretStore aws-secrets-manager). */
export interface SecretStoreRef {
    kind: "ClusterSecretStore" | "SecretStore";
    name: string;
}

/**
 * Where a database server's password is: a Pulumi secret (in the state, encrypted), or an existing AWS Secrets
 * Manager secret {username, password, ...} that RDS Proxy reads directly and External Secrets Operator copies into
 * the cluster, so that the password never enters Pulumi's state.
 */
export type Credentials =
    | { source: "pulumi"; password: pulumi.Output<string> }
    | { source: "secretsManager"; secretArn: string; store: SecretStoreRef };
