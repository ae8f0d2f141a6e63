// The real node's DNS server, standing in for the cluster's CoreDNS and for the VPC's resolver: A records for
// `<service>.<namespace>.svc.cluster.local` (the Service's ClusterIP, read from the API server) and for the names
// a test adds (the RDS endpoints' names, on the database stand-ins' addresses). UDP only; every other name is
// NXDOMAIN, and a known name has no AAAA record. It listens on the node's address, inside the test's namespace.
import { execFile } from "child_process";
import * as dgram from "dgram";
import { promisify } from "util";
import { LocalCluster } from "./cluster";

const run = promisify(execFile);
const TYPE_A = 1;
const NXDOMAIN = 3;
/** The answers' TTL, and how long a Service's address is kept here. */
const TTL_SECONDS = 5;
const SERVICE_NAME = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$/;

interface Question {
    name: string;
    type: number;
    /** The question section as it came, echoed in the answer. */
    raw: Buffer;
}

function parseQuestion(message: Buffer): Question | undefined {
    const labels: string[] = [];
    let offset = 12;
    while (offset < message.length && message[offset] !== 0) {
        const length = message[offset];
        labels.push(message.subarray(offset + 1, offset + 1 + length).toString("ascii"));
        offset += length + 1;
    }
    if (offset + 5 > message.length) {
        return undefined;
    }
    return { name: labels.join(".").toLowerCase(), type: message.readUInt16BE(offset + 1), raw: message.subarray(12, offset + 5) };
}

/** The reply: the query's id and question, rcode, and one A record when an address is given. */
function reply(query: Buffer, question: Question, rcode: number, address?: string): Buffer {
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    // QR, the query's RD, RA; the rcode.
    header.writeUInt16BE(0x8080 | (query.readUInt16BE(2) & 0x0100) | rcode, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(address ? 1 : 0, 6);
    if (!address) {
        return Buffer.concat([header, question.raw]);
    }
    const answer = Buffer.alloc(16);
    answer.writeUInt16BE(0xc00c, 0); // the question's name
    answer.writeUInt16BE(TYPE_A, 2);
    answer.writeUInt16BE(1, 4); // IN
    answer.writeUInt32BE(TTL_SECONDS, 6);
    answer.writeUInt16BE(4, 10);
    address.split(".").forEach((octet, i) => answer.writeUInt8(Number(octet), 12 + i));
    return Buffer.concat([header, question.raw, answer]);
}

export class ClusterDns {
    private readonly hosts = new Map<string, string>();
    /** A Service's ClusterIP, with when it was read: kept for the records' TTL only, since a Service deleted and made again gets another. */
    private readonly services = new Map<string, { ip: string; readAt: number }>();
    private socket?: dgram.Socket;

    constructor(private readonly cluster: LocalCluster) {}

    /** A name outside the cluster (an RDS endpoint) and the address that answers for it. */
    addHost(name: string, address: string): void {
        this.hosts.set(name.toLowerCase(), address);
    }

    async start(address: string): Promise<void> {
        const socket = dgram.createSocket("udp4");
        socket.on("message", (message, peer) => {
            void this.answer(message).then((response) => response && socket.send(response, peer.port, peer.address));
        });
        await new Promise<void>((resolve, reject) => {
            socket.once("error", reject);
            socket.bind(53, address, () => resolve());
        });
        this.socket = socket;
    }

    async stop(): Promise<void> {
        await new Promise<void>((resolve) => (this.socket ? this.socket.close(() => resolve()) : resolve()));
        this.socket = undefined;
    }

    private async answer(message: Buffer): Promise<Buffer | undefined> {
        const question = parseQuestion(message);
        if (!question) {
            return undefined;
        }
        const address = await this.lookup(question.name);
        if (!address) {
            return reply(message, question, NXDOMAIN);
        }
        return reply(message, question, 0, question.type === TYPE_A ? address : undefined);
    }

    private async lookup(name: string): Promise<string | undefined> {
        const host = this.hosts.get(name);
        if (host) {
            return host;
        }
        const cached = this.services.get(name);
        if (cached && Date.now() - cached.readAt < TTL_SECONDS * 1000) {
            return cached.ip;
        }
        const service = name.match(SERVICE_NAME);
        if (!service) {
            return undefined;
        }
        try {
            const { stdout } = await run("kubectl", [`--kubeconfig=${this.cluster.kubeconfig}`, "get", "service", service[1], "-n", service[2], "-o", "jsonpath={.spec.clusterIP}"]);
            const ip = stdout.trim();
            if (/^\d+\.\d+\.\d+\.\d+$/.test(ip)) {
                this.services.set(name, { ip, readAt: Date.now() });
                return ip;
            }
        } catch {
            // no such Service (yet)
        }
        return undefined;
    }
}
