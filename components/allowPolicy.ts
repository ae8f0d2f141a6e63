// The NetworkPolicy that opens the pooler's path for an app's pods beside a chart's deny-all (velure's charts render
// `<release>-deny-all`, ingress: [] and egress: [], over their pods), in velure's own style (velure-product-allow: DNS
// to kube-dns, then each dependency by namespace or address and port). Pure: the post-renderer puts it beside the
// chart's objects, selecting the Deployment's pods, so it is installed, upgraded and removed with the release.
// No import of Pulumi's SDK here: Helm runs the post-renderer, which loads this module, at every render.

export interface PolicyPort {
    protocol: "TCP" | "UDP";
    port: number;
}

export type PolicyPeer =
    | { ipBlock: { cidr: string } }
    | { namespaceSelector: { matchLabels: Record<string, string> }; podSelector?: { matchLabels: Record<string, string> } };

export interface EgressRule {
    to: PolicyPeer[];
    ports: PolicyPort[];
}

export interface IngressRule {
    from: PolicyPeer[];
    ports: PolicyPort[];
}

/** What a mode's pods must reach (beside DNS), and what must reach them: nothing more is opened. */
export interface NetworkPath {
    egress: EgressRule[];
    ingress: IngressRule[];
}

/** The policy's rules without its pod selector, which the post-renderer takes from the chart's Deployment. */
export interface AllowPolicy extends NetworkPath {
    name: string;
}

/** Every address: for a database whose CIDRs the config does not give (a DNS name the policy cannot name). */
const ANY_ADDRESS = "0.0.0.0/0";

function namespacePeer(namespace: string, podLabels?: Record<string, string>): PolicyPeer {
    return { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } }, ...(podLabels ? { podSelector: { matchLabels: podLabels } } : {}) };
}

/**
 * The cluster's DNS: the kube-dns Service's pods (CoreDNS on EKS and most distributions carries k8s-app=kube-dns) in
 * kube-system. A NetworkPolicy sees the traffic after the Service's address is translated to the pod's, so the pods
 * are what it must allow. A node-local DNS cache listens elsewhere and is not covered (README: Known limits).
 */
export const CLUSTER_DNS_PEER = {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
    podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
};

/** The cluster's DNS, on UDP and TCP 53: every pod that resolves a name needs it (the central PgBouncer's too). */
export const DNS_EGRESS: EgressRule = {
    to: [CLUSTER_DNS_PEER],
    ports: [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
    ],
};

/** pgbouncer-cluster: the central PgBouncer's pods in its namespace, on its port. */
export function podsEgress(namespace: string, podLabels: Record<string, string>, port: number): EgressRule {
    return { to: [namespacePeer(namespace, podLabels)], ports: [{ protocol: "TCP", port }] };
}

/** pgbouncer-sidecar (the database's subnets) and rds-proxy (the proxy's): addresses outside the cluster, on one port. */
export function addressesEgress(cidrs: string[], port: number): EgressRule {
    const blocks = cidrs.length > 0 ? cidrs : [ANY_ADDRESS];
    return { to: blocks.map((cidr) => ({ ipBlock: { cidr } })), ports: [{ protocol: "TCP", port }] };
}

/** The sidecar's exporter (its port), scraped by Prometheus from the monitoring namespace. */
export function exporterIngress(monitoringNamespace: string, port: number): IngressRule {
    return { from: [namespacePeer(monitoringNamespace)], ports: [{ protocol: "TCP", port }] };
}

/** The policy's name: velure's `-allow` beside the chart's `-deny-all`. */
export function allowPolicyName(releaseName: string): string {
    return `${releaseName}-pooler-allow`;
}

/** The NetworkPolicy object for the pods `podSelector` selects: DNS first, then the mode's path. */
export function renderAllowPolicy(policy: AllowPolicy, namespace: string, podSelector: Record<string, string>): Record<string, unknown> {
    return {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: policy.name, namespace, labels: { "app.kubernetes.io/managed-by": "velure-pooling" } },
        spec: {
            podSelector: { matchLabels: podSelector },
            policyTypes: ["Ingress", "Egress"],
            ingress: policy.ingress,
            egress: [DNS_EGRESS, ...policy.egress],
        },
    };
}
