// mode = rds-proxy: maps the validated config to one RdsProxy per database server (a proxy has exactly one target).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { NetworkPath, addressesEgress } from "../components/allowPolicy";
import { assertWithinBudget, buildBudget } from "../components/connectionBudget";
import { primaryLimits, serversInUse, servicesOn } from "./budget";
import { PROXY_PORT, RdsProxy, RdsProxyArgs, rdsProxyBudgetLine, validateRdsProxyArgs } from "../components/rdsProxy";
import { CREDENTIALS_PASSWORD_KEY, RdsProxySpec, RdsServerSpec } from "../components/specs";
import { DatabaseSpec, ServiceSpec, VelureConfig, serverOf } from "../config";
import { PROXY_CA_DIR, PROXY_CA_FILE, RdsProxyTrust } from "../components/rdsProxyTrust";
import { RdsProxyCheck } from "../components/rdsProxyCheck";
import { rdsProxyCaBundle } from "../components/rdsCertificates";
import { AppTls, DeclarePooler, PoolerOption, ServiceConnection, ServiceCredentials, ServiceEndpoint, serviceConnection, soleAddress } from "./types";

export function rdsProxyArgs(rds: RdsProxySpec, server: DatabaseSpec): RdsProxyArgs {
    const { servers, ...shared } = rds;
    const credentials = server.credentials;
    return {
        ...shared,
        ...(servers.find((s) => s.server === server.name) as RdsServerSpec),
        // A server whose password is in Secrets Manager: the proxy reads that secret itself.
        ...(credentials.source === "secretsManager" ? { secretArn: credentials.secretArn } : { password: credentials.password }),
        username: server.user,
        databasePort: server.port,
        databaseMaxConnections: server.maxConnections,
    };
}

/** The component's name: velure-rds-proxy, or per server velure-rds-proxy-<server>. */
function proxyComponentName(server: DatabaseSpec): string {
    return server.name ? `velure-rds-proxy-${server.name}` : "velure-rds-proxy";
}

/** The app's TLS towards the proxy: verify-full with Amazon's root CAs (the proxy's ACM certificate), unless opted out. */
function proxyTls(requireTls: boolean, trust: RdsProxyTrust | undefined): AppTls {
    if (trust) {
        return { sslmode: "verify-full", rootCert: PROXY_CA_FILE };
    }
    return { sslmode: requireTls ? "require" : "prefer" };
}

/** The proxy's read-only endpoint (Aurora), which serves the same database name. */
function readEndpoint(proxy: RdsProxy, database: string): ServiceEndpoint | undefined {
    return proxy.readOnlyHost ? { host: proxy.readOnlyHost, port: proxy.port, database } : undefined;
}

/** With IAM auth required, a password cannot log in through the proxy: the releases wait for its target's registration only. */
function uncheckedIamWarning(rds: RdsProxySpec): string[] {
    if (rds.iamAuth !== "REQUIRED") {
        return [];
    }
    return [
        "rdsIamAuth: REQUIRED, so the program cannot log in through the proxy to check that it serves before the releases move onto it " +
            "(it checks with the services' password otherwise): the releases wait only for the target's registration",
    ];
}

/** RDS Proxy has no read-only endpoint for an RDS instance's replica: the apps' reads go to the primary. */
function droppedReplicaWarning(config: VelureConfig, server: DatabaseSpec): string[] {
    if (!server.replicaHost || config.rds?.readOnlyEndpoint) {
        return [];
    }
    const key = server.name ? `${server.at}.replicaHost` : "databaseReplicaHost";
    return [
        `${key}: ${server.replicaHost} is not used in mode rds-proxy: every query goes through the proxy to the primary ` +
            "(RDS Proxy's read-only endpoints serve Aurora clusters only: rdsClusterIdentifier with rdsReadOnlyEndpoint)",
    ];
}

