import * as assert from "assert";
import { K8S, PASSWORD, RANDOM_PASSWORD, mockRandomPassword, ProgramRun, isWrappedSecret, programError, runProgram, stackConfig } from "./harness";

const CLUSTER = { mode: "pgbouncer-cluster" };

describe("PgBouncerCluster (mode = pgbouncer-cluster)", () => {
    let run: ProgramRun;
    let deployment: any;
    let pod: any;
    let container: any;

    before(async () => {
        run = await runProgram(stackConfig("one-server-dev", CLUSTER));
        deployment = run.one(K8S.deployment).inputs;
        pod = deployment.spec.template.spec;
        container = pod.containers[0];
    });

    it("is one velure:pooling:PgBouncerCluster component whose children carry its name", () => {
        const component = run.one("velure:pooling:PgBouncerCluster");
        const children = run.resources.filter((r) => r.name.startsWith(`${component.name}-`));
        assert.deepStrictEqual(children.map((r) => r.type).sort(), [
            K8S.namespace, K8S.configMap, K8S.secret, K8S.service, K8S.deployment, K8S.pdb, K8S.networkPolicy, RANDOM_PASSWORD,
        ].sort());
    });

    it("creates the velure-db namespace and puts everything in it", () => {
        const namespace = run.one(K8S.namespace, "velure-pgbouncer-namespace").inputs.metadata;
        assert.strictEqual(namespace.name, "velure-db");
        assert.strictEqual(namespace.labels["pod-security.kubernetes.io/enforce"], "restricted", "the API server admits only restricted pods");
        for (const type of [K8S.deployment, K8S.service, K8S.pdb, K8S.networkPolicy]) {
            assert.strictEqual(run.one(type).inputs.metadata.namespace, "velure-db", type);
        }
        assert.strictEqual(run.one(K8S.configMap, "velure-pgbouncer-config").inputs.metadata.namespace, "velure-db");
        assert.strictEqual(run.one(K8S.secret, "velure-pgbouncer-auth").inputs.metadata.namespace, "velure-db");
    });

    it("serves pgbouncer.velure-db.svc.cluster.local:5432, and that is what the stack exports", () => {
        const service = run.one(K8S.service).inputs;
        assert.strictEqual(service.metadata.name, "pgbouncer");
        assert.deepStrictEqual(service.spec.ports.map((p: any) => p.port), [5432], "only 5432: no admin or other port");
        assert.strictEqual(service.spec.type, "ClusterIP");
        assert.deepStrictEqual(service.spec.selector, deployment.spec.selector.matchLabels);
        assert.strictEqual(run.outputs.postgresHost, "pgbouncer.velure-db.svc.cluster.local");
        assert.strictEqual(run.outputs.postgresPort, 5432);
    });

    it("keeps pgbouncer.ini in a ConfigMap with one entry per service database, and the credentials in a Secret", () => {
        const ini: string = run.one(K8S.configMap, "velure-pgbouncer-config").inputs.data["pgbouncer.ini"];
        assert.match(ini, /^velure_auth = host=velure-dev\.\S+ port=5432 dbname=velure_auth$/m);
        assert.match(ini, /^velure_orders = host=velure-dev\.\S+ port=5432 dbname=velure_orders$/m);
        assert.match(ini, /^auth_file = \/etc\/pgbouncer-auth\/userlist.txt$/m);
        assert.match(ini, /^max_prepared_statements = 200$/m);
        assert.match(ini, /^listen_addr = \*$/m, "every pod address, IPv4 and IPv6");
        assert.match(ini, /^listen_port = 5432$/m);
        assert.match(ini, /^server_tls_sslmode = verify-full$/m);
        assert.match(run.one(K8S.configMap, "velure-pgbouncer-config").inputs.data["server-ca.pem"], /BEGIN CERTIFICATE/);
        const secret = run.one(K8S.secret, "velure-pgbouncer-auth");
        assert.ok(isWrappedSecret(secret.raw.stringData), "the userlist reaches the engine as a secret");
        const [app, stats] = secret.inputs.stringData["userlist.txt"].split("\n");
        assert.strictEqual(app, `"velure" "${PASSWORD.replace(/"/g, '""')}"`);
        assert.strictEqual(stats, `"pgbouncer_stats" "${mockRandomPassword("velure-pgbouncer-stats-password", 32)}"`, "the exporter's own stats user");
    });

    it("adds a read-only entry per database when a replica host is configured", async () => {
        const withReplica = await runProgram(stackConfig("one-server-dev", { ...CLUSTER, databaseReplicaHost: "replica.example.com" }));
        const ini: string = withReplica.one(K8S.configMap, "velure-pgbouncer-config").inputs.data["pgbouncer.ini"];
        assert.match(ini, /^velure_auth_ro = host=replica\.example\.com port=5432 dbname=velure_auth$/m);
        assert.match(ini, /^velure_orders_ro = host=replica\.example\.com port=5432 dbname=velure_orders$/m);
        const env = withReplica.one(K8S.release, "velure-auth-service").inputs.values.env;
        assert.strictEqual(env.POSTGRES_READ_DB, "velure_auth_ro");
        assert.strictEqual(env.POSTGRES_READ_HOST, "pgbouncer.velure-db.svc.cluster.local");
    });

    it("runs at least 2 replicas with zero-downtime rolling updates and a PodDisruptionBudget", () => {
        assert.strictEqual(deployment.spec.replicas, 2);
        assert.deepStrictEqual(deployment.spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
        const pdb = run.one(K8S.pdb).inputs.spec;
        assert.strictEqual(pdb.maxUnavailable, 1);
        assert.deepStrictEqual(pdb.selector.matchLabels, deployment.spec.selector.matchLabels);
    });

    it("spreads pods across nodes (hard) and zones (soft)", () => {
        const spread = pod.topologySpreadConstraints.map((c: any) => [c.topologyKey, c.whenUnsatisfiable, c.maxSkew]);
        assert.deepStrictEqual(spread, [
            ["kubernetes.io/hostname", "DoNotSchedule", 1],
            ["topology.kubernetes.io/zone", "ScheduleAnyway", 1],
        ]);
        for (const c of pod.topologySpreadConstraints) {
            assert.deepStrictEqual(c.labelSelector.matchLabels, deployment.spec.selector.matchLabels);
        }
    });

    it("probes readiness and liveness over TCP only, never through the database", () => {
        assert.deepStrictEqual(container.readinessProbe.tcpSocket, { port: 5432 });
        assert.deepStrictEqual(container.livenessProbe.tcpSocket, { port: 5432 });
        assert.strictEqual(container.livenessProbe.exec, undefined);
        assert.strictEqual(container.readinessProbe.exec, undefined);
    });

    it("drains on stop: the preStop hook only waits to leave the endpoints, then SIGTERM drains, within the grace period", () => {
        assert.deepStrictEqual(container.lifecycle.preStop.exec.command, ["/bin/sh", "-c", "sleep 10"]);
        assert.strictEqual(pod.terminationGracePeriodSeconds, 10 + 30 + 5);
    });

    it("runs PgBouncer under an entrypoint that turns SIGTERM into its safe shutdown (SIGINT), as a restricted non-root pod without a token", () => {
        const [shell, flag, script, name, ...args] = container.command;
        assert.deepStrictEqual([shell, flag, name], ["/bin/sh", "-c", "pgbouncer-entrypoint"]);
        assert.deepStrictEqual(
            args,
            ["/etc/pgbouncer/pgbouncer.ini", "0", "30", "QUIT", "TERM"],
            "the ini, no wait for clients (this stack declares no connection lifetime), the drain time, 1.23+'s immediate shutdown, 1.23+'s super safe one",
        );
        assert.match(script, /^pgbouncer "\$1" & pid=\$!$/m);
        assert.match(script, /^trap stop TERM INT$/m);
        assert.match(script, /if \[ "\$leave" = 0 \]; then kill -INT "\$pid"; safe=; elif \[ "\$leaving" != none \]; then kill -"\$leaving" "\$pid"; safe=; fi/);
        assert.match(script, /\(sleep "\$leave"; \[ -z "\$safe" \] \|\| kill -"\$safe" "\$pid" 2>\/dev\/null; sleep "\$bound"; kill -"\$immediate" "\$pid" 2>\/dev\/null\) & timer=\$!/);
        assert.strictEqual(container.image, "ghcr.io/icoretech/pgbouncer-docker:1.26.0");
        assert.strictEqual(pod.automountServiceAccountToken, false);
        assert.strictEqual(pod.securityContext.runAsNonRoot, true);
        assert.strictEqual(pod.securityContext.seccompProfile.type, "RuntimeDefault");
        const sc = container.securityContext;
        assert.strictEqual(sc.runAsNonRoot, true);
        assert.strictEqual(sc.readOnlyRootFilesystem, true);
        assert.strictEqual(sc.allowPrivilegeEscalation, false);
        assert.deepStrictEqual(sc.capabilities.drop, ["ALL"]);
        assert.strictEqual(sc.seccompProfile.type, "RuntimeDefault");
    });

    it("mounts the ConfigMap and the Secret of fixed names as directories (no subPath)", () => {
        for (const mount of container.volumeMounts) {
            assert.strictEqual(mount.subPath, undefined);
            assert.strictEqual(mount.readOnly, true);
        }
        const volumes = Object.fromEntries(pod.volumes.map((v: any) => [v.name, v]));
        assert.strictEqual(volumes["pgbouncer-config"].configMap.name, "velure-pgbouncer-config");
        assert.strictEqual(volumes["pgbouncer-auth"].secret.secretName, "velure-pgbouncer-auth");
    });

    it("sets resource requests and limits", () => {
        assert.deepStrictEqual(container.resources, { requests: { cpu: "100m", memory: "64Mi" }, limits: { cpu: "1", memory: "128Mi" } });
    });

    it("rolls the pods when pgbouncer.ini changes (config checksum), and only then", async () => {
        const checksum = (r: ProgramRun) => r.one(K8S.deployment).inputs.spec.template.metadata.annotations["checksum/pgbouncer-config"];
        assert.match(checksum(run), /^[0-9a-f]{64}$/);
        const same = await runProgram(stackConfig("one-server-dev", CLUSTER));
        assert.strictEqual(checksum(same), checksum(run));
        const changed = await runProgram(stackConfig("one-server-dev", { ...CLUSTER, pgbouncerDefaultPoolSize: 5 }));
        assert.notStrictEqual(checksum(changed), checksum(run));
    });

    it("lets only the services' namespaces reach port 5432", () => {
        const policy = run.one(K8S.networkPolicy).inputs.spec;
        assert.deepStrictEqual(policy.policyTypes, ["Ingress", "Egress"]);
        assert.deepStrictEqual(policy.podSelector.matchLabels, deployment.spec.selector.matchLabels);
        assert.strictEqual(policy.ingress.length, 2);
        assert.deepStrictEqual(policy.ingress[0].ports, [{ protocol: "TCP", port: 5432 }]);
        assert.deepStrictEqual(policy.ingress[1].ports, [{ protocol: "TCP", port: 9127 }], "metrics, for Prometheus only");
        assert.deepStrictEqual(policy.ingress[1].from[0].namespaceSelector.matchExpressions[0].values, ["monitoring"]);
        assert.deepStrictEqual(policy.ingress[0].from, [
            { namespaceSelector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["velure"] } ] } },
        ]);
        const egressPorts = policy.egress.flatMap((e: any) => e.ports.map((p: any) => `${p.protocol}/${p.port}`));
        assert.deepStrictEqual(egressPorts.sort(), ["TCP/53", "TCP/5432", "UDP/53"]);
    });

    it("exports the connection budget: (replicas + surge + draining + evicted) × max_db_connections per database", () => {
        const [budget] = run.outputs.connectionBudget;
        assert.strictEqual(budget.limit, 80);
        assert.strictEqual(budget.available, 70);
        assert.strictEqual(budget.used, 2 * (2 + 1 + 1 + 1) * (6 + 1));
        assert.strictEqual(budget.lines[0].formula, "(2 replicas + 1 surge + 1 draining + 1 evicted) × max_db_connections 7");
        // What a later change within the mode compares: the pods, their pool, and where they run.
        assert.deepStrictEqual([budget.lines[0].pods, budget.lines[0].perPod, budget.lines[0].placement], [5, 7, "velure-db/pgbouncer"]);
        assert.deepStrictEqual(budget.lines.map((l: any) => l.name), ["pgbouncer → velure_auth", "pgbouncer → velure_orders"]);
    });

    it("fails when the pooler could open more server connections than the database allows", async () => {
        const error = await programError(stackConfig("one-server-dev", { ...CLUSTER, pgbouncerReplicas: 4 }));
        assert.match(error.message, /connection budget exceeded: the pooler can open 98 server connections to the primary, but it allows 70 \(velure-pooling:databaseMaxConnections 80/);
        assert.match(error.message, /pgbouncer → velure_auth: \(4 replicas \+ 1 surge \+ 1 draining \+ 1 evicted\) × max_db_connections 7 = 49/);
        assert.match(error.message, /Lower velure-pooling:pgbouncerReplicas/);
        assert.deepStrictEqual((error as any).declaredResources, []);
    });

    it("narrows PgBouncer's egress to the database's CIDRs when config names them (and IP hosts to their /32)", async () => {
        const egressTo = async (overrides: Record<string, unknown>) => {
            const policy = (await runProgram(stackConfig("one-server-dev", { ...CLUSTER, ...overrides }))).one(K8S.networkPolicy).inputs.spec;
            return policy.egress.find((e: any) => e.ports[0].port === 5432).to;
        };
        assert.strictEqual(await egressTo({}), undefined, "a DNS host and no CIDRs: any address");
        assert.deepStrictEqual(await egressTo({ databaseCidrs: ["10.1.0.0/24", "10.1.1.0/24"] }), [{ ipBlock: { cidr: "10.1.0.0/24" } }, { ipBlock: { cidr: "10.1.1.0/24" } }]);
        assert.deepStrictEqual(await egressTo({ databaseHost: "10.9.8.7" }), [{ ipBlock: { cidr: "10.9.8.7/32" } }]);
        const error = await programError(stackConfig("one-server-dev", { ...CLUSTER, databaseCidrs: ["10.0.0.0/33"] }));
        assert.match(error.message, /databaseCidrs.*"10.0.0.0\/33".*expected IPv4 CIDR blocks/);
    });

    it("honours pgbouncerMaxDbConnections as the per-pod cap", async () => {
        const capped = await runProgram(stackConfig("one-server-dev", { ...CLUSTER, pgbouncerReplicas: 4, pgbouncerMaxDbConnections: 5 }));
        assert.strictEqual(capped.outputs.connectionBudget[0].used, 2 * 7 * 5);
        assert.match(capped.one(K8S.configMap, "velure-pgbouncer-config").inputs.data["pgbouncer.ini"], /^max_db_connections = 5$/m);
    });

    it("rolls one pod at a time and waits a grace period before the next, so at most one pod drains (as the budget counts)", () => {
        const spec = run.one(K8S.deployment).inputs.spec;
        assert.deepStrictEqual(spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
        assert.strictEqual(spec.minReadySeconds, spec.template.spec.terminationGracePeriodSeconds);
        assert.strictEqual(spec.minReadySeconds, 45);
    });

    it("lets the clients leave by their pools' connection lifetime before the drain: the dev stack's 300 s + 5, in the grace period and between rollout steps", async () => {
        const dev = await runProgram(stackConfig("dev", { mode: "pgbouncer-cluster" }));
        for (const deployment of dev.ofType(K8S.deployment).filter((d) => d.name.startsWith("velure-pgbouncer"))) {
            const spec = deployment.inputs.spec;
            const command: string[] = spec.template.spec.containers[0].command;
            assert.deepStrictEqual(command.slice(-4), ["305", "30", "QUIT", "TERM"], `${deployment.name}: velure's SetConnMaxLifetime(5m) and the database/sql cleaner's margin`);
            assert.strictEqual(spec.template.spec.terminationGracePeriodSeconds, 10 + 305 + 30 + 5);
            assert.strictEqual(spec.minReadySeconds, 10 + 30 + 5, "between two steps: the stop without the clients' time to leave");
        }
        assert.strictEqual(dev.ofType(K8S.deployment).filter((d) => d.name.startsWith("velure-pgbouncer")).length, 2, "one central PgBouncer per server");
    });

    it("renders a 1.18 config when the image is 1.18", async () => {
        const old = await runProgram(stackConfig("one-server-dev", { ...CLUSTER, pgbouncerImage: "ghcr.io/icoretech/pgbouncer-docker:1.18.0" }));
        assert.doesNotMatch(old.one(K8S.configMap, "velure-pgbouncer-config").inputs.data["pgbouncer.ini"], /max_prepared_statements/);
        assert.strictEqual(old.outputs.pgbouncerVersion, "1.18.0");
        const command: string[] = old.one(K8S.deployment).inputs.spec.template.spec.containers[0].command;
        assert.deepStrictEqual(command.slice(-3), ["30", "TERM", "none"], "before 1.23 SIGTERM is the immediate shutdown (1.18 has no SIGQUIT handler), and there is no super safe one");
    });

    it("drops the CA bundle when TLS is not verified", async () => {
        const plain = await runProgram(stackConfig("one-server-dev", { ...CLUSTER, pgbouncerServerTlsSslmode: "require" }));
        const data = plain.one(K8S.configMap, "velure-pgbouncer-config").inputs.data;
        assert.deepStrictEqual(Object.keys(data), ["pgbouncer.ini"]);
        assert.doesNotMatch(data["pgbouncer.ini"], /server_tls_ca_file/);
    });
});
