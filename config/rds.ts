// The config of the rds-proxy option, read only when that mode is chosen (its keys name AWS resources that
// the other modes never touch).
import * as pulumi from "@pulumi/pulumi";
import { IPV4_CIDR, SECRET_ARN, refuseSecretInOtherRegion } from "./checks";
import { Reader, isRecord, readStringList, readThresholds, requiredMatch } from "./reader";
import { DEFAULT_RDS_ALARMS } from "./schema";
import { RdsProxySpec, RdsServerSpec, RdsTarget } from "../components/specs";
import { DatabaseSpec, RdsServerKey, serverRdsValue } from "./servers";

const PROXY_NAME = /^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,58}[A-Za-z0-9]$/;
const RDS_IDENTIFIER = /^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8,17}$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]{36}$/;
const SNS_TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/;
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

type Given = { value: string; key: string };

function optionalMatch(r: Reader, key: Parameters<Reader["string"]>[0], pattern: RegExp, allowed: string): string | undefined {
    return givenMatch(r, { value: r.string(key), key }, pattern, allowed);
}

function givenMatch(r: Reader, given: Given, pattern: RegExp, allowed: string): string | undefined {
    if (given.value && !pattern.test(given.value)) {
        r.problem(given.key, given.value, allowed);
    }
    return given.value || undefined;
}

function readTarget(r: Reader, server: DatabaseSpec): RdsTarget {
    const given = (key: RdsServerKey) => serverRdsValue(r, server, key);
    const instanceKey = given("rdsInstanceIdentifier");
    const clusterKey = given("rdsClusterIdentifier");
    const instance = givenMatch(r, instanceKey, RDS_IDENTIFIER, "expected an RDS DB instance identifier");
    const cluster = givenMatch(r, clusterKey, RDS_IDENTIFIER, "expected an Aurora DB cluster identifier");
    if (instance && cluster) {
        r.problem(clusterKey.key, cluster, `expected exactly one target, but ${instanceKey.key} is set too ("${instance}")`);
    }
    if (!instance && !cluster) {
        r.problem(instanceKey.key, "", `expected exactly one target: set ${instanceKey.key} (RDS) or ${clusterKey.key} (Aurora)`);
    }
    return cluster && !instance ? { kind: "cluster", identifier: cluster } : { kind: "instance", identifier: instance ?? "" };
}

/** No client range wider than a whole private network: 0.0.0.0/0 (or two /1 halves) would open the proxy to anything routed to the VPC. */
const MIN_CLIENT_PREFIX = 8;

function readNetwork(r: Reader): Pick<RdsProxySpec, "vpcId" | "subnetIds" | "clientSecurityGroupIds" | "clientCidrs"> {
    const subnetIds = readStringList(r, "rdsSubnetIds", SUBNET_ID, "expected subnet IDs such as subnet-0123456789abcdef0");
    if (subnetIds.length < 2) {
        r.problem("rdsSubnetIds", subnetIds, "expected at least two subnets, in different availability zones");
    }
    if (new Set(subnetIds).size !== subnetIds.length) {
        r.problem("rdsSubnetIds", subnetIds, "expected each subnet once");
    }
    const clientSecurityGroupIds = readStringList(r, "rdsClientSecurityGroupIds", SECURITY_GROUP_ID, "expected security group IDs such as sg-0123456789abcdef0");
    const clientCidrs = readStringList(r, "rdsClientCidrs", IPV4_CIDR, "expected IPv4 CIDR blocks such as 10.0.0.0/16");
    for (const cidr of clientCidrs.filter((c) => Number(c.split("/")[1]) < MIN_CLIENT_PREFIX)) {
        r.problem(
            "rdsClientCidrs",
            cidr,
            `expected a prefix of /${MIN_CLIENT_PREFIX} or longer: the proxy is for the cluster's pods, and the widest private range (10.0.0.0/8) is /8`,
        );
    }
    if (clientSecurityGroupIds.length === 0 && clientCidrs.length === 0) {
        r.problem("rdsClientSecurityGroupIds", [], "expected the cluster's node or pod security groups (or rdsClientCidrs): nothing could reach the proxy");
    }
    return {
        vpcId: requiredMatch(r, "rdsVpcId", VPC_ID, "expected a VPC ID such as vpc-0123456789abcdef0"),
        subnetIds,
        clientSecurityGroupIds,
        clientCidrs,
    };
}

/** AWS applies EXCLUDE_VARIABLE_SETS to MySQL engines only: on PostgreSQL a SET always pins, whatever the filter. */
function refusePinningFilters(r: Reader): void {
    const filters = r.object<unknown>("rdsSessionPinningFilters");
    if (!Array.isArray(filters) || filters.length > 0) {
        r.problem(
            "rdsSessionPinningFilters",
            filters,
            "expected []: RDS Proxy supports session pinning filters for MySQL engines only, and a SET pins a PostgreSQL session " +
                "whatever the filter; put settings that every connection shares in rdsInitQuery",
        );
    }
}

