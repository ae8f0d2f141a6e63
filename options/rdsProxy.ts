// mode = rds-proxy: maps the validated config to one RdsProxy in front of the database.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { assertWithinBudget, buildBudget } from "../components/connectionBudget";
import { primaryLimits } from "./budget";
import { RdsProxy, RdsProxyArgs, rdsProxyBudgetLine, validateRdsProxyArgs } from "../components/rdsProxy";
import { CREDENTIALS_PASSWORD_KEY, RdsProxySpec } from "../components/specs";
import { ServiceSpec, VelureConfig } from "../config";
import { PROXY_CA_DIR, PROXY_CA_FILE, RdsProxyTrust, verifyFullEnv } from "../components/rdsProxyTrust";
import { RdsProxyCheck } from "../components/rdsProxyCheck";
import { rdsProxyCaBundle } from "../components/rdsCertificates";
import { DeclarePooler, PoolerOption, ServiceConnection } from "./types";

export function rdsProxyArgs(config: VelureConfig, rds: RdsProxySpec): RdsProxyArgs {
    return {
        ...rds,
        username: config.database.user,
        password: config.database.password,
        databasePort: config.database.port,
        databaseMaxConnections: config.database.maxConnections,
    };
}

/** The app's TLS towards the proxy: verify-full with Amazon's root CAs (the proxy's ACM certificate), unless opted out. */
function proxyTls(requireTls: boolean, trust: RdsProxyTrust | undefined): Pick<ServiceConnection, "env" | "values"> {
    if (trust) {
        return { env: verifyFullEnv(), values: trust.chartValues };
    }
    return { env: { POSTGRES_SSLMODE: requireTls ? "require" : "prefer" }, values: {} };
}

function readOnlyEnv(proxy: RdsProxy, database: string): Record<string, pulumi.Input<string>> {
    if (!proxy.readOnlyHost) {
        return {};
    }
    return { POSTGRES_READ_HOST: proxy.readOnlyHost, POSTGRES_READ_PORT: proxy.port.apply(String), POSTGRES_READ_DB: database };
}

/** With IAM auth required, a password cannot log in through the proxy: the releases wait for its target's registration only. */
function uncheckedIamWarning(args: RdsProxyArgs): string[] {
    if (args.iamAuth !== "REQUIRED") {
        return [];
    }
    return [
        "rdsIamAuth: REQUIRED, so the program cannot log in through the proxy to check that it serves before the releases move onto it " +
            "(it checks with the services' password otherwise): the releases wait only for the target's registration",
    ];
}

/** RDS Proxy has no read-only endpoint for an RDS instance's replica: the apps' reads go to the primary. */
function droppedReplicaWarning(config: VelureConfig): string[] {
    if (!config.database.replicaHost || config.rds?.readOnlyEndpoint) {
        return [];
    }
    return [
        `databaseReplicaHost: ${config.database.replicaHost} is not used in mode rds-proxy: every query goes through the proxy to the primary ` +
            "(RDS Proxy's read-only endpoints serve Aurora clusters only: rdsClusterIdentifier with rdsReadOnlyEndpoint)",
    ];
}

export const rdsProxyOption: PoolerOption = (config) => {
    const args = rdsProxyArgs(config, config.rds as RdsProxySpec);
    validateRdsProxyArgs(args);
    const budget = buildBudget(primaryLimits(config.database), [
        rdsProxyBudgetLine(args.name, args.pool.maxConnectionsPercent, config.database.maxConnections),
    ]);
    assertWithinBudget(
        budget,
        "Lower velure-pooling:rdsMaxConnectionsPercent so that the proxy leaves databaseReservedConnections free.",
    );
    const caBundle = args.verifyCertificate ? rdsProxyCaBundle(new Date()).pem : undefined;
    const declare: DeclarePooler = ({ provider, serviceNamespaces }) => {
        const proxy = new RdsProxy("velure-rds-proxy", args);
        const connections = new Map<string, ServiceConnection>();
        const trusts = new Map<string, RdsProxyTrust>();
        for (const service of config.services) {
            const trust = caBundle
                ? new RdsProxyTrust(`${service.releaseName}-rds-proxy-trust`, { namespace: serviceNamespaces[service.namespace], caBundle }, { providers: [provider] })
                : undefined;
            if (trust) {
                trusts.set(service.name, trust);
            }
            const tls = proxyTls(args.requireTls, trust);
            connections.set(service.name, {
                host: proxy.host,
                port: proxy.port,
                env: { ...tls.env, ...readOnlyEnv(proxy, service.database) },
                values: tls.values,
            });
        }
        const readyFor = (service: ServiceSpec, credentials: k8s.core.v1.Secret) => {
            if (args.iamAuth === "REQUIRED") {
                return [];
            }
            const trust = trusts.get(service.name);
            const check = new RdsProxyCheck(
                `${service.releaseName}-rds-proxy-check`,
                {
                    namespace: serviceNamespaces[service.namespace],
                    image: config.pgbouncer.image,
                    host: proxy.host,
                    port: proxy.port,
                    database: service.database,
                    user: config.database.user,
                    password: { secretName: credentials.metadata.name, key: CREDENTIALS_PASSWORD_KEY },
                    sslmode: (connections.get(service.name) as ServiceConnection).env.POSTGRES_SSLMODE as string,
                    ca: trust ? { configMapName: trust.configMapName, dir: PROXY_CA_DIR, file: PROXY_CA_FILE } : undefined,
                },
                { providers: [provider], dependsOn: [proxy, credentials, ...(trust ? [trust] : [])] },
            );
            return [check];
        };
        return { host: proxy.host, port: proxy.port, ready: [proxy], readyFor, connectionFor: (service) => connections.get(service.name) as ServiceConnection };
    };
    return { budget, declare, warnings: [...droppedReplicaWarning(config), ...uncheckedIamWarning(args)] };
};
