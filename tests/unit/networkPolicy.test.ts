// The allow policies beside velure's deny-all (components/allowPolicy.ts, put in by the post-renderer), decided by a
// real NetworkPolicy evaluator: cyclonus's matcher (tests/netpol, built by scripts/netpol.sh), fed velure's charts'
// deny-all policies and the program's, per stack and mode, for every connection on the mode's path (allowed) and a
// sample of others (still denied).
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { mockSubnetCidr } from "../../plan/runtime";
import { postRender } from "../../services/postRender";
import { K8S, ROOT, postRenderPatch, runProgram, stackConfig } from "./harness";

const MATCHER = path.join(ROOT, ".toolchain", "bin", "netpol-matcher");

/** velure's two charts as the matcher needs them: each release's pod labels (its Deployment's selector) and namespace. */
const CHARTS: { release: string; namespace: string; server: string; pods: Record<string, string> }[] = [
    { release: "velure-auth", namespace: "authentication", server: "auth", pods: { "app.kubernetes.io/name": "velure-auth", "app.kubernetes.io/instance": "velure-auth" } },
    { release: "velure-publish-order", namespace: "order", server: "orders", pods: { app: "velure-publish-order" } },
];

interface Peer {
    namespace?: string;
    podLabels?: Record<string, string>;
    ip?: string;
}

interface Connection {
    name: string;
    source: Peer;
    destination: Peer;
    port: number;
    protocol?: "TCP" | "UDP";
    allowed: boolean;
}

/** A chart's Deployment and its deny-all, as velure's chart renders them (selector = the deny-all's pods). */
function chartManifests(chart: (typeof CHARTS)[number]): string {
    const deployment = {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: chart.release },
        spec: {
            selector: { matchLabels: chart.pods },
            template: {
                metadata: { labels: chart.pods },
                spec: { containers: [{ name: "app", ports: [{ containerPort: 3020 }], env: [{ name: "POSTGRES_URL", valueFrom: { secretKeyRef: { name: chart.release === "velure-auth" ? "velure-auth-postgres" : "order-database", key: "url" } } }] }] },
            },
        },
    };
    const denyAll = {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: `${chart.release}-deny-all`, namespace: chart.namespace },
        spec: { podSelector: { matchLabels: chart.pods }, policyTypes: ["Ingress", "Egress"], ingress: [], egress: [] },
    };
    return [deployment, denyAll].map((o) => YAML.stringify(o)).join("---\n");
}

/** An address inside a CIDR block (its base + 5). */
function inside(cidr: string): string {
    const [base] = cidr.split("/");
    const octets = base.split(".").map(Number);
    octets[3] += 5;
    return octets.join(".");
}

function decide(policies: unknown[], connections: Connection[]): Record<string, boolean> {
    assert.ok(fs.existsSync(MATCHER), `${MATCHER} is missing: npm test builds it (bash scripts/netpol.sh)`);
    const out = execFileSync(MATCHER, { input: JSON.stringify({ policies, connections }) }).toString();
    return Object.fromEntries((JSON.parse(out) as { name: string; allowed: boolean }[]).map((v) => [v.name, v.allowed]));
}

/** The policies of a release after the post-renderer: velure's deny-all and, when on, the program's allow policy. */
async function releasePolicies(config: Record<string, string>): Promise<Map<string, any[]>> {
    const run = await runProgram(config);
    return new Map(
        CHARTS.map((chart) => {
            const patch = postRenderPatch(run.one(K8S.release, chart.release));
            const objects = YAML.parseAllDocuments(postRender(`${chart.namespace}/${chart.release}`, chartManifests(chart), patch)).map((d) => d.toJS());
            return [chart.release, objects.filter((o: any) => o.kind === "NetworkPolicy")];
        }),
    );
}

