// The alert rules and dashboard that both PgBouncer options declare once, for all their PgBouncers.
import * as k8s from "@pulumi/kubernetes";
import { ConnectionBudget } from "../components/connectionBudget";
import { PgBouncerMonitoring } from "../components/pgbouncerMonitoring";
import { VelureConfig } from "../config";

export function declareMonitoring(config: VelureConfig, title: string, selector: string, budget: ConnectionBudget, provider: k8s.Provider): void {
    if (!config.monitoring) {
        return;
    }
    new PgBouncerMonitoring(
        "velure-pooling-monitoring",
        { title, scope: { selector, availableConnections: budget.available }, spec: config.monitoring },
        { providers: [provider] },
    );
}
