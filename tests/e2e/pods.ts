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

/** The ConfigMaps and Secrets a pod spec reads: its volumes, and every container's env and envFrom. */
export function podReferences(pod: any): { kind: "configmap" | "secret"; name: string }[] {
    const containers = [...(pod.initContainers ?? []), ...pod.containers];
    const fromVolumes = (pod.volumes ?? []).flatMap((v: any) => [
        ...(v.configMap ? [{ kind: "configmap", name: v.configMap.name }] : []),
        ...(v.secret ? [{ kind: "secret", name: v.secret.secretName }] : []),
    ]);
    const fromEnv = containers.flatMap((c: any) => [
        ...(c.env ?? []).flatMap((e: any) => [
            ...(e.valueFrom?.secretKeyRef ? [{ kind: "secret", name: e.valueFrom.secretKeyRef.name }] : []),
            ...(e.valueFrom?.configMapKeyRef ? [{ kind: "configmap", name: e.valueFrom.configMapKeyRef.name }] : []),
        ]),
        ...(c.envFrom ?? []).flatMap((e: any) => [
            ...(e.secretRef ? [{ kind: "secret", name: e.secretRef.name }] : []),
            ...(e.configMapRef ? [{ kind: "configmap", name: e.configMapRef.name }] : []),
        ]),
    ]);
    return [...fromVolumes, ...fromEnv];
}
