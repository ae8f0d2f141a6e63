// mode = rds-proxy: maps the validated config to one RdsProxy in front of the database.
import * as pulumi from "@pulumi/pulumi";
import { assertWithinBudget, buildBudget } from "../components/connectionBudget";
import { primaryLimits } from "./budget";
import { RdsProxy, RdsProxyArgs, rdsProxyBudgetLine, validateRdsProxyArgs } from "../components/rdsProxy";
import { RdsProxySpec } from "../components/specs";
import { VelureConfig } from "../config";
import { RdsProxyTrust, verifyFullEnv } from "../components/rdsProxyTrust";
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

export const rdsProxyOption: PoolerOption = (config) => {
    const args = rdsProxyArgs(config, config.rds as RdsProxySpec);
    validateRdsProxyArgs(args);
    const budget = buildBudget(primaryLimits(config.database), [
        rdsProxyBudgetLine(args.pool.maxConnectionsPercent, config.database.maxConnections),
    ]);
    assertWithinBudget(
        budget,
        "Lower velure-pooling:rdsMaxConnectionsPercent so that the proxy leaves databaseReservedConnections free.",
    );
    const caBundle = args.verifyCertificate ? rdsProxyCaBundle(new Date()).pem : undefined;
    const declare: DeclarePooler = ({ provider, serviceNamespaces }) => {
        const proxy = new RdsProxy("velure-rds-proxy", args);
        const connections = new Map<string, ServiceConnection>();
        for (const service of config.services) {
            const trust = caBundle
                ? new RdsProxyTrust(`${service.releaseName}-rds-proxy-trust`, { namespace: serviceNamespaces[service.namespace], caBundle }, { providers: [provider] })
                : undefined;
            const tls = proxyTls(args.requireTls, trust);
            connections.set(service.name, {
                host: proxy.host,
                port: proxy.port,
                env: { ...tls.env, ...readOnlyEnv(proxy, service.database) },
                values: tls.values,
            });
        }
        return { host: proxy.host, port: proxy.port, ready: [proxy], connectionFor: (service) => connections.get(service.name) as ServiceConnection };
    };
    return { budget, declare };
};
