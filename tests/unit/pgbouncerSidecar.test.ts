import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { FIXTURE_STACKS, K8S, PASSWORD_TOKEN, ProgramRun, ROOT, isWrappedSecret, programError, runProgram, stackConfig } from "./harness";

const SIDECAR = { mode: "pgbouncer-sidecar" };
const SERVICES = ["auth-service", "publish-order-service"];

describe("PgBouncerSidecar (mode = pgbouncer-sidecar)", () => {
    let run: ProgramRun;
    const values = (r: ProgramRun, service: string) => r.one(K8S.release, `velure-${service}`).inputs.values;

    before(async () => {
        run = await runProgram(stackConfig("one-server-prod", SIDECAR));
    });

    it("declares one velure:pooling:PgBouncerSidecar per service, with a ConfigMap and a Secret in the service's namespace", () => {
        const components = run.ofType("velure:pooling:PgBouncerSidecar").map((c) => c.name).sort();
        assert.deepStrictEqual(components, SERVICES.map((s) => `velure-${s}-pgbouncer`));
        for (const component of components) {
            assert.strictEqual(run.one(K8S.configMap, `${component}-config`).inputs.metadata.namespace, "velure");
            const secret = run.one(K8S.secret, `${component}-auth`);
            assert.strictEqual(secret.inputs.metadata.namespace, "velure");
            assert.ok(isWrappedSecret(secret.raw.stringData));
        }
        assert.strictEqual(run.ofType("velure:pooling:PgBouncerCluster").length, 0);
        assert.strictEqual(run.ofType(K8S.deployment).length, 0, "no central Deployment");
    });

    it("renders each service's pgbouncer.ini with only its own database (and replica), on 127.0.0.1", () => {
        const ini: string = run.one(K8S.configMap, "velure-auth-service-pgbouncer-config").inputs.data["pgbouncer.ini"];
        const databases = ini.split("[pgbouncer]")[0].trim().split("\n").slice(1).map((l) => l.split(" = ")[0]);
        assert.deepStrictEqual(databases, ["velure_auth", "velure_auth_ro"]);
        assert.match(ini, /^listen_addr = 127\.0\.0\.1$/m);
        assert.match(ini, /^listen_port = 6432$/m);
        assert.match(ini, /^velure_auth_ro = host=velure-prod-ro\.\S+ port=5432 dbname=velure_auth$/m);
    });

    it("wires POSTGRES_HOST=127.0.0.1 and the sidecar port into the releases and the stack outputs", () => {
        assert.strictEqual(run.outputs.postgresHost, "127.0.0.1");
        assert.strictEqual(run.outputs.postgresPort, 6432);
        for (const service of SERVICES) {
            const env = values(run, service).env;
            assert.strictEqual(env.POSTGRES_HOST, "127.0.0.1");
            assert.strictEqual(env.POSTGRES_PORT, "6432");
            assert.strictEqual(env.POSTGRES_SSLMODE, "disable");
            assert.strictEqual(run.outputs.services[service].host, "127.0.0.1");
        }
    });

    it("is a native sidecar by default: an init container with restartPolicy Always, probed from inside (it listens on 127.0.0.1 only)", () => {
        const v = values(run, "auth-service");
        assert.deepStrictEqual(v.extraContainers.map((c: any) => c.name), ["pgbouncer-exporter"], "only the exporter is a regular container");
        assert.strictEqual(v.initContainers.length, 1);
        const sidecar = v.initContainers[0];
        assert.strictEqual(sidecar.name, "pgbouncer");
        assert.strictEqual(sidecar.restartPolicy, "Always");
        const pgIsReady = ["pg_isready", "--quiet", "--host", "127.0.0.1", "--port", "6432", "--dbname", "pgbouncer", "--username", "pgbouncer_probe", "--timeout", "2"];
        assert.deepStrictEqual(sidecar.startupProbe, { exec: { command: pgIsReady }, periodSeconds: 1, failureThreshold: 30, timeoutSeconds: 3 });
        assert.deepStrictEqual(sidecar.livenessProbe, { exec: { command: pgIsReady }, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 3 });
        assert.strictEqual(sidecar.readinessProbe, undefined);
        assert.strictEqual(sidecar.lifecycle, undefined, "a native sidecar needs no preStop: it stops after the app");
        assert.strictEqual(v.terminationGracePeriodSeconds, 20 + 10);
        assert.deepStrictEqual(sidecar.command.slice(-4), ["0", "3", "QUIT", "TERM"], "no wait for the clients (the app has stopped); the safe shutdown ends 2 s before the kubelet's SIGKILL");
    });

    it("offers a classic sidecar that outlives the app's drain, within a grace period that fits both", async () => {
        const classic = await runProgram(stackConfig("one-server-prod", { ...SIDECAR, sidecarNative: false, appDrainSeconds: 40 }));
        const v = values(classic, "auth-service");
        assert.strictEqual(v.initContainers, undefined);
        const sidecar = v.extraContainers[0];
        assert.strictEqual(sidecar.restartPolicy, undefined);
        assert.strictEqual(sidecar.startupProbe, undefined);
        assert.deepStrictEqual(sidecar.readinessProbe.exec.command.slice(0, 6), ["pg_isready", "--quiet", "--host", "127.0.0.1", "--port", "6432"]);
        assert.deepStrictEqual(sidecar.livenessProbe.exec.command.slice(0, 6), ["pg_isready", "--quiet", "--host", "127.0.0.1", "--port", "6432"]);
        assert.deepStrictEqual(sidecar.lifecycle.preStop.exec.command, ["/bin/sh", "-c", "sleep 45"]);
        assert.ok(v.terminationGracePeriodSeconds > 45, "the grace period outlasts the preStop sleep");
        assert.strictEqual(v.terminationGracePeriodSeconds, 50);
        assert.deepStrictEqual(sidecar.command.slice(-4), ["0", "3", "QUIT", "TERM"], "after the preStop, 5 s are left: 3 for the safe shutdown, 2 for the immediate one");
    });

    it("runs the sidecar with the same restricted security context and sidecar-sized resources", () => {
        const sidecar = values(run, "auth-service").initContainers[0];
        const sc = sidecar.securityContext;
        assert.deepStrictEqual([sc.runAsNonRoot, sc.readOnlyRootFilesystem, sc.allowPrivilegeEscalation], [true, true, false]);
        assert.deepStrictEqual(sc.capabilities.drop, ["ALL"]);
        assert.strictEqual(sc.seccompProfile.type, "RuntimeDefault");
        assert.deepStrictEqual(sidecar.resources, { requests: { cpu: "20m", memory: "16Mi" }, limits: { cpu: "250m", memory: "64Mi" } });
        assert.strictEqual(values(run, "auth-service").podSecurityContext.fsGroup, 70);
    });

    it("mounts the service's own ConfigMap and userlist Secret through the chart's volume hook", () => {
        const v = values(run, "auth-service");
        const volumes = Object.fromEntries(v.extraVolumes.map((vol: any) => [vol.name, vol]));
        assert.strictEqual(volumes["pgbouncer-config"].configMap.name, "velure-auth-service-pgbouncer-config");
        assert.strictEqual(volumes["pgbouncer-auth"].secret.secretName, "velure-auth-service-pgbouncer-auth");
        assert.deepStrictEqual(v.initContainers[0].volumeMounts.map((m: any) => m.mountPath), ["/etc/pgbouncer", "/etc/pgbouncer-auth"]);
    });

    it("rolls the pods when the sidecar config changes (checksum annotation)", async () => {
        const checksum = (r: ProgramRun) => values(r, "auth-service").podAnnotations["checksum/pgbouncer-config"];
        assert.match(checksum(run), /^[0-9a-f]{64}$/);
        const changed = await runProgram(stackConfig("one-server-prod", { ...SIDECAR, pgbouncerDefaultPoolSize: 4 }));
        assert.notStrictEqual(checksum(changed), checksum(run));
        assert.strictEqual(values(changed, "publish-order-service").podAnnotations["checksum/pgbouncer-config"] !== undefined, true);
    });

    it("never puts the password in a ConfigMap or in plain release values", () => {
        for (const resource of run.resources) {
            if (resource.type !== K8S.secret) {
                assert.ok(!JSON.stringify(resource.raw).includes(PASSWORD_TOKEN), `${resource.type} ${resource.name} holds the password`);
            }
        }
    });

    it("budgets the worst case: (HPA max + surge + draining + evicted) × per-pod pool, per service, and the replica's pools against the replica", () => {
        const [budget, replica] = run.outputs.connectionBudget;
        assert.deepStrictEqual(
            budget.lines.map((l: any) => [l.name, l.connections, l.placement]),
            [["auth-service", (8 + 3) * 12, "velure/velure-auth-service"], ["publish-order-service", (8 + 3) * 12, "velure/velure-publish-order-service"]],
        );
        assert.strictEqual(budget.lines[0].formula, "(8 max pods + 1 surge + 1 draining + 1 evicted) × max_db_connections 12");
        assert.strictEqual(budget.used, 264);
        assert.strictEqual(budget.available, 410 - 20);
        assert.deepStrictEqual(
            replica.lines.map((l: any) => [l.name, l.connections]),
            [["auth-service → velure_auth_ro", 132], ["publish-order-service → velure_orders_ro", 132]],
        );
        assert.deepStrictEqual([replica.server, replica.used, replica.available], ["read replica", 264, 390]);
    });

    it("refuses read-only pools that overflow the replica's own limit, or the primary's when the replica host is the primary", async () => {
        const small = await programError(stackConfig("one-server-prod", { ...SIDECAR, databaseReplicaMaxConnections: 200 }));
        assert.match(small.message, /can open 264 server connections to the read replica, but it allows 180 \(velure-pooling:databaseReplicaMaxConnections 200 - velure-pooling:databaseReservedConnections 20\)/);
        const same = await programError(stackConfig("one-server-prod", { ...SIDECAR, databaseReplicaHost: "VELURE-prod.c9akciq32.eu-west-1.rds.amazonaws.com" }));
        assert.match(same.message, /can open 528 server connections to the primary, but it allows 390/);
        assert.match(same.message, /auth-service → velure_auth_ro: \(8 max pods \+ 1 surge \+ 1 draining \+ 1 evicted\) × max_db_connections 12 = 132/);
    });

    it("pins the rollout the budget counts: one surge pod, a grace period between replacements, one pod scaled down at a time", () => {
        const v = values(run, "auth-service");
        assert.deepStrictEqual(v.strategy, { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
        assert.strictEqual(v.minReadySeconds, v.terminationGracePeriodSeconds);
        assert.deepStrictEqual(v.autoscaling.behavior, { scaleDown: { policies: [{ type: "Pods", value: 1, periodSeconds: v.terminationGracePeriodSeconds }] } });
        assert.deepStrictEqual([v.autoscaling.enabled, v.autoscaling.maxReplicas], [true, 8], "the program's autoscaling wiring is kept");
    });

    it("refuses chart values that would change what the budget counts", async () => {
        const services = YAML.parse(fs.readFileSync(path.join(FIXTURE_STACKS, "Pulumi.one-server-prod.yaml"), "utf8")).config["velure-pooling:services"];
        services[0].values = { strategy: { rollingUpdate: { maxSurge: "100%" } }, autoscaling: { maxReplicas: 50, targetCPUUtilizationPercentage: 60 } };
        const error = await programError(stackConfig("one-server-prod", { ...SIDECAR, services }));
        assert.match(error.message, /services\[0\].values.strategy: .* is not allowed; expected no strategy here: the program pins it/);
        assert.match(error.message, /services\[0\].values.autoscaling.maxReplicas: 50 is not allowed; expected no autoscaling.maxReplicas here: set services\[0\].maxReplicas/);
        assert.doesNotMatch(error.message, /targetCPUUtilizationPercentage/, "the HPA's target stays the user's");
    });

    it("fails with the services and their shares when the pods could exhaust the database", async () => {
        const services = YAML.parse(fs.readFileSync(path.join(FIXTURE_STACKS, "Pulumi.one-server-prod.yaml"), "utf8")).config["velure-pooling:services"];
        services[0].maxReplicas = 30;
        const error = await programError(stackConfig("one-server-prod", { ...SIDECAR, services }));
        assert.match(error.message, /connection budget exceeded: the pooler can open 528 server connections to the primary, but it allows 390/);
        assert.match(error.message, /auth-service: \(30 max pods \+ 1 surge \+ 1 draining \+ 1 evicted\) × max_db_connections 12 = 396/);
        assert.match(error.message, /publish-order-service: \(8 max pods \+ 1 surge \+ 1 draining \+ 1 evicted\) × max_db_connections 12 = 132/);
        assert.match(error.message, /use mode pgbouncer-cluster/);
    });

    it("rejects a privileged sidecar port", async () => {
        const error = await programError(stackConfig("one-server-prod", { ...SIDECAR, sidecarPort: 80 }));
        assert.match(error.message, /velure-pooling:sidecarPort: "80" is not allowed; expected an integer from 1024 to 65535/);
    });
});

describe("the shipped chart carries the sidecar hooks", () => {
    const chart = path.join(ROOT, "charts", "velure-service");
    const values = YAML.parse(fs.readFileSync(path.join(chart, "values.yaml"), "utf8"));
    const deployment = fs.readFileSync(path.join(chart, "templates", "deployment.yaml"), "utf8");

    for (const hook of ["initContainers", "extraContainers", "extraVolumes", "extraVolumeMounts", "extraEnv", "env", "podAnnotations", "podSecurityContext", "terminationGracePeriodSeconds"]) {
        it(`declares ${hook} in values.yaml and uses it in the Deployment`, () => {
            assert.ok(hook in values, `values.yaml has no ${hook}`);
            assert.ok(deployment.includes(`.Values.${hook}`), `deployment.yaml ignores ${hook}`);
        });
    }

    it("rolls one pod at a time, as the sidecar budget assumes", () => {
        assert.deepStrictEqual(values.strategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
        assert.ok(deployment.includes(".Values.strategy"));
    });
});
