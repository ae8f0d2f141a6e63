import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { PolicyDocument, alarmSpecs, assertSecretBesideProxy, assumeRolePolicy, proxyRolePolicy, registeredWithProxy } from "../../components/rdsProxy";
import { subjectsOf } from "../../components/rdsCertificates";
import { DEFAULT_RDS_ALARMS } from "../../config/schema";
import { K8S, MOCK_ACCOUNT, MOCK_REGION, PASSWORD, PASSWORD_TOKEN, ProgramRun, ROOT, isWrappedSecret, programError, runProgram, stackConfig } from "./harness";

const RDS = { mode: "rds-proxy" };
const AWS = {
    proxy: "aws:rds/proxy:Proxy",
    targetGroup: "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup",
    target: "aws:rds/proxyTarget:ProxyTarget",
    endpoint: "aws:rds/proxyEndpoint:ProxyEndpoint",
    secret: "aws:secretsmanager/secret:Secret",
    secretVersion: "aws:secretsmanager/secretVersion:SecretVersion",
    role: "aws:iam/role:Role",
    rolePolicy: "aws:iam/rolePolicy:RolePolicy",
    logGroup: "aws:cloudwatch/logGroup:LogGroup",
    securityGroup: "aws:ec2/securityGroup:SecurityGroup",
    ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    alarm: "aws:cloudwatch/metricAlarm:MetricAlarm",
};
const SECRET_ARN = `arn:aws:secretsmanager:${MOCK_REGION}:123456789012:secret:velure-test-db-credentials-AbCdEf`;
const KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0b9c7c53-1f6d-4c4e-9d0a-3a2b1c0d9e8f";
const AURORA = { rdsInstanceIdentifier: "", rdsClusterIdentifier: "velure-aurora" };

function statements(run: ProgramRun): PolicyDocument["Statement"] {
    return JSON.parse(run.one(AWS.rolePolicy).inputs.policy).Statement;
}

