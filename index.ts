// velure-pooling: reads and checks the config, declares the chosen pooler and the services' releases.
import * as k8s from "@pulumi/kubernetes";
import { formatVersion } from "./components/pgbouncerIni";
import { loadConfig } from "./config";
import { prepareOption } from "./options";
import { readDeployedPooler } from "./options/deployed";
import { deployReleases, serviceNamespaces } from "./services/releases";

export = async () => {
    // Everything that can be wrong with the config, or with a switch from what is deployed, fails here, before any
    // resource is declared.
    const config = loadConfig();
    const prepared = prepareOption(config, await readDeployedPooler());

    const provider = new k8s.Provider("velure-k8s", {
        kubeconfig: config.kubernetes.kubeconfig,
        context: config.kubernetes.context,
    });
    const namespaces = serviceNamespaces(config, provider);
    const pooler = prepared.declare({ provider, serviceNamespaces: namespaces });
    const releases = deployReleases(config, pooler, provider, namespaces);

    return {
        mode: config.mode,
        postgresHost: pooler.host,
        postgresPort: pooler.port,
        connectionBudget: prepared.budget,
        services: Object.fromEntries(
            config.services.map((service) => {
                const connection = pooler.connectionFor(service);
                return [
                    service.name,
                    { release: releases[service.name].name, namespace: service.namespace, database: service.database, host: connection.host, port: connection.port },
                ];
            }),
        ),
        /** The PgBouncer version the config was rendered for (PgBouncer modes only). */
        pgbouncerVersion: config.mode === "rds-proxy" ? undefined : formatVersion(config.pgbouncer.version),
    };
};