/**
 * The apps reach the proxy's endpoint, whose network interfaces are in rdsSubnetIds: those subnets' CIDR blocks
 * (read from AWS), on the proxy's port. Every proxy of the program shares the subnets.
 */
function proxyPath(rds: RdsProxySpec): pulumi.Output<NetworkPath> {
    const cidrs = rds.subnetIds.map((id) => aws.ec2.getSubnetOutput({ id }).cidrBlock);
    return pulumi.all(cidrs).apply((blocks) => ({ egress: [addressesEgress(blocks, PROXY_PORT)], ingress: [] }));
}

export const rdsProxyOption: PoolerOption = (config) => {
    const rds = config.rds as RdsProxySpec;
    const servers = serversInUse(config);
    const args = new Map(servers.map((server) => [server.name, rdsProxyArgs(rds, server)]));
    for (const a of args.values()) {
        validateRdsProxyArgs(a);
    }
    const budget = servers.map((server) => {
        const a = args.get(server.name) as RdsProxyArgs;
        const pools = servicesOn(config, server).map((s) => s.database);
        return buildBudget(primaryLimits(server, pools), [rdsProxyBudgetLine(a.name, a.pool.maxConnectionsPercent, server.maxConnections)]);
    });
    assertWithinBudget(budget, "Lower velure-pooling:rdsMaxConnectionsPercent so that the proxy leaves the server's reserved connections free.");
    const caBundle = rds.verifyCertificate ? rdsProxyCaBundle(new Date()).pem : undefined;
    const declare: DeclarePooler = ({ provider, serviceNamespaces }) => {
        const proxies = new Map(servers.map((server) => [server.name, new RdsProxy(proxyComponentName(server), args.get(server.name) as RdsProxyArgs)]));
        const proxyOf = (service: ServiceSpec) => proxies.get(serverOf(config, service).name) as RdsProxy;
        const connections = new Map<string, ServiceConnection>();
        const trusts = new Map<string, RdsProxyTrust>();
        const path = proxyPath(rds);
        for (const service of config.services) {
            const proxy = proxyOf(service);
            const trust = caBundle
                ? new RdsProxyTrust(`${service.releaseName}-rds-proxy-trust`, { namespace: serviceNamespaces[service.namespace], caBundle }, { providers: [provider] })
                : undefined;
            if (trust) {
                trusts.set(service.name, trust);
            }
            const primary = { host: proxy.host, port: proxy.port, database: service.database };
            const connection = serviceConnection(primary, proxyTls(rds.requireTls, trust), readEndpoint(proxy, service.database), trust?.chartValues ?? {}, path);
            connections.set(service.name, connection);
        }
        const readyFor = (service: ServiceSpec, credentials: ServiceCredentials) => {
            if (rds.iamAuth === "REQUIRED") {
                return [];
            }
            const proxy = proxyOf(service);
            const trust = trusts.get(service.name);
            const check = new RdsProxyCheck(
                `${service.releaseName}-rds-proxy-check`,
                {
                    namespace: serviceNamespaces[service.namespace],
                    image: config.pgbouncer.image,
                    host: proxy.host,
                    port: proxy.port,
                    database: service.database,
                    user: serverOf(config, service).user,
                    password: { secretName: credentials.name, key: CREDENTIALS_PASSWORD_KEY },
                    sslmode: (connections.get(service.name) as ServiceConnection).tls.sslmode,
                    ca: trust ? { configMapName: trust.configMapName, dir: PROXY_CA_DIR, file: PROXY_CA_FILE } : undefined,
                },
                { providers: [provider], dependsOn: [proxy, credentials.resource, ...(trust ? [trust] : [])] },
            );
            return [check];
        };
        return { ...soleAddress([...proxies.values()]), ready: [...proxies.values()], readyFor, connectionFor: (service) => connections.get(service.name) as ServiceConnection };
    };
    return { budget, declare, warnings: [...servers.flatMap((server) => droppedReplicaWarning(config, server)), ...uncheckedIamWarning(rds)] };
};
