import { Mode, VelureConfig } from "../config";
import { pgbouncerClusterOption } from "./pgbouncerCluster";
import { pgbouncerSidecarOption } from "./pgbouncerSidecar";
import { rdsProxyOption } from "./rdsProxy";
import { DeclarePooler, PoolerOption } from "./types";

/** One entry per mode: adding a mode is adding a module here. */
const OPTIONS: Record<Mode, PoolerOption> = {
    "rds-proxy": rdsProxyOption,
    "pgbouncer-cluster": pgbouncerClusterOption,
    "pgbouncer-sidecar": pgbouncerSidecarOption,
};

/** Checks the mode's config and returns how to declare its pooler; declares nothing itself. */
export function prepareOption(config: VelureConfig): DeclarePooler {
    return OPTIONS[config.mode](config);
}
