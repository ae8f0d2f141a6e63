import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ConnectionBudget } from "../components/connectionBudget";
import { ServiceSpec, VelureConfig } from "../config";

/** What one service's release needs from the pooler. */
export interface ServiceConnection {
    host: pulumi.Input<string>;
    port: pulumi.Input<number>;
    /** Extra env for the app container (POSTGRES_SSLMODE, read-only routing). */
    env: Record<string, pulumi.Input<string>>;
    /** Extra chart values (sidecar containers, volumes, annotations) through the chart's hooks. */
    values: Record<string, unknown>;
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

/** The one address of a pooler that is a single component (every service reaches it there); none with one per server. */
export function soleAddress(poolers: { host: pulumi.Output<string>; port: pulumi.Output<number> }[]): Pick<PoolerOutputs, "host" | "port"> {
    return poolers.length === 1 ? { host: poolers[0].host, port: poolers[0].port } : {};
}
