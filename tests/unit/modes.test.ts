import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "../../config";
import { securityWarning } from "../../options";
import { K8S, PROJECT_STACKS, ROOT, PASSWORD_TOKEN, isWrappedSecret, runProgram, stackConfig, wiredAddress } from "./harness";
import { projectDefaults } from "../../plan/runtime";

const COMPONENT: Record<string, string> = {
    "rds-proxy": "velure:pooling:RdsProxy",
    "pgbouncer-cluster": "velure:pooling:PgBouncerCluster",
    "pgbouncer-sidecar": "velure:pooling:PgBouncerSidecar",
};

describe("a stack that sets only the required keys: Pulumi.yaml's defaults fit the budget", () => {
    for (const mode of ["pgbouncer-cluster", "pgbouncer-sidecar"]) {
        it(`${mode}`, async () => {
            const config = { ...projectDefaults(), "velure-pooling:mode": mode, "velure-pooling:databaseHost": "velure.c9akciq32.us-east-2.rds.amazonaws.com", "velure-pooling:databasePassword": "pw" };
            const [budget] = (await runProgram(config)).outputs.connectionBudget;
            assert.deepStrictEqual([budget.used, budget.available], [90, 90], "(2 pods + 3) × (7 + 2) × 2 services");
        });
    }
});

describe("every stack file evaluates in every mode, with nothing else changed", () => {
    for (const stack of [...PROJECT_STACKS, "one-server-dev", "one-server-prod"]) {
        for (const mode of Object.keys(COMPONENT)) {
            it(`${stack} × ${mode}: routes to ${COMPONENT[mode]} and wires both releases to it`, async () => {
                const config = stackConfig(stack, { mode });
                const run = await runProgram(config);
                assert.strictEqual(run.outputs.mode, mode);
                // The PgBouncer modes warn of the image's open CVEs; the central one of its open database egress (no
                // databaseCidrs in either stack); RDS Proxy of the read replica it cannot use (prod has one).
                assert.deepStrictEqual(run.warnings, [
                    ...(mode === "rds-proxy" ? [] : [securityWarningOf(config)]),
                    ...(mode === "pgbouncer-cluster" && stack.startsWith("one-server-")
                        ? ["databaseCidrs: empty, so the central PgBouncer's NetworkPolicy lets it reach port 5432 on any address; set databaseCidrs to the database subnets' CIDR blocks"]
                        : []),
                    ...(mode === "rds-proxy" && stack === "one-server-prod"
                        ? [
                              "databaseReplicaHost: velure-prod-ro.c9akciq32.eu-west-1.rds.amazonaws.com is not used in mode rds-proxy: every query goes through the proxy " +
                                  "to the primary (RDS Proxy's read-only endpoints serve Aurora clusters only: rdsClusterIdentifier with rdsReadOnlyEndpoint)",
                          ]
                        : []),
                ]);
                const components = run.resources.filter((r) => r.type.startsWith("velure:pooling:")).map((r) => r.type);
                const expected = [COMPONENT[mode], ...(mode === "rds-proxy" ? ["velure:pooling:RdsProxyTrust", "velure:pooling:RdsProxyCheck"] : ["velure:pooling:PgBouncerMonitoring"])];
                assert.deepStrictEqual([...new Set(components)].sort(), expected.sort());
                const releases = run.ofType(K8S.release);
                assert.strictEqual(releases.length, 2);
                for (const release of releases) {
                    const service = Object.values<any>(run.outputs.services).find((s) => s.release === release.inputs.name);
                    assert.deepStrictEqual(wiredAddress(run, release), { host: service.host, port: String(service.port) });
                }
                assert.ok(run.outputs.connectionBudget.every((s: any) => s.used <= s.available));
                for (const resource of run.resources) {
                    const holdsPassword = JSON.stringify(resource.raw).includes(PASSWORD_TOKEN);
                    if (holdsPassword) {
                        const data = resource.raw.stringData ?? resource.raw.secretString;
                        assert.ok(isWrappedSecret(data), `${resource.type} ${resource.name} holds the password outside a secret`);
                    }
                }
            });
        }
    }
});

describe("the README documents every stack output", () => {
    for (const mode of Object.keys(COMPONENT)) {
        it(`${mode}: each output has a row in the outputs table`, async () => {
            const run = await runProgram(stackConfig("one-server-prod", { mode }));
            const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
            for (const output of Object.keys(run.outputs).filter((k) => run.outputs[k] !== undefined)) {
                assert.match(readme, new RegExp(`^\\| \`${output}\` \\|`, "m"), `README does not document the output ${output}`);
            }
        });
    }
});

function securityWarningOf(config: Record<string, string>): string | undefined {
    pulumi.runtime.setAllConfig(config, ["velure-pooling:databasePassword"]);
    return securityWarning(loadConfig());
}

describe("the PgBouncer image's open CVEs", () => {
    const configOf = (overrides: Record<string, unknown>) => stackConfig("one-server-dev", overrides);

    it("are named on every run of a PgBouncer mode, with the image and what to do", () => {
        assert.strictEqual(
            securityWarningOf(configOf({})),
            "pgbouncerImage: PgBouncer 1.26.0 (ghcr.io/icoretech/pgbouncer-docker:1.26.0) lacks the fixes for CVE-2026-107348, CVE-2026-107349, " +
                'CVE-2026-107350; pin an image of the newest PgBouncer release once its tag is published (README: "The PgBouncer image")',
        );
        assert.strictEqual(securityWarningOf(configOf({ pgbouncerImage: "ghcr.io/icoretech/pgbouncer-docker:1.26.1" })), undefined);
        assert.strictEqual(securityWarningOf(configOf({ mode: "rds-proxy" })), undefined);
    });
});