function readPool(r: Reader): RdsProxySpec["pool"] {
    const maxConnectionsPercent = r.integer("rdsMaxConnectionsPercent", 1, 100);
    const maxIdleConnectionsPercent = r.integer("rdsMaxIdleConnectionsPercent", 0, 100);
    if (r.valid("rdsMaxConnectionsPercent", "rdsMaxIdleConnectionsPercent") && maxIdleConnectionsPercent > maxConnectionsPercent) {
        r.problem("rdsMaxIdleConnectionsPercent", maxIdleConnectionsPercent, `expected at most rdsMaxConnectionsPercent (${maxConnectionsPercent})`);
    }
    refusePinningFilters(r);
    return {
        maxConnectionsPercent,
        maxIdleConnectionsPercent,
        // The RDS API's range for connection_borrow_timeout (older docs said 3600).
        connectionBorrowTimeout: r.integer("rdsConnectionBorrowTimeout", 0, 300),
        initQuery: r.string("rdsInitQuery") || undefined,
    };
}

function readTags(r: Reader): Record<string, string> {
    const raw = r.object<unknown>("awsTags");
    if (!isRecord(raw) || !Object.values(raw).every((v) => typeof v === "string")) {
        r.problem("awsTags", raw, "expected a map of tag names to string values");
        return {};
    }
    return raw as Record<string, string>;
}

/** The secret must live in the proxy's region (aws:region); its account is checked against the caller's at deploy. */
function readSecretArn(r: Reader, given: Given): string | undefined {
    const arn = givenMatch(r, given, SECRET_ARN, "expected a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)");
    if (arn) {
        refuseSecretInOtherRegion(r, given.key, arn);
    }
    return arn;
}

/** One proxy per database server (a proxy has exactly one target): named <rdsProxyName>, or <rdsProxyName>-<server>. */
function readRdsServer(r: Reader, base: string, server: DatabaseSpec): RdsServerSpec {
    const name = server.name ? `${base}-${server.name}` : base;
    if (!PROXY_NAME.test(name)) {
        r.problem("rdsProxyName", name, `expected 1-60 letters, digits and single hyphens, starting with a letter${server.name ? " (with -<server name> added)" : ""}`);
    }
    const group = serverRdsValue(r, server, "rdsDatabaseSecurityGroupId");
    if (!SECURITY_GROUP_ID.test(group.value)) {
        r.problem(group.key, group.value, "expected the database's security group ID (sg-...)");
    }
    const secretArn = readSecretArn(r, serverRdsValue(r, server, "rdsSecretArn"));
    if (secretArn && server.credentials.source === "secretsManager") {
        r.problem(`${server.at}.rdsSecretArn`, secretArn, "expected none: the proxy reads the server's secretsManagerSecret; set one of the two");
    }
    return { server: server.name, name, target: readTarget(r, server), databaseSecurityGroupId: group.value, secretArn };
}

export function readRdsProxy(r: Reader, databaseServers: DatabaseSpec[]): RdsProxySpec {
    const base = r.string("rdsProxyName") || `velure-${pulumi.getStack()}`;
    const servers = databaseServers.map((server) => readRdsServer(r, base, server));
    const readOnlyEndpoint = r.boolean("rdsReadOnlyEndpoint");
    const instance = servers.find((s) => s.target.kind !== "cluster");
    if (readOnlyEndpoint && instance) {
        r.problem("rdsReadOnlyEndpoint", true, `READ_ONLY proxy endpoints exist only for Aurora clusters (${instance.target.identifier} is an instance); set rdsClusterIdentifier or turn it off`);
    }
    const logRetentionDays = r.integer("rdsLogRetentionDays", 1);
    if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
        r.problem("rdsLogRetentionDays", logRetentionDays, `expected one of CloudWatch's values: ${LOG_RETENTION_DAYS.join(", ")}`);
    }
    return {
        servers,
        ...readNetwork(r),
        kmsKeyArn: optionalMatch(r, "rdsKmsKeyArn", KMS_KEY_ARN, "expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<uuid>)"),
        requireTls: r.boolean("rdsRequireTls"),
        verifyCertificate: r.boolean("rdsVerifyProxyCertificate"),
        iamAuth: r.oneOf("rdsIamAuth", ["DISABLED", "REQUIRED"] as const),
        idleClientTimeout: r.integer("rdsIdleClientTimeout", 1, 28800),
        debugLogging: r.boolean("rdsDebugLogging"),
        pool: readPool(r),
        readOnlyEndpoint,
        logRetentionDays,
        alarmTopicArn: optionalMatch(r, "rdsAlarmTopicArn", SNS_TOPIC_ARN, "expected an SNS topic ARN"),
        alarms: readThresholds(r, "rdsAlarms", DEFAULT_RDS_ALARMS, false),
        tags: readTags(r),
    };
}
