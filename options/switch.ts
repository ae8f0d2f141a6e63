// A switch of mode: until the old pooler is deleted at the end of the update, both poolers hold server connections,
// so their worst cases add up. The one moment the database is most likely to run out is checked like any other.
import { PoolerBudget, assertWithinBudget, overBudget, switchBudget } from "../components/connectionBudget";
import { VelureConfig } from "../config";

export const ACCEPT_KEY = "acceptSwitchOverBudget";

function switchAdvice(from: string, to: string): string {
    return [
        "Until the old pooler is deleted at the end of the update, both hold server connections. Ways out:",
        "  - lower the new pooler's worst case for the switch (pgbouncerDefaultPoolSize, pgbouncerReservePoolSize or pgbouncerMaxDbConnections; " +
            "the services' maxReplicas with sidecars; rdsMaxConnectionsPercent for RDS Proxy), and raise it again once the switch is done;",
        `  - switch in two steps: first deploy mode ${from} with smaller pools, then switch;`,
        "  - raise the database's max_connections, and databaseMaxConnections with it;",
        `  - or accept the risk for this one switch: pulumi config set velure-pooling:${ACCEPT_KEY} ${from}->${to}`,
    ].join("\n");
}

/**
 * Checks a switch from the deployed mode to the configured one; returns the warnings to print, and throws (before
 * any resource is declared) when the two poolers together could open more than the database allows.
 */
export function checkSwitch(config: VelureConfig, next: PoolerBudget, deployed: PoolerBudget | undefined): string[] {
    const switching = deployed !== undefined && deployed.mode !== next.mode;
    const accepted = config.acceptSwitch;
    const acceptsThis = switching && accepted?.from === deployed.mode && accepted?.to === next.mode;
    const warnings: string[] = [];
    if (accepted && !acceptsThis) {
        const what = switching ? `this deployment switches ${deployed.mode}->${next.mode}` : `this deployment stays in ${next.mode}`;
        warnings.push(`velure-pooling:${ACCEPT_KEY}: "${accepted.from}->${accepted.to}" accepts nothing here (${what}); remove it: pulumi config rm velure-pooling:${ACCEPT_KEY}`);
    }
    if (!switching) {
        return warnings;
    }
    const budget = switchBudget(deployed, next);
    const over = overBudget(budget);
    if (over && acceptsThis) {
        warnings.push(
            `velure-pooling:${ACCEPT_KEY}: the switch ${deployed.mode}->${next.mode} may open ${over.used} server connections to the ${over.server}, ` +
                `which allows ${over.available}; accepted for this switch (remove the key once it is done)`,
        );
        return warnings;
    }
    assertWithinBudget(budget, switchAdvice(deployed.mode, next.mode), `during the switch from ${deployed.mode} to ${next.mode}, the two poolers together`);
    return warnings;
}
