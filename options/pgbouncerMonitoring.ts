// The alert rules and dashboard that both PgBouncer options declare once, for all their PgBouncers.
import * as k8s from "@pulumi/kubernetes";
import { ConnectionBudget } from "../components/connectionBudget";
import { PgBouncerMonitoring, ServerScope } from "../components/pgbouncerMonitoring";
import { VelureConfig } from "../config";

/** The servers to watch: each server's budget, over the pools that open their connections to it. */
export function serverScopes(budget: ConnectionBudget): ServerScope[] {
    return budget.map((server) => ({
        server: server.server,
        availableConnections: server.available,
        pools: `name=~"${server.pools.join("|")}"`,
    }));
}

export function declareMonitoring(config: VelureConfig, title: string, selector: string, budget: ConnectionBudget, provider: k8s.Provider): void {
    if (!config.monitoring) {
        return;
    }
    new PgBouncerMonitoring(
        "velure-pooling-monitoring",
        { title, scope: { selector, servers: serverScopes(budget) }, spec: config.monitoring },
        { providers: [provider] },
    );
}
