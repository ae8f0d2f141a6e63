// velure-pooling: reads and checks the config, declares the chosen pooler and the services' releases.
import * as k8s from "@pulumi/kubernetes";
import { formatVersion } from "./components/pgbouncerIni";
import { loadConfig } from "./config";
import { prepareOption } from "./options";
import { deployReleases, serviceNamespaces } from "./services/releases";

// Everything that can be wrong with the config fails here, before any resource is declared.
const config = loadConfig();
const declarePooler = prepareOption(config);

const provider = new k8s.Provider("velure-k8s", {
    kubeconfig: config.kubernetes.kubeconfig,
    context: config.kubernetes.context,
});
const namespaces = serviceNamespaces(config, provider);
const pooler = declarePooler({ provider, serviceNamespaces: namespaces });
const releases = deployReleases(config, pooler, provider, namespaces);

export const mode = config.mode;
export const postgresHost = pooler.host;
export const postgresPort = pooler.port;
export const connectionBudget = pooler.budget;
export const services = Object.fromEntries(
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
            },
        ];
    }),
);
/** The PgBouncer version the config was rendered for (PgBouncer modes only). */
export const pgbouncerVersion = config.mode === "rds-proxy" ? undefined : formatVersion(config.pgbouncer.version);
