// mode = rds-proxy: maps the validated config to one RdsProxy in front of the database.
import * as pulumi from "@pulumi/pulumi";
import { assertWithinBudget, buildBudget } from "../components/connectionBudget";
import { primaryLimits } from "./budget";
import { RdsProxy, RdsProxyArgs, rdsProxyBudgetLine, validateRdsProxyArgs } from "../components/rdsProxy";
import { RdsProxySpec } from "../components/specs";
import { VelureConfig } from "../config";
import { PoolerOption, sharedEndpoint } from "./types";

export function rdsProxyArgs(config: VelureConfig, rds: RdsProxySpec): RdsProxyArgs {
    return {
        ...rds,
        username: config.database.user,
        password: config.database.password,
        databasePort: config.database.port,
        databaseMaxConnections: config.database.maxConnections,
    };
}

function proxyEnv(proxy: RdsProxy, requireTls: boolean, database: string): Record<string, pulumi.Input<string>> {
    // The proxy presents an ACM certificate; `require` encrypts, and verify-full needs Amazon's root CAs in the app.
    const env: Record<string, pulumi.Input<string>> = { POSTGRES_SSLMODE: requireTls ? "require" : "prefer" };
    if (proxy.readOnlyHost) {
        env.POSTGRES_READ_HOST = proxy.readOnlyHost;
        env.POSTGRES_READ_PORT = proxy.port.apply(String);
        env.POSTGRES_READ_DB = database;
    }
    return env;
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
    return () => {
        const proxy = new RdsProxy("velure-rds-proxy", args);
        return sharedEndpoint(proxy.host, proxy.port, budget, (service) => proxyEnv(proxy, args.requireTls, service.database));
    };
};
