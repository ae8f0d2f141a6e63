// velure:pooling:RdsProxy: AWS RDS Proxy in front of the RDS instance or Aurora cluster, with its secret,
// IAM role, log group, security groups, target and alarms.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { AlarmThresholds, RdsProxySpec, RdsServerSpec } from "./specs";
import { BudgetLine } from "./connectionBudget";

/** The PostgreSQL RDS Proxy always listens on 5432. */
export const PROXY_PORT = 5432;

/** One proxy: the settings all proxies share, and its own server's (a proxy has exactly one target). */
export interface RdsProxyArgs extends Omit<RdsProxySpec, "servers">, RdsServerSpec {
    /** The database user and password that go into the created secret (required when no secretArn is given). */
    username: string;
    password?: pulumi.Input<string>;
    databasePort: number;
    databaseMaxConnections: number;
}

export interface PolicyStatement {
    Sid: string;
    Effect: "Allow";
    Action: string[];
    Resource: string[];
    Condition?: Record<string, Record<string, string>>;
}

export interface PolicyDocument {
    Version: "2012-10-17";
    Statement: PolicyStatement[];
}

/**
 * The trust policy: only the RDS service may assume the proxy's role, and only on behalf of a proxy of this account
 * and region (against the confused deputy). The proxy's own ARN ends in an ID that AWS assigns after the role must
 * exist, so the ARN condition names every proxy of the account and region.
 */
export function assumeRolePolicy(account: string, region: string) {
    return {
        Version: "2012-10-17",
        Statement: [
            {
                Sid: "RdsAssumeRole",
                Effect: "Allow",
                Action: "sts:AssumeRole",
                Principal: { Service: "rds.amazonaws.com" },
                Condition: {
                    StringEquals: { "aws:SourceAccount": account },
                    ArnLike: { "aws:SourceArn": `arn:aws:rds:${region}:${account}:db-proxy:*` },
                },
            },
        ],
    };
}

/** A secret in another account or region than the proxy's cannot be read by it: say so instead of a failing proxy. */
export function assertSecretBesideProxy(secretArn: string, account: string, region: string): void {
    const [, , , secretRegion, secretAccount] = secretArn.split(":");
    if (secretRegion !== region || secretAccount !== account) {
        throw new Error(
            `the proxy's secret "${secretArn}" (rdsSecretArn or secretsManagerSecret) is not allowed; expected a secret in the proxy's account ${account} ` +
                `and region ${region} (it is in account ${secretAccount}, region ${secretRegion})`,
        );
    }
}

/**
 * Least privilege for the proxy: read exactly its own secrets, and decrypt with the customer key only
 * when Secrets Manager asks on its behalf.
 */
export function proxyRolePolicy(secretArns: string[], kmsKeyArn: string | undefined, region: string): PolicyDocument {
    const statements: PolicyStatement[] = [
        {
            Sid: "ReadProxySecrets",
            Effect: "Allow",
            Action: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            Resource: secretArns,
        },
    ];
    if (kmsKeyArn) {
        statements.push({
            Sid: "DecryptProxySecrets",
            Effect: "Allow",
            Action: ["kms:Decrypt"],
            Resource: [kmsKeyArn],
            Condition: { StringEquals: { "kms:ViaService": `secretsmanager.${region}.amazonaws.com` } },
        });
    }
    return { Version: "2012-10-17", Statement: statements };
}

/** The proxy's cap; `proxyName` is its placement: a renamed proxy is a new one beside the old until the old is deleted. */
export function rdsProxyBudgetLine(proxyName: string, maxConnectionsPercent: number, databaseMaxConnections: number): BudgetLine {
    const connections = Math.floor((databaseMaxConnections * maxConnectionsPercent) / 100);
    return {
        name: "rds-proxy",
        placement: proxyName,
        pods: 1,
        perPod: connections,
        connections,
        formula: `${maxConnectionsPercent}% (rdsMaxConnectionsPercent) of max_connections ${databaseMaxConnections}`,
    };
}

/** Everything registered against the proxy by name must be registered again when the proxy is replaced. */
export function registeredWithProxy(proxy: aws.rds.Proxy, parent: pulumi.Resource, dependsOn: pulumi.Resource[] = []): pulumi.CustomResourceOptions {
    return { parent, replaceWith: [proxy], dependsOn };
}

