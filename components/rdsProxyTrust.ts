// velure:pooling:RdsProxyTrust: what one service's pods need to verify RDS Proxy's certificate (sslmode
// verify-full): the CAs it chains to, in a ConfigMap of the service's namespace, mounted into the app container,
// and the env that points libpq and pgx at them.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { configChecksum, podVersionAnnotations } from "./pgbouncerPod";
import { POD_NAMES } from "./specs";

/**
 * Where the app container finds the CA bundle: a directory mount (not subPath). The ConfigMap keeps its name and is
 * updated in place (see pgbouncerConfigObjects for why nothing a pod mounts is replaced); the pods roll on a change
 * through the checksum annotation in chartValues.
 */
export const PROXY_CA_DIR = "/etc/velure/rds-proxy-ca";
export const PROXY_CA_KEY = "ca.pem";
export const PROXY_CA_FILE = `${PROXY_CA_DIR}/${PROXY_CA_KEY}`;
const VOLUME = POD_NAMES.volumes.proxyCa;

export interface RdsProxyTrustArgs {
    namespace: pulumi.Input<string>;
    /** The PEM bundle: Amazon's root CAs (components/rdsCertificates.ts rdsProxyCaBundle). */
    caBundle: string;
}

export class RdsProxyTrust extends pulumi.ComponentResource {
    public readonly configMapName: pulumi.Output<string>;
    /** extraVolumes and extraVolumeMounts for the service's chart. */
    public readonly chartValues: Record<string, unknown>;

    constructor(name: string, args: RdsProxyTrustArgs, opts?: pulumi.ComponentResourceOptions) {
        super("velure:pooling:RdsProxyTrust", name, {}, opts);
        if (!args.caBundle.includes("-----BEGIN CERTIFICATE-----")) {
            throw new Error("RdsProxyTrust: caBundle holds no PEM certificate");
        }
        const configMap = new k8s.core.v1.ConfigMap(
            `${name}-ca`,
            {
                metadata: { name: `${name}-ca`, namespace: args.namespace, labels: { "app.kubernetes.io/part-of": "velure", "app.kubernetes.io/component": "rds-proxy-ca" } },
                data: { [PROXY_CA_KEY]: args.caBundle },
            },
            { parent: this },
        );
        this.configMapName = configMap.metadata.name;
        this.chartValues = {
            extraVolumes: [{ name: VOLUME, configMap: { name: this.configMapName, defaultMode: 0o444 } }],
            extraVolumeMounts: [{ name: VOLUME, mountPath: PROXY_CA_DIR, readOnly: true }],
            podAnnotations: podVersionAnnotations({ "rds-proxy-ca": configChecksum(args.caBundle) }, {}),
        };
        this.registerOutputs({ configMapName: this.configMapName });
    }
}
