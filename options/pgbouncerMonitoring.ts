// The alert rules and dashboard that both PgBouncer options declare once, for all their PgBouncers.
import * as k8s from "@pulumi/kubernetes";
import { ConnectionBudget } from "../components/connectionBudget";
import { PgBouncerMonitoring, ServerScope } from "../components/pgbouncerMonitoring";
import { READ_ONLY_SUFFIX } from "../components/specs";
import { VelureConfig } from "../config";

/** The servers to watch: the read-only pools count against the replica's budget when it has one of its own. */
export function serverScopes(budget: ConnectionBudget): ServerScope[] {
    const primary = { server: budget.server, availableConnections: budget.available };
    if (!budget.replica) {
        return [{ ...primary, pools: 'name!="pgbouncer"' }];
    }
    const readOnly = `".*${READ_ONLY_SUFFIX}"`;
    return [
        { ...primary, pools: `name!="pgbouncer", name!~${readOnly}` },
        { server: budget.replica.server, availableConnections: budget.replica.available, pools: `name=~${readOnly}` },
    ];
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
