import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { NetworkPath } from "../components/allowPolicy";
import { ConnectionBudget } from "../components/connectionBudget";
import { ServiceSpec, VelureConfig } from "../config";

/** Where a service reaches one of its pools. */
export interface ServiceEndpoint {
    host: pulumi.Input<string>;
    port: pulumi.Input<number>;
    /** The pool's database name (the service's database, or <database>_ro for the read replica). */
    database: string;
}

/** The app's TLS towards the pooler: the sslmode, and with verify-full the CA file inside its pod. */
export interface AppTls {
    sslmode: string;
    rootCert?: string;
}

/** What one service's release needs from the pooler. */
export interface ServiceConnection extends ServiceEndpoint {
    tls: AppTls;
    /** The read replica's pool, when the service's server has one and the pooler serves it. */
    read?: ServiceEndpoint;
    /** The same, as env for the app container of a chart with the env contract (POSTGRES_SSLMODE, read-only routing). */
    env: Record<string, pulumi.Input<string>>;
    /**
     * What the pooler puts into the service's pods (sidecar containers, volumes, annotations), as the values of
     * charts/velure-service's hooks; for a chart without them, the post-renderer reads the same (services/postRender.ts).
     */
    values: Record<string, unknown>;
    /**
     * The labels by which the pooler's own PodDisruptionBudget (the sidecar's, which must be the only one over the
     * service's pods) and PodMonitor select the pods; absent when the pooler declares none.
     */
    ownDisruptionBudget?: Record<string, string>;
    /** What the service's pods must reach, and be reached from, in this mode (the allow policy beside a deny-all). */
    networkPath: pulumi.Input<NetworkPath>;
}

/** The Secret a service's app reads its password from (key POSTGRES_PASSWORD), and the object that makes it. */
export interface ServiceCredentials {
    name: pulumi.Output<string>;
    /** Our Secret, or the ExternalSecret whose Secret External Secrets Operator writes. */
    resource: pulumi.CustomResource & { metadata: pulumi.Output<k8s.types.output.meta.v1.ObjectMeta> };
}

export interface PoolerOutputs {
    /** The one address every service reaches the pooler at; absent when they differ (a pooler per database server, sidecars). */
    host?: pulumi.Output<string>;
    port?: pulumi.Output<number>;
    connectionFor(service: ServiceSpec): ServiceConnection;
    /** What must be ready before any release points at the pooler (its components, whose children Pulumi awaits). */
    ready: pulumi.Resource[];
    /**
     * What must succeed, per service, before its release points at the pooler: a check that logs in as the
     * service does, with its credentials Secret (RDS Proxy). Absent: the pooler's readiness says enough.
     */
    readyFor?(service: ServiceSpec, credentials: ServiceCredentials): pulumi.Resource[];
}

export interface DeployContext {
    provider: k8s.Provider;
    /** The services' namespace names, as Outputs that depend on their Namespace resources when created. */
    serviceNamespaces: Record<string, pulumi.Input<string>>;
}

/** Declares the pooler's resources; returned by an option once the config has been checked. */
export type DeclarePooler = (context: DeployContext) => PoolerOutputs;

/** A mode's pooler, checked and not yet declared: its worst case, and how to declare it. */
export interface PreparedPooler {
    budget: ConnectionBudget;
    declare: DeclarePooler;
    /** What every run of this mode must say (printed as warnings). */
    warnings: string[];
}

/** An option checks the config for its mode (pure, throws) and returns its budget and how to declare the pooler. */
export type PoolerOption = (config: VelureConfig) => PreparedPooler;

/** A service's connection: its primary pool, its read pool, its TLS, and the env that says the same. */
export function serviceConnection(
    primary: ServiceEndpoint,
    tls: AppTls,
    read: ServiceEndpoint | undefined,
    values: Record<string, unknown>,
    networkPath: pulumi.Input<NetworkPath>,
): ServiceConnection {
    const env: Record<string, pulumi.Input<string>> = { POSTGRES_SSLMODE: tls.sslmode };
    if (tls.rootCert) {
        // POSTGRES_SSLROOTCERT for the app's own DSN, PGSSLROOTCERT for pgx's and libpq's defaults.
        env.POSTGRES_SSLROOTCERT = tls.rootCert;
        env.PGSSLROOTCERT = tls.rootCert;
    }
    if (read) {
        env.POSTGRES_READ_HOST = read.host;
        env.POSTGRES_READ_PORT = pulumi.output(read.port).apply(String);
        env.POSTGRES_READ_DB = read.database;
    }
    return { ...primary, tls, ...(read ? { read } : {}), env, values, networkPath };
}

/** The one address of a pooler that is a single component (every service reaches it there); none with one per server. */
export function soleAddress(poolers: { host: pulumi.Output<string>; port: pulumi.Output<number> }[]): Pick<PoolerOutputs, "host" | "port"> {
    return poolers.length === 1 ? { host: poolers[0].host, port: poolers[0].port } : {};
}
