// Reading the pod templates that Helm renders and the API server stores, the same way in every e2e test.
import { SIDECAR_CONTAINER } from "../../components/pgbouncerSidecar";

/** The plain (value, not valueFrom) env of the chart's app container, by name. */
export function appEnv(pod: any): Record<string, string> {
    const app = pod.containers.find((c: any) => c.name === "app");
    return Object.fromEntries(app.env.filter((e: any) => "value" in e).map((e: any) => [e.name, e.value]));
}

/** Whether the pod carries the PgBouncer sidecar, as a native (init) or a classic container. */
export function hasSidecar(pod: any): boolean {
    return [...(pod.initContainers ?? []), ...pod.containers].some((c: any) => c.name === SIDECAR_CONTAINER);
}