describe("RdsProxy (mode = rds-proxy)", () => {
    let run: ProgramRun;
    let proxy: any;

    before(async () => {
        run = await runProgram(stackConfig("one-server-prod", RDS));
        proxy = run.one(AWS.proxy).inputs;
    });

    it("is one velure:pooling:RdsProxy component, and no PgBouncer", () => {
        assert.strictEqual(run.ofType("velure:pooling:RdsProxy").length, 1);
        assert.strictEqual(run.ofType("velure:pooling:PgBouncerCluster").length + run.ofType("velure:pooling:PgBouncerSidecar").length, 0);
        // The only ConfigMaps are the apps' CA bundles (RdsProxyTrust), one per service.
        assert.deepStrictEqual(run.ofType(K8S.configMap).map((c) => Object.keys(c.inputs.data)), [["ca.pem"], ["ca.pem"]]);
    });

    it("creates the Secrets Manager secret {username, password}, as a secret all the way", () => {
        const secret = run.one(AWS.secret).inputs;
        assert.strictEqual(secret.namePrefix, "velure-test-db-credentials-");
        assert.strictEqual(secret.kmsKeyId, undefined);
        const version = run.one(AWS.secretVersion);
        assert.ok(isWrappedSecret(version.raw.secretString), "secretString reaches the engine as a secret");
        assert.deepStrictEqual(JSON.parse(version.inputs.secretString), { username: "velure", password: PASSWORD });
    });

    it("uses an existing secret instead when its ARN is given, and creates none", async () => {
        const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:velure/prod-AbCdEf";
        const existing = await runProgram(stackConfig("one-server-prod", { ...RDS, rdsSecretArn: arn }));
        assert.strictEqual(existing.ofType(AWS.secret).length, 0);
        assert.strictEqual(existing.ofType(AWS.secretVersion).length, 0);
        assert.strictEqual(existing.one(AWS.proxy).inputs.auths[0].secretArn, arn);
        assert.deepStrictEqual(statements(existing)[0].Resource, [arn]);
    });

    it("lets only rds.amazonaws.com assume the role, for a proxy of this account and region (confused deputy)", () => {
        const trust = JSON.parse(run.one(AWS.role).inputs.assumeRolePolicy);
        assert.deepStrictEqual(trust, assumeRolePolicy(MOCK_ACCOUNT, MOCK_REGION));
        assert.deepStrictEqual(trust.Statement.map((s: any) => [s.Principal.Service, s.Action]), [["rds.amazonaws.com", "sts:AssumeRole"]]);
        assert.deepStrictEqual(trust.Statement[0].Condition, {
            StringEquals: { "aws:SourceAccount": "123456789012" },
            ArnLike: { "aws:SourceArn": "arn:aws:rds:eu-west-1:123456789012:db-proxy:*" },
        });
    });

    it("refuses a secret in another region (up front) or another account (at deploy) than the proxy's", async () => {
        const otherRegion = await programError(stackConfig("one-server-prod", { ...RDS, rdsSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:velure-AbCdEf" }));
        assert.match(otherRegion.message, /rdsSecretArn: ".*" is not allowed; expected a secret in the proxy's region, aws:region eu-west-1 \(it is in us-east-1\)/);
        assert.deepStrictEqual((otherRegion as any).declaredResources, []);
        assert.throws(
            () => assertSecretBesideProxy("arn:aws:secretsmanager:eu-west-1:999999999999:secret:velure-AbCdEf", MOCK_ACCOUNT, MOCK_REGION),
            /expected a secret in the proxy's account 123456789012 and region eu-west-1 \(it is in account 999999999999, region eu-west-1\)/,
        );
    });

    it("grants GetSecretValue and DescribeSecret on exactly the proxy's secret, in a separate RolePolicy", () => {
        const policy = run.one(AWS.rolePolicy).inputs;
        assert.strictEqual(policy.role, "velure-rds-proxy-role-id");
        assert.deepStrictEqual(statements(run), [
            { Sid: "ReadProxySecrets", Effect: "Allow", Action: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], Resource: [SECRET_ARN] },
        ]);
        for (const statement of statements(run)) {
            assert.ok(!statement.Resource.includes("*"), "no wildcard resource");
            assert.ok(statement.Action.every((a) => !a.includes("*")), "no wildcard action");
        }
        assert.strictEqual(run.one(AWS.role).inputs.inlinePolicies, undefined);
    });

    it("adds kms:Decrypt on the customer key only through Secrets Manager", async () => {
        const withKey = await runProgram(stackConfig("one-server-prod", { ...RDS, rdsKmsKeyArn: KMS_KEY }));
        assert.strictEqual(withKey.one(AWS.secret).inputs.kmsKeyId, KMS_KEY);
        assert.deepStrictEqual(statements(withKey)[1], {
            Sid: "DecryptProxySecrets", Effect: "Allow", Action: ["kms:Decrypt"], Resource: [KMS_KEY],
            Condition: { StringEquals: { "kms:ViaService": `secretsmanager.${MOCK_REGION}.amazonaws.com` } },
        });
        assert.deepStrictEqual(proxyRolePolicy(["a"], undefined, "r").Statement.length, 1);
    });

    it("creates the log group /aws/rds/proxy/<name> with retention, before the proxy", () => {
        const logGroup = run.one(AWS.logGroup).inputs;
        assert.strictEqual(logGroup.name, `/aws/rds/proxy/${proxy.name}`);
        assert.strictEqual(logGroup.retentionInDays, 90);
        const order = run.resources.map((r) => r.type);
        assert.ok(order.indexOf(AWS.logGroup) < order.indexOf(AWS.proxy), "the proxy waits for the log group");
        assert.ok(order.indexOf(AWS.rolePolicy) < order.indexOf(AWS.proxy), "the proxy waits for its permissions");
    });

    it("gives the proxy its own security group: 5432 in from the cluster, out to the database, and opens the database to it", () => {
        const group = run.one(AWS.securityGroup).inputs;
        assert.strictEqual(group.vpcId, "vpc-0f1e2d3c4b5a69788");
        assert.strictEqual(group.ingress, undefined, "no inline rules");
        const ingress = run.ofType(AWS.ingress).map((r) => r.inputs);
        const fromCluster = ingress.find((r) => r.securityGroupId === "velure-rds-proxy-sg-id");
        assert.deepStrictEqual([fromCluster.referencedSecurityGroupId, fromCluster.ipProtocol, fromCluster.fromPort, fromCluster.toPort], ["sg-0f1e2d3c4b5a697bb", "tcp", 5432, 5432]);
        const intoDatabase = ingress.find((r) => r.securityGroupId === "sg-0f1e2d3c4b5a697aa");
        assert.deepStrictEqual([intoDatabase.referencedSecurityGroupId, intoDatabase.fromPort], ["velure-rds-proxy-sg-id", 5432]);
        const egress = run.one(AWS.egress).inputs;
        assert.deepStrictEqual([egress.securityGroupId, egress.referencedSecurityGroupId, egress.fromPort], ["velure-rds-proxy-sg-id", "sg-0f1e2d3c4b5a697aa", 5432]);
        assert.deepStrictEqual(proxy.vpcSecurityGroupIds, ["velure-rds-proxy-sg-id"]);
        assert.deepStrictEqual(proxy.vpcSubnetIds, ["subnet-0f1e2d3c4b5a69711", "subnet-0f1e2d3c4b5a69722", "subnet-0f1e2d3c4b5a69733"]);
    });

    it("admits CIDR blocks too", async () => {
        const cidrs = await runProgram(stackConfig("one-server-prod", { ...RDS, rdsClientSecurityGroupIds: [], rdsClientCidrs: ["10.20.0.0/16"] }));
        const rule = cidrs.one(AWS.ingress, "velure-rds-proxy-in-cidr-0").inputs;
        assert.deepStrictEqual([rule.cidrIpv4, rule.fromPort], ["10.20.0.0/16", 5432]);
    });

    it("is a POSTGRESQL proxy with TLS required, SECRETS auth, IAM auth off and SCRAM for clients", () => {
        assert.strictEqual(proxy.engineFamily, "POSTGRESQL");
        assert.strictEqual(proxy.requireTls, true);
        assert.strictEqual(proxy.debugLogging, false);
        assert.strictEqual(proxy.idleClientTimeout, 1800);
        assert.strictEqual(proxy.roleArn, "arn:aws:iam::123456789012:role/velure-rds-proxy-role");
        assert.deepStrictEqual(proxy.auths, [
            { authScheme: "SECRETS", secretArn: SECRET_ARN, iamAuth: "DISABLED", clientPasswordAuthType: "POSTGRES_SCRAM_SHA_256", description: "velure for the velure services" },
        ]);
        assert.strictEqual(proxy.auths[0].username, undefined, "username with SECRETS fails");
        assert.strictEqual(proxy.tags.project, "velure-pooling");
    });

    it("can require IAM auth", async () => {
        const iam = await runProgram(stackConfig("one-server-prod", { ...RDS, rdsIamAuth: "REQUIRED" }));
        assert.strictEqual(iam.one(AWS.proxy).inputs.auths[0].iamAuth, "REQUIRED");
    });

    it("configures the default target group's pool from the seed's defaults", () => {
        const tg = run.one(AWS.targetGroup).inputs;
        assert.strictEqual(tg.dbProxyName, proxy.name);
        assert.deepStrictEqual(tg.connectionPoolConfig, { maxConnectionsPercent: 90, maxIdleConnectionsPercent: 50, connectionBorrowTimeout: 120 });
    });

    it("registers exactly one target, the RDS instance, and re-registers it when the proxy is replaced", () => {
        const target = run.one(AWS.target).inputs;
        assert.deepStrictEqual(target, { dbProxyName: proxy.name, targetGroupName: "default", dbInstanceIdentifier: "velure-prod" });
        const fakeProxy = {} as any;
        const parent = {} as any;
        assert.deepStrictEqual(registeredWithProxy(fakeProxy, parent).replaceWith, [fakeProxy]);
    });

    it("targets an Aurora cluster, with a READ_ONLY endpoint that reaches the services", async () => {
        const aurora = await runProgram(stackConfig("one-server-prod", { ...RDS, ...AURORA, rdsReadOnlyEndpoint: true }));
        assert.deepStrictEqual(aurora.one(AWS.target).inputs.dbClusterIdentifier, "velure-aurora");
        assert.strictEqual(aurora.one(AWS.target).inputs.dbInstanceIdentifier, undefined);
        const endpoint = aurora.one(AWS.endpoint).inputs;
        assert.strictEqual(endpoint.targetRole, "READ_ONLY");
        assert.strictEqual(endpoint.dbProxyEndpointName, "velure-test-ro");
        const env = aurora.one(K8S.release, "velure-auth-service").inputs.values.env;
        assert.strictEqual(env.POSTGRES_READ_HOST, "velure-test-ro.endpoint.proxy-abc123.eu-west-1.rds.amazonaws.com");
        assert.strictEqual(env.POSTGRES_READ_PORT, "5432");
        assert.strictEqual(run.ofType(AWS.endpoint).length, 0, "no endpoint unless asked");
    });

    it("feeds the proxy endpoint and 5432 to the releases and the outputs, and has the apps verify the proxy (verify-full)", () => {
        assert.strictEqual(run.outputs.postgresHost, "velure-test.proxy-abc123.eu-west-1.rds.amazonaws.com");
        assert.strictEqual(run.outputs.postgresPort, 5432);
        for (const service of ["auth-service", "publish-order-service"]) {
            const values = run.one(K8S.release, `velure-${service}`).inputs.values;
            assert.strictEqual(values.env.POSTGRES_HOST, run.outputs.postgresHost);
            assert.strictEqual(values.env.POSTGRES_PORT, "5432");
            assert.strictEqual(values.env.POSTGRES_SSLMODE, "verify-full");
            assert.strictEqual(values.env.POSTGRES_SSLROOTCERT, "/etc/velure/rds-proxy-ca/ca.pem");
            assert.strictEqual(values.env.PGSSLROOTCERT, "/etc/velure/rds-proxy-ca/ca.pem");
            // The bundle is mounted where the env points, from this service's own ConfigMap in its namespace.
            const configMap = run.one(K8S.configMap, `velure-${service}-rds-proxy-trust-ca`);
            assert.strictEqual(configMap.inputs.metadata.namespace, "velure");
            assert.deepStrictEqual(values.extraVolumes, [{ name: "rds-proxy-ca", configMap: { name: `velure-${service}-rds-proxy-trust-ca`, defaultMode: 0o444 } }]);
            assert.deepStrictEqual(values.extraVolumeMounts, [{ name: "rds-proxy-ca", mountPath: "/etc/velure/rds-proxy-ca", readOnly: true }]);
            assert.deepStrictEqual(subjectsOf(configMap.inputs.data["ca.pem"]), [
                "Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4", "Starfield Services Root Certificate Authority - G2",
            ]);
        }
    });

    it("gives the apps sslmode require (or prefer) and no CA when rdsVerifyProxyCertificate is false", async () => {
        for (const [requireTls, sslmode] of [[true, "require"], [false, "prefer"]] as const) {
            const optOut = await runProgram(stackConfig("one-server-prod", { ...RDS, rdsVerifyProxyCertificate: false, rdsRequireTls: requireTls }));
            assert.strictEqual(optOut.ofType(K8S.configMap).length, 0);
            for (const release of optOut.ofType(K8S.release)) {
                assert.strictEqual(release.inputs.values.env.POSTGRES_SSLMODE, sslmode);
                assert.strictEqual(release.inputs.values.env.PGSSLROOTCERT, undefined);
                assert.strictEqual(release.inputs.values.extraVolumes, undefined);
            }
        }
    });

    it("exports the proxy's share of max_connections as the budget", () => {
        assert.deepStrictEqual(run.outputs.connectionBudget[0].lines, [
            { name: "rds-proxy", placement: "velure-test", pods: 1, perPod: 369, connections: 369, formula: "90% (rdsMaxConnectionsPercent) of max_connections 410" },
        ]);
    });

    it("fails when the proxy's share leaves less than the reserved connections", async () => {
        const error = await programError(stackConfig("one-server-prod", { ...RDS, rdsMaxConnectionsPercent: 100 }));
        assert.match(error.message, /connection budget exceeded: the pooler can open 410 server connections to the primary, but it allows 390/);
        assert.match(error.message, /Lower velure-pooling:rdsMaxConnectionsPercent/);
    });

    it("declares the seven alarms with thresholds from config and the SNS topic as action", () => {
        const alarms = run.ofType(AWS.alarm).map((a) => a.inputs);
        const byName = Object.fromEntries(alarms.map((a) => [a.name.replace("velure-test-", ""), a]));
        assert.deepStrictEqual(Object.keys(byName).sort(), [
            "availability", "borrow-latency", "client-auth-failed", "client-connections", "connection-setup-failed", "database-connections", "session-pinned",
        ]);
        const metrics = alarms.flatMap((a) => a.metricName ? [a.metricName] : a.metricQueries.filter((q: any) => q.metric).map((q: any) => q.metric.metricName));
        for (const metric of ["DatabaseConnections", "MaxDatabaseConnectionsAllowed", "ClientConnections", "DatabaseConnectionsBorrowLatency",
            "DatabaseConnectionsCurrentlySessionPinned", "DatabaseConnectionsSetupFailed", "ClientConnectionsSetupFailedAuth", "AvailabilityPercentage"]) {
            assert.ok(metrics.includes(metric), `no alarm on ${metric}`);
        }
        for (const alarm of alarms) {
            assert.deepStrictEqual(alarm.alarmActions, ["arn:aws:sns:eu-west-1:123456789012:velure-prod-alerts"]);
        }
        assert.strictEqual(byName["database-connections"].threshold, DEFAULT_RDS_ALARMS.databaseConnectionsPercent);
        assert.strictEqual(byName["database-connections"].metricQueries[0].expression, "100 * connections / allowed");
        assert.strictEqual(byName.availability.comparisonOperator, "LessThanThreshold");
        assert.strictEqual(byName["client-connections"].dimensions.ProxyName, proxy.name);
        assert.strictEqual(byName["client-connections"].namespace, "AWS/RDS");
    });

    it("takes alarm thresholds from config, and no actions without a topic", async () => {
        const tuned = await runProgram(stackConfig("one-server-prod", { ...RDS, rdsAlarms: { clientConnections: 250 }, rdsAlarmTopicArn: "" }));
        const clients = tuned.one(AWS.alarm, "velure-rds-proxy-alarm-client-connections").inputs;
        assert.strictEqual(clients.threshold, 250);
        assert.deepStrictEqual(clients.alarmActions, []);
        assert.strictEqual(alarmSpecs(DEFAULT_RDS_ALARMS).length, 6);
    });

    it("keeps the password out of every resource but the secret version and the Kubernetes Secrets", () => {
        for (const resource of run.resources) {
            if (resource.type === AWS.secretVersion || resource.type === K8S.secret) {
                continue;
            }
            assert.ok(!JSON.stringify(resource.raw).includes(PASSWORD_TOKEN), `${resource.type} ${resource.name} holds the password`);
        }
    });

    describe("validation", () => {
        async function failsWith(overrides: Record<string, unknown>, pattern: RegExp): Promise<void> {
            const error = await programError(stackConfig("one-server-prod", { ...RDS, ...overrides }));
            assert.match(error.message, pattern);
            assert.deepStrictEqual((error as any).declaredResources, []);
        }

        it("needs at least two subnets", async () => {
            await failsWith({ rdsSubnetIds: [] }, /velure-pooling:rdsSubnetIds: \[\] is not allowed; expected at least two subnets/);
            await failsWith({ rdsSubnetIds: ["subnet-0f1e2d3c4b5a69711"] }, /rdsSubnetIds: \["subnet-0f1e2d3c4b5a69711"\] is not allowed; expected at least two subnets/);
            await failsWith({ rdsSubnetIds: ["subnet-1", "subnet-0f1e2d3c4b5a69711"] }, /rdsSubnetIds: "subnet-1" is not allowed; expected subnet IDs/);
        });

        it("needs exactly one target", async () => {
            await failsWith({ rdsInstanceIdentifier: "" }, /rdsInstanceIdentifier: "" is not allowed; expected exactly one target: set rdsInstanceIdentifier \(RDS\) or rdsClusterIdentifier \(Aurora\)/);
            await failsWith({ rdsClusterIdentifier: "velure-aurora" }, /rdsClusterIdentifier: "velure-aurora" is not allowed; expected exactly one target, but rdsInstanceIdentifier is set too/);
        });

        it("refuses a READ_ONLY endpoint on an instance target", async () => {
            await failsWith({ rdsReadOnlyEndpoint: true }, /rdsReadOnlyEndpoint: true is not allowed; READ_ONLY proxy endpoints exist only for Aurora clusters/);
        });

        it("range-checks the pool percentages and the borrow timeout", async () => {
            await failsWith({ rdsMaxConnectionsPercent: 101 }, /rdsMaxConnectionsPercent: "101" is not allowed; expected an integer from 1 to 100/);
            await failsWith({ rdsMaxConnectionsPercent: 0 }, /rdsMaxConnectionsPercent: "0"/);
            await failsWith({ rdsMaxIdleConnectionsPercent: 95 }, /rdsMaxIdleConnectionsPercent: 95 is not allowed; expected at most rdsMaxConnectionsPercent \(90\)/);
            await failsWith({ rdsConnectionBorrowTimeout: 301 }, /rdsConnectionBorrowTimeout: "301" is not allowed; expected an integer from 0 to 300/);
        });

        it("refuses session pinning filters: on PostgreSQL a SET always pins", async () => {
            await failsWith(
                { rdsSessionPinningFilters: ["EXCLUDE_VARIABLE_SETS"] },
                /rdsSessionPinningFilters: \["EXCLUDE_VARIABLE_SETS"\] is not allowed; expected \[\]: RDS Proxy supports session pinning filters for MySQL engines only.*rdsInitQuery/,
            );
        });

        it("refuses client ranges wider than a private network (no 0.0.0.0/0, nor its /1 halves)", async () => {
            await failsWith({ rdsClientCidrs: ["0.0.0.0/0"] }, /rdsClientCidrs: "0.0.0.0\/0" is not allowed; expected a prefix of \/8 or longer/);
            await failsWith({ rdsClientCidrs: ["0.0.0.0/1", "128.0.0.0/1"] }, /rdsClientCidrs: "128.0.0.0\/1" is not allowed/);
            await runProgram(stackConfig("one-server-prod", { ...RDS, rdsClientCidrs: ["10.0.0.0/8"] }));
        });

        it("refuses alarm thresholds that would always or never fire", async () => {
            await failsWith({ rdsAlarms: { databaseConnectionsPercent: 100 } }, /rdsAlarms.databaseConnectionsPercent: 100 is not allowed; expected a number above 0 and below 100/);
            await failsWith({ rdsAlarms: { availabilityPercent: 0 } }, /rdsAlarms.availabilityPercent: 0 is not allowed/);
            await failsWith({ rdsAlarms: { clientAuthFailures: -1 } }, /rdsAlarms.clientAuthFailures: -1 is not allowed; expected a number >= 0/);
        });

        it("rejects a malformed secret ARN, KMS key, topic, VPC, security group, CIDR, IAM mode and retention", async () => {
            await failsWith({ rdsSecretArn: "arn:aws:s3:::bucket" }, /rdsSecretArn: "arn:aws:s3:::bucket" is not allowed; expected a Secrets Manager secret ARN/);
            await failsWith({ rdsKmsKeyArn: "alias/velure" }, /rdsKmsKeyArn: "alias\/velure" is not allowed; expected a KMS key ARN/);
            await failsWith({ rdsAlarmTopicArn: "velure-alerts" }, /rdsAlarmTopicArn: "velure-alerts" is not allowed; expected an SNS topic ARN/);
            await failsWith({ rdsVpcId: "" }, /rdsVpcId: "" is not allowed; expected a VPC ID/);
            await failsWith({ rdsDatabaseSecurityGroupId: "default" }, /rdsDatabaseSecurityGroupId: "default" is not allowed/);
            await failsWith({ rdsClientCidrs: ["10.0.0.0/33"] }, /rdsClientCidrs: "10.0.0.0\/33" is not allowed; expected IPv4 CIDR blocks/);
            await failsWith({ rdsClientSecurityGroupIds: [] }, /rdsClientSecurityGroupIds: \[\] is not allowed; expected the cluster's node or pod security groups/);
            await failsWith({ rdsIamAuth: "ENABLED" }, /rdsIamAuth: "ENABLED" is not allowed; expected one of DISABLED, REQUIRED/);
            await failsWith({ rdsLogRetentionDays: 10 }, /rdsLogRetentionDays: 10 is not allowed; expected one of CloudWatch's values/);
            await failsWith({ rdsAlarms: { clientConection: 5 } }, /rdsAlarms.clientConection: 5 is not allowed; expected one of databaseConnectionsPercent/);
        });

        it("does not need the RDS keys in the PgBouncer modes", async () => {
            const cluster = await runProgram(stackConfig("one-server-prod", { mode: "pgbouncer-cluster", rdsSubnetIds: [], rdsVpcId: "" }));
            assert.strictEqual(cluster.ofType("velure:pooling:RdsProxy").length, 0);
        });
    });
});

describe("both stack files", () => {
    for (const stack of ["dev", "prod"]) {
        it(`${stack} names its AWS region, for the rds-proxy mode`, () => {
            const file = YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8"));
            assert.match(file.config["aws:region"], /^[a-z]{2}-[a-z]+-\d$/);
        });
    }
});