interface AlarmSpec {
    key: string;
    metric: string;
    statistic: string;
    comparison: string;
    threshold: number;
    description: string;
    dimensions: "proxy" | "target";
}

/** The alarms, each on a metric of namespace AWS/RDS with the proxy's dimensions. */
export function alarmSpecs(thresholds: AlarmThresholds): AlarmSpec[] {
    return [
        { key: "client-connections", metric: "ClientConnections", statistic: "Maximum", comparison: "GreaterThanOrEqualToThreshold", threshold: thresholds.clientConnections, dimensions: "proxy",
          description: "Client connections to the proxy are high: check the services' pool sizes (pgxpool MaxConns)." },
        { key: "borrow-latency", metric: "DatabaseConnectionsBorrowLatency", statistic: "Average", comparison: "GreaterThanOrEqualToThreshold", threshold: thresholds.borrowLatencyMicroseconds, dimensions: "proxy",
          description: "Clients wait for a database connection (microseconds): raise rdsMaxConnectionsPercent or reduce pinning." },
        { key: "session-pinned", metric: "DatabaseConnectionsCurrentlySessionPinned", statistic: "Maximum", comparison: "GreaterThanOrEqualToThreshold", threshold: thresholds.sessionPinnedConnections, dimensions: "proxy",
          description: "Connections are pinned to sessions (prepared statements, SET, advisory locks): see the README's pgx settings." },
        { key: "connection-setup-failed", metric: "DatabaseConnectionsSetupFailed", statistic: "Sum", comparison: "GreaterThanOrEqualToThreshold", threshold: thresholds.databaseConnectionsSetupFailed, dimensions: "proxy",
          description: "The proxy cannot open database connections: check the secret, the security groups and the database." },
        { key: "client-auth-failed", metric: "ClientConnectionsSetupFailedAuth", statistic: "Sum", comparison: "GreaterThanOrEqualToThreshold", threshold: thresholds.clientAuthFailures, dimensions: "proxy",
          description: "Clients fail to authenticate to the proxy: a wrong password, or TLS or IAM misconfiguration." },
        { key: "availability", metric: "AvailabilityPercentage", statistic: "Minimum", comparison: "LessThanThreshold", threshold: thresholds.availabilityPercent, dimensions: "target",
          description: "The proxy's target is not available: the database is down or failing over." },
    ];
}

export function validateRdsProxyArgs(args: RdsProxyArgs): void {
    if (!args.secretArn && args.password === undefined) {
        throw new Error("RdsProxy: needs a password for the secret it creates, or the secretArn of an existing one");
    }
    if (args.subnetIds.length < 2) {
        throw new Error(`RdsProxy: needs at least two subnets, got ${args.subnetIds.length}`);
    }
    if (args.readOnlyEndpoint && args.target.kind !== "cluster") {
        throw new Error("RdsProxy: a READ_ONLY endpoint needs an Aurora cluster target");
    }
}

export class RdsProxy extends pulumi.ComponentResource {
    public readonly host: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    /** The READ_ONLY endpoint's host, when one was asked for. */
    public readonly readOnlyHost?: pulumi.Output<string>;
    public readonly proxyName: pulumi.Output<string>;
    public readonly secretArn: pulumi.Output<string>;

