// velure:pooling:RdsProxyCheck: a Job in one service's namespace that logs in through RDS Proxy, as that service
// does, and ends once a query is answered. A ProxyTarget exists as soon as it is registered, minutes before the
// proxy can reach the database; the service's release waits for this Job, so no pod moves onto a proxy that does not
// serve yet, and the old pooler (deleted only at the end of a successful update) keeps serving until it does.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { restrictedContainerSecurityContext, restrictedPodSecurityContext } from "./pgbouncerPod";
import { POD_NAMES } from "./specs";

/** How long the Job tries before it fails the update: registration of a target takes a few minutes. */
const PROXY_CHECK_SECONDS = 600;
/** Pulumi's wait for the Job: its deadline, with room for the pod to be scheduled and the image pulled. */
const JOB_WAIT = `${PROXY_CHECK_SECONDS + 120}s`;
const RETRY_SECONDS = 10;
const CHECK_RESOURCES = { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "64Mi" } };

/**
 * The Job's script: psql (postgresql-client, in the PgBouncer image) with libpq's PG* variables, until a query is
 * answered or the deadline passes. `$1` is the deadline in seconds.
 */
export const PROXY_CHECK_SCRIPT = [
    'deadline=$(( $(date +%s) + $1 ))',
    "until psql --no-psqlrc --tuples-only --command 'SELECT 1' >/dev/null; do",
    '  if [ "$(date +%s)" -ge "$deadline" ]; then echo "RDS Proxy $PGHOST did not serve $PGDATABASE within $1 s" >&2; exit 1; fi',
    `  sleep ${RETRY_SECONDS}`,
    "done",
    'echo "RDS Proxy $PGHOST serves $PGDATABASE to $PGUSER"',
].join("\n");

export interface RdsProxyCheckArgs {
    namespace: pulumi.Input<string>;
    /** An image with psql that runs as a non-root user (the PgBouncer image). */
    image: string;
    host: pulumi.Input<string>;
    port: pulumi.Input<number>;
    database: string;
    user: string;
    /** The Secret and key that hold the service's password. */
    password: { secretName: pulumi.Input<string>; key: string };
    /** libpq's sslmode, and with verify-full the ConfigMap and the path of the CA bundle. */
    sslmode: string;
    ca?: { configMapName: pulumi.Input<string>; dir: string; file: string };
}

export function validateRdsProxyCheckArgs(args: RdsProxyCheckArgs): void {
    if (args.sslmode === "verify-full" && !args.ca) {
        throw new Error("RdsProxyCheck: sslmode verify-full needs the CA bundle (ca)");
    }
}

export class RdsProxyCheck extends pulumi.ComponentResource {
    constructor(name: string, args: RdsProxyCheckArgs, opts?: pulumi.ComponentResourceOptions) {
        super("velure:pooling:RdsProxyCheck", name, {}, opts);
        validateRdsProxyCheckArgs(args);
        const labels = { "app.kubernetes.io/name": "rds-proxy-check", "app.kubernetes.io/instance": name, "app.kubernetes.io/part-of": "velure" };
        const env = [
            { name: "PGHOST", value: args.host },
            { name: "PGPORT", value: pulumi.output(args.port).apply(String) },
            { name: "PGDATABASE", value: args.database },
            { name: "PGUSER", value: args.user },
            { name: "PGPASSWORD", valueFrom: { secretKeyRef: { name: args.password.secretName, key: args.password.key } } },
            { name: "PGSSLMODE", value: args.sslmode },
            { name: "PGCONNECT_TIMEOUT", value: String(RETRY_SECONDS) },
            { name: "PGAPPNAME", value: "velure-pooling-rds-proxy-check" },
            ...(args.ca ? [{ name: "PGSSLROOTCERT", value: args.ca.file }] : []),
        ];
        const volume = POD_NAMES.volumes.proxyCa;
        new k8s.batch.v1.Job(
            `${name}-job`,
            {
                metadata: { namespace: args.namespace, labels },
                spec: {
                    // One pod, which retries by itself until its deadline: a failed Job fails the update.
                    backoffLimit: 0,
                    activeDeadlineSeconds: PROXY_CHECK_SECONDS + 60,
                    template: {
                        metadata: { labels },
                        spec: {
                            restartPolicy: "Never",
                            automountServiceAccountToken: false,
                            enableServiceLinks: false,
                            securityContext: restrictedPodSecurityContext(),
                            containers: [
                                {
                                    name: "check",
                                    image: args.image,
                                    imagePullPolicy: "IfNotPresent",
                                    command: ["/bin/sh", "-c", PROXY_CHECK_SCRIPT, "rds-proxy-check", String(PROXY_CHECK_SECONDS)],
                                    env,
                                    resources: CHECK_RESOURCES,
                                    securityContext: restrictedContainerSecurityContext(),
                                    volumeMounts: args.ca ? [{ name: volume, mountPath: args.ca.dir, readOnly: true }] : [],
                                },
                            ],
                            volumes: args.ca ? [{ name: volume, configMap: { name: args.ca.configMapName, defaultMode: 0o444 } }] : [],
                        },
                    },
                },
            },
            { parent: this, customTimeouts: { create: JOB_WAIT, update: JOB_WAIT } },
        );
        this.registerOutputs({});
    }
}
