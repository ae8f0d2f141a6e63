// An update from what runs now: until the old pods or pooler are gone, both generations hold server connections.
// A switch of mode adds the two poolers; a change within a mode adds what its rollout or replacement runs side by
// side (components/connectionBudget.ts transitionBudget). The moment the database is most likely to run out is
// checked like any other.
import { PoolerBudget, assertWithinBudget, overBudget, transitionBudget } from "../components/connectionBudget";
import { VelureConfig } from "../config";
import { Deployed } from "./deployed";

export const ACCEPT_KEY = "acceptSwitchOverBudget";

function switchAdvice(from: string, to: string): string {
    const sameMode = from === to;
    return [
        sameMode
            ? "Until the deployed pods (or the pooler a new namespace or name replaces) are gone, they hold their server connections beside the new ones. Ways out:"
            : "Until the old pooler is deleted at the end of the update, both hold server connections. Ways out:",
        sameMode
            ? "  - change in two steps: first the pool sizes (or the placement), then the replicas;"
            : "  - lower the new pooler's worst case for the switch (pgbouncerDefaultPoolSize, pgbouncerReservePoolSize or pgbouncerMaxDbConnections; " +
              "the services' maxReplicas with sidecars; rdsMaxConnectionsPercent for RDS Proxy), and raise it again once the switch is done;",
        ...(sameMode ? [] : [`  - switch in two steps: first deploy mode ${from} with smaller pools, then switch;`]),
        "  - raise the database's max_connections, and databaseMaxConnections with it;",
        `  - or accept the risk for this one update: pulumi config set velure-pooling:${ACCEPT_KEY} ${from}->${to}`,
    ].join("\n");
}

/** A switch whose deployed side cannot be read: refused, unless accepted, since its worst case is unknown. */
function checkUnreadable(config: VelureConfig, deployed: { mode: string; why: string }): string[] {
    const accepted = config.acceptSwitch?.from === deployed.mode && config.acceptSwitch?.to === config.mode;
    const what = `the stack's last outputs say mode ${deployed.mode}, but ${deployed.why}`;
    if (deployed.mode === config.mode || accepted) {
        return [`velure-pooling: ${what}: this update's worst case beside the deployed pods is not checked`];
    }
    throw new Error(
        `cannot check the switch from ${deployed.mode} to ${config.mode}: ${what} (an output of another version of this program?). ` +
            `If the deployed pooler and the new one fit the database together, accept this switch: pulumi config set velure-pooling:${ACCEPT_KEY} ${deployed.mode}->${config.mode}`,
    );
}

/**
 * Checks the update from the deployed pooler to the configured one; returns the warnings to print, and throws
 * (before any resource is declared) when both generations together could open more than the database allows.
 */
export function checkSwitch(config: VelureConfig, next: PoolerBudget, deployed: Deployed): string[] {
    if (deployed.kind === "unreadable") {
        return checkUnreadable(config, deployed);
    }
    const foreign = deployed.kind === "none" && deployed.foreign ? [`velure-pooling: ${deployed.foreign}`] : [];
    const pooler = deployed.kind === "pooler" ? deployed.pooler : undefined;
    const budget = pooler && transitionBudget(pooler, next);
    const over = budget && overBudget(budget);
    const accepted = config.acceptSwitch;
    // Within a mode the key would match every later run too: it accepts only an update that needs it.
    const acceptsThis = pooler !== undefined && accepted?.from === pooler.mode && accepted?.to === next.mode && (pooler.mode !== next.mode || over !== undefined);
    const warnings: string[] = [...foreign];
    if (accepted && !acceptsThis) {
        const what = !pooler ? "nothing is deployed" : pooler.mode !== next.mode ? `this deployment switches ${pooler.mode}->${next.mode}` : `this deployment stays in ${next.mode}`;
        warnings.push(`velure-pooling:${ACCEPT_KEY}: "${accepted.from}->${accepted.to}" accepts nothing here (${what}); remove it: pulumi config rm velure-pooling:${ACCEPT_KEY}`);
    }
    if (!pooler || !budget) {
        return warnings;
    }
    if (over && acceptsThis) {
        warnings.push(
            `velure-pooling:${ACCEPT_KEY}: the update ${pooler.mode}->${next.mode} may open ${over.used} server connections to the ${over.server}, ` +
                `which allows ${over.available}; accepted for this update (remove the key once it is done)`,
        );
        return warnings;
    }
    const who =
        pooler.mode === next.mode
            ? `during this update of ${next.mode}, the deployed and the new pods together`
            : `during the switch from ${pooler.mode} to ${next.mode}, the two poolers together`;
    assertWithinBudget(budget, switchAdvice(pooler.mode, next.mode), who);
    return warnings;
}