    constructor(name: string, args: RdsProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("velure:pooling:RdsProxy", name, {}, opts);
        validateRdsProxyArgs(args);
        const child = { parent: this };
        const tags = { ...args.tags, "velure-pooling:proxy": args.name };

        const region = aws.getRegionOutput({}, child).region;
        const account = aws.getCallerIdentityOutput({}, child).accountId;
        this.secretArn = this.credentials(name, args, tags, account, region);
        const trust = pulumi.all([account, region]).apply(([a, r]) => JSON.stringify(assumeRolePolicy(a, r)));
        const role = new aws.iam.Role(`${name}-role`, { assumeRolePolicy: trust, tags }, child);
        const rolePolicy = new aws.iam.RolePolicy(
            `${name}-secrets`,
            {
                role: role.id,
                policy: pulumi.all([this.secretArn, region]).apply(([arn, r]) => JSON.stringify(proxyRolePolicy([arn], args.kmsKeyArn, r))),
            },
            child,
        );
        // The proxy writes to this group; creating it first keeps its retention (and a later create from failing).
        const logGroup = new aws.cloudwatch.LogGroup(
            `${name}-logs`,
            { name: `/aws/rds/proxy/${args.name}`, retentionInDays: args.logRetentionDays, tags },
            child,
        );
        const securityGroup = this.network(name, args, tags);

        const proxy = new aws.rds.Proxy(
            `${name}-proxy`,
            {
                name: args.name,
                engineFamily: "POSTGRESQL",
                roleArn: role.arn,
                vpcSubnetIds: args.subnetIds,
                vpcSecurityGroupIds: [securityGroup.id],
                requireTls: args.requireTls,
                idleClientTimeout: args.idleClientTimeout,
                debugLogging: args.debugLogging,
                auths: [
                    {
                        authScheme: "SECRETS",
                        secretArn: this.secretArn,
                        iamAuth: args.iamAuth,
                        clientPasswordAuthType: "POSTGRES_SCRAM_SHA_256",
                        description: `${args.username} for the velure services`,
                    },
                ],
                tags,
            },
            // The name is fixed (the log group carries it), so a replacement must delete the old proxy first.
            { parent: this, dependsOn: [logGroup, rolePolicy], deleteBeforeReplace: true },
        );
        const targetGroup = new aws.rds.ProxyDefaultTargetGroup(
            `${name}-target-group`,
            {
                dbProxyName: proxy.name,
                connectionPoolConfig: {
                    maxConnectionsPercent: args.pool.maxConnectionsPercent,
                    maxIdleConnectionsPercent: args.pool.maxIdleConnectionsPercent,
                    connectionBorrowTimeout: args.pool.connectionBorrowTimeout,
                    initQuery: args.pool.initQuery,
                },
            },
            registeredWithProxy(proxy, this),
        );
        const target = new aws.rds.ProxyTarget(
            `${name}-target`,
            {
                dbProxyName: proxy.name,
                targetGroupName: targetGroup.name,
                ...(args.target.kind === "instance"
                    ? { dbInstanceIdentifier: args.target.identifier }
                    : { dbClusterIdentifier: args.target.identifier }),
            },
            registeredWithProxy(proxy, this),
        );
        if (args.readOnlyEndpoint) {
            const endpoint = new aws.rds.ProxyEndpoint(
                `${name}-read-only`,
                {
                    dbProxyName: proxy.name,
                    dbProxyEndpointName: `${args.name}-ro`,
                    vpcSubnetIds: args.subnetIds,
                    vpcSecurityGroupIds: [securityGroup.id],
                    targetRole: "READ_ONLY",
                    tags,
                },
                registeredWithProxy(proxy, this, [target]),
            );
            this.readOnlyHost = endpoint.endpoint;
        }
        this.alarms(name, args, proxy, tags);

        this.host = proxy.endpoint;
        this.port = pulumi.output(PROXY_PORT);
        this.proxyName = proxy.name;
        this.registerOutputs({ host: this.host, port: this.port, proxyName: this.proxyName, secretArn: this.secretArn, readOnlyHost: this.readOnlyHost });
    }

    /** The secret the proxy logs in with: the one given, or a new one holding {username, password}. */
    /** The secret the proxy logs in with: the given one (checked against the caller's account), or a new one. */
    private credentials(
        name: string,
        args: RdsProxyArgs,
        tags: Record<string, string>,
        account: pulumi.Output<string>,
        region: pulumi.Output<string>,
    ): pulumi.Output<string> {
        if (args.secretArn) {
            const given = args.secretArn;
            // Everything that reads the ARN waits for this check, so a foreign secret fails the run before the proxy.
            return pulumi.all([account, region]).apply(([a, r]) => {
                assertSecretBesideProxy(given, a, r);
                return given;
            });
        }
        const secret = new aws.secretsmanager.Secret(
            `${name}-credentials`,
            {
                namePrefix: `${args.name}-db-credentials-`,
                description: `Database credentials that RDS Proxy ${args.name} uses`,
                kmsKeyId: args.kmsKeyArn,
                tags,
            },
            { parent: this },
        );
        new aws.secretsmanager.SecretVersion(
            `${name}-credentials-version`,
            {
                secretId: secret.id,
                secretString: pulumi.secret(pulumi.jsonStringify({ username: args.username, password: args.password })),
            },
            { parent: this },
        );
        return secret.arn;
    }