/** The mode's path for a chart's pods (allowed), and what stays denied. */
function connections(stack: string, mode: string, chart: (typeof CHARTS)[number]): Connection[] {
    const servers = JSON.parse(stackConfig(stack)["velure-pooling:databaseServers"]);
    const server = servers.find((s: any) => s.name === chart.server);
    const other = servers.find((s: any) => s.name !== chart.server);
    const app = { namespace: chart.namespace, podLabels: chart.pods };
    const dns = { namespace: "kube-system", podLabels: { "k8s-app": "kube-dns" } };
    const central = (s: any) => ({ namespace: `velure-db-${s.name}`, podLabels: { "app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/instance": `velure-pgbouncer-${s.name}`, "app.kubernetes.io/part-of": "velure" } });
    const database = { ip: inside(server.cidrs[0]) };
    const proxySubnets = JSON.parse(stackConfig(stack)["velure-pooling:rdsSubnetIds"]).map(mockSubnetCidr);
    const prometheus = { namespace: "monitoring", podLabels: { "app.kubernetes.io/name": "prometheus" } };
    const path: Record<string, Connection[]> = {
        "pgbouncer-cluster": [{ name: "app → its server's central PgBouncer", source: app, destination: central(server), port: 5432, allowed: true }],
        "pgbouncer-sidecar": [
            ...server.cidrs.map((cidr: string) => ({ name: `sidecar → the database in ${cidr}`, source: app, destination: { ip: inside(cidr) }, port: server.port ?? 5432, allowed: true })),
            { name: "Prometheus → the sidecar's exporter", source: prometheus, destination: app, port: 9127, allowed: true },
        ],
        "rds-proxy": proxySubnets.map((cidr: string) => ({ name: `app → the proxy in ${cidr}`, source: app, destination: { ip: inside(cidr) }, port: 5432, allowed: true })),
    };
    const denied: Connection[] = [
        { name: "app → the other server's central PgBouncer", source: app, destination: central(other), port: 5432, allowed: false },
        { name: "app → its central PgBouncer's exporter", source: app, destination: central(server), port: 9127, allowed: false },
        { name: "app → an address outside every path", source: app, destination: { ip: "192.0.2.10" }, port: 5432, allowed: false },
        { name: "app → the database on another port", source: app, destination: database, port: 22, allowed: false },
        { name: "app → kube-dns on another port", source: app, destination: dns, port: 80, allowed: false },
        { name: "another namespace's pod → the app's port", source: { namespace: "default", podLabels: { run: "x" } }, destination: app, port: 3020, allowed: false },
        { name: "Prometheus → the app's own port", source: prometheus, destination: app, port: 3020, allowed: false },
    ];
    if (mode !== "pgbouncer-sidecar") {
        denied.push({ name: "Prometheus → port 9127 of a pod without a sidecar", source: prometheus, destination: app, port: 9127, allowed: false });
        denied.push({ name: "app → the database itself (only the sidecar's mode goes there)", source: app, destination: database, port: 5432, allowed: mode === "rds-proxy" && proxySubnets.includes(server.cidrs[0]) });
    }
    if (mode !== "pgbouncer-cluster") {
        denied.push({ name: "app → its server's central PgBouncer (not this mode's path)", source: app, destination: central(server), port: 5432, allowed: false });
    }
    return [
        { name: "app → kube-dns (UDP 53)", source: app, destination: dns, port: 53, protocol: "UDP", allowed: true },
        { name: "app → kube-dns (TCP 53)", source: app, destination: dns, port: 53, allowed: true },
        ...path[mode],
        ...denied,
    ];
}

describe("the allow policies beside velure's deny-all, decided by cyclonus's NetworkPolicy matcher", () => {
    for (const stack of ["dev", "prod"]) {
        for (const mode of ["pgbouncer-cluster", "pgbouncer-sidecar", "rds-proxy"]) {
            it(`${stack} × ${mode}: every connection on the mode's path is allowed, the others stay denied`, async () => {
                const policies = await releasePolicies(stackConfig(stack, { mode }));
                for (const chart of CHARTS) {
                    const own = policies.get(chart.release) as any[];
                    assert.deepStrictEqual(own.map((p) => p.metadata.name), [`${chart.release}-deny-all`, `${chart.release}-pooler-allow`]);
                    assert.deepStrictEqual(own[1].spec.podSelector.matchLabels, chart.pods, "the allow policy selects the pods the deny-all does");
                    const cases = connections(stack, mode, chart);
                    const verdicts = decide(own, cases);
                    for (const c of cases) {
                        assert.strictEqual(verdicts[c.name], c.allowed, `${chart.release}: ${c.name}`);
                    }
                }
            });
        }
    }

    it("with serviceNetworkPolicies false the program adds none, and velure's deny-all blocks even DNS", async () => {
        const policies = await releasePolicies(stackConfig("prod", { serviceNetworkPolicies: false }));
        for (const chart of CHARTS) {
            const own = policies.get(chart.release) as any[];
            assert.deepStrictEqual(own.map((p) => p.metadata.name), [`${chart.release}-deny-all`]);
            const [first] = connections("prod", "pgbouncer-cluster", chart);
            assert.deepStrictEqual(decide(own, [first]), { [first.name]: false });
        }
    });
});
