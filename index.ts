// velure-pooling: reads and checks the config, declares the chosen pooler and the services' releases.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { formatVersion } from "./components/pgbouncerIni";
import { VelureConfig, loadConfig, secretIf } from "./config";
import { poolerUrlSecretName } from "./config/connection";
import { prepareOption } from "./options";
import { Deployed, readDeployedPooler } from "./options/deployed";
import { PreparedPooler } from "./options/types";
import { assertPrerequisites } from "./services/prerequisites";
import { deployReleases, serviceNamespaces } from "./services/releases";

/**
 * Everything that can be wrong with the config, or with a switch from what is deployed, fails here, before any
 * resource is declared. The error is reported and the process ends at once: when the program's promise rejects
 * instead, the CLI reports it much later (measured here: `pulumi preview` of a bad mode took 77 s that way, 16 s this
 * way), because the Node process lingers before it exits.
 */
async function prepare(): Promise<{ config: VelureConfig; prepared: PreparedPooler; provider: k8s.Provider; deployed: Deployed }> {
    try {
        const config = loadConfig();
        const deployed = await readDeployedPooler();
        const prepared = prepareOption(config, deployed);
        const provider = kubernetesProvider(config);
        await assertPrerequisites(config, provider);
        return { config, prepared, provider, deployed };
    } catch (e) {
        // Only under the Pulumi CLI (which hands the program its engine's address); the plan and the tests' mock
        // runtime get the error itself.
        if (!process.env.PULUMI_NODEJS_MONITOR) {
            throw e;
        }
        await pulumi.log.error((e as Error).message);
        // The code the Node language host reads as "the error was reported": it prints nothing more.
        return process.exit(32);
    }
}

function kubernetesProvider(config: VelureConfig): k8s.Provider {
    return new k8s.Provider("velure-k8s", {
        kubeconfig: config.kubernetes.kubeconfig,
        context: config.kubernetes.context,
        // Server-side apply (this provider's default) creates by patching, which silently takes over an object that
        // already exists, and then deletes it with the stack. Client-side creates fail with "already exists"
        // instead: the program never adopts (or relabels, or later deletes) what it did not create.
        enableServerSideApply: false,
    });
}

export = async () => {
    const { config, prepared, provider, deployed } = await prepare();

    const namespaces = serviceNamespaces(config, provider);
    const pooler = prepared.declare({ provider, serviceNamespaces: namespaces });
    const releases = deployReleases(config, pooler, provider, namespaces, deployed);

    return {
        mode: config.mode,
        postgresHost: pooler.host,
        postgresPort: pooler.port,
        connectionBudget: prepared.budget,
        services: secretIf(config.secretServices, Object.fromEntries(
            config.services.map((service) => {
                const connection = pooler.connectionFor(service);
                return [
                    service.name,
                    {
                        release: releases[service.name].name,
                        namespace: service.namespace,
                        database: service.database,
                        host: connection.host,
                        port: connection.port,
                        // The app's TLS towards the pooler; the next run reads it back for the pods still on this one.
                        sslmode: connection.tls.sslmode,
                        sslrootcert: connection.tls.rootCert,
                        // How the chart got the connection: env (POSTGRES_HOST and the rest), or the URL in the program's
                        // Secret (its key per mode), where the post-renderer points the chart's reference to chartSecret.
                        connection: service.connection.contract === "urlSecret"
                            ? {
                                  contract: "urlSecret",
                                  secret: `${service.namespace}/${poolerUrlSecretName(service.releaseName)}`,
                                  key: service.connection.key,
                                  chartSecret: `${service.namespace}/${service.connection.secretName}`,
                              }
                            : { contract: "env" },
                    },
                ];
            }),
        )),
        /** The PgBouncer version the config was rendered for (PgBouncer modes only). */
        pgbouncerVersion: config.mode === "rds-proxy" ? undefined : formatVersion(config.pgbouncer.version),
    };
};