    /** The proxy's own security group: 5432 in from the cluster, out to the database only. */
    private network(name: string, args: RdsProxyArgs, tags: Record<string, string>): aws.ec2.SecurityGroup {
        const child = { parent: this };
        const group = new aws.ec2.SecurityGroup(
            `${name}-sg`,
            { vpcId: args.vpcId, description: `RDS Proxy ${args.name}: clients in, database out`, tags },
            child,
        );
        const proxyPort = { ipProtocol: "tcp", fromPort: PROXY_PORT, toPort: PROXY_PORT };
        args.clientSecurityGroupIds.forEach((source, i) =>
            new aws.vpc.SecurityGroupIngressRule(
                `${name}-in-sg-${i}`,
                { securityGroupId: group.id, referencedSecurityGroupId: source, description: "velure services", ...proxyPort, tags },
                child,
            ),
        );
        args.clientCidrs.forEach((cidr, i) =>
            new aws.vpc.SecurityGroupIngressRule(
                `${name}-in-cidr-${i}`,
                { securityGroupId: group.id, cidrIpv4: cidr, description: "velure services", ...proxyPort, tags },
                child,
            ),
        );
        const databasePort = { ipProtocol: "tcp", fromPort: args.databasePort, toPort: args.databasePort };
        new aws.vpc.SecurityGroupEgressRule(
            `${name}-out-database`,
            { securityGroupId: group.id, referencedSecurityGroupId: args.databaseSecurityGroupId, description: "to the database", ...databasePort, tags },
            child,
        );
        new aws.vpc.SecurityGroupIngressRule(
            `${name}-database-in`,
            { securityGroupId: args.databaseSecurityGroupId, referencedSecurityGroupId: group.id, description: `from RDS Proxy ${args.name}`, ...databasePort, tags },
            child,
        );
        return group;
    }

    private alarms(name: string, args: RdsProxyArgs, proxy: aws.rds.Proxy, tags: Record<string, string>): void {
        const actions = args.alarmTopicArn ? [args.alarmTopicArn] : [];
        const proxyDimensions = { ProxyName: proxy.name };
        const targetDimensions = { ProxyName: proxy.name, TargetGroup: "default", TargetRole: "READ_WRITE" };
        const common = { alarmActions: actions, okActions: actions, evaluationPeriods: 3, datapointsToAlarm: 2, treatMissingData: "notBreaching", tags };
        for (const spec of alarmSpecs(args.alarms)) {
            new aws.cloudwatch.MetricAlarm(
                `${name}-alarm-${spec.key}`,
                {
                    name: `${args.name}-${spec.key}`,
                    alarmDescription: spec.description,
                    namespace: "AWS/RDS",
                    metricName: spec.metric,
                    statistic: spec.statistic,
                    period: 60,
                    comparisonOperator: spec.comparison,
                    threshold: spec.threshold,
                    dimensions: spec.dimensions === "proxy" ? proxyDimensions : targetDimensions,
                    ...common,
                    // A target that reports nothing is an unavailable target.
                    ...(spec.key === "availability" ? { treatMissingData: "breaching" } : {}),
                },
                { parent: this },
            );
        }
        const metric = (id: string, metricName: string) => ({
            id,
            metric: { namespace: "AWS/RDS", metricName, stat: "Maximum", period: 60, dimensions: targetDimensions },
        });
        new aws.cloudwatch.MetricAlarm(
            `${name}-alarm-database-connections`,
            {
                name: `${args.name}-database-connections`,
                alarmDescription:
                    "The proxy uses most of the connections it may open: raise rdsMaxConnectionsPercent (within the budget) or the instance class.",
                comparisonOperator: "GreaterThanOrEqualToThreshold",
                threshold: args.alarms.databaseConnectionsPercent,
                metricQueries: [
                    { id: "used", expression: "100 * connections / allowed", label: "DatabaseConnections % of MaxDatabaseConnectionsAllowed", returnData: true },
                    metric("connections", "DatabaseConnections"),
                    metric("allowed", "MaxDatabaseConnectionsAllowed"),
                ],
                ...common,
            },
            { parent: this },
        );
    }
}
