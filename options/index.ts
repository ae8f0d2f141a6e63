import * as pulumi from "@pulumi/pulumi";
import { formatVersion, unfixedCves } from "../components/pgbouncerIni";
import { Mode, VelureConfig } from "../config";
import { pgbouncerClusterOption } from "./pgbouncerCluster";
import { pgbouncerSidecarOption } from "./pgbouncerSidecar";
import { rdsProxyOption } from "./rdsProxy";
import { Deployed } from "./deployed";
import { checkSwitch } from "./switch";
import { PoolerOption, PreparedPooler } from "./types";

/** One entry per mode: adding a mode is adding a module here. */
const OPTIONS: Record<Mode, PoolerOption> = {
    "rds-proxy": rdsProxyOption,
    "pgbouncer-cluster": pgbouncerClusterOption,
    "pgbouncer-sidecar": pgbouncerSidecarOption,
};

/** A PgBouncer image without every published security fix deploys, but each run says which CVEs stay open. */
export function securityWarning(config: VelureConfig): string | undefined {
    const open = config.mode === "rds-proxy" ? [] : unfixedCves(config.pgbouncer.version);
    if (open.length === 0) {
        return undefined;
    }
    const version = formatVersion(config.pgbouncer.version);
    return (
        `pgbouncerImage: PgBouncer ${version} (${config.pgbouncer.image}) lacks the fixes for ${open.join(", ")}; ` +
        "pin an image of the newest PgBouncer release once its tag is published (README: \"The PgBouncer image\")"
    );
}

/**
 * Checks the mode's config, and a switch from the deployed mode, and returns how to declare the pooler; declares
 * nothing itself, so that a refused switch changes nothing.
 */
export function prepareOption(config: VelureConfig, deployed: Deployed): PreparedPooler {
    const prepared = OPTIONS[config.mode](config);
    const warnings = [securityWarning(config), ...config.warnings, ...prepared.warnings, ...checkSwitch(config, { mode: config.mode, budget: prepared.budget }, deployed)];
    for (const warning of warnings.filter(Boolean)) {
        pulumi.log.warn(warning as string);
    }
    return prepared;
}
