import { Mode, VelureConfig } from "../config";
import { pgbouncerClusterOption } from "./pgbouncerCluster";
import { pgbouncerSidecarOption } from "./pgbouncerSidecar";
import { DeclarePooler, PoolerOption } from "./types";

function notBuiltYet(mode: Mode): PoolerOption {
    return () => {
        throw new Error(`velure-pooling:mode "${mode}" is not available yet; use pgbouncer-cluster or pgbouncer-sidecar`);
    };
}

const OPTIONS: Record<Mode, PoolerOption> = {
    "pgbouncer-cluster": pgbouncerClusterOption,
    "pgbouncer-sidecar": pgbouncerSidecarOption,
    "rds-proxy": notBuiltYet("rds-proxy"),
};

/** Checks the mode's config and returns how to declare its pooler; declares nothing itself. */
export function prepareOption(config: VelureConfig): DeclarePooler {
    return OPTIONS[config.mode](config);
}
