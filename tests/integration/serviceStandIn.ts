// A Kubernetes Service's stand-in on loopback, for the central PgBouncer's replicas: like kube-proxy's rules, it
// picks an endpoint when a connection opens (round robin over the current ones) and keeps that connection on it
// until either side closes; taking an endpoint out (a stopping pod leaving the EndpointSlice) moves only the
// connections opened afterwards. A connection to an endpoint that refuses is reset, as a pod's port with nothing
// listening answers.
import * as net from "net";
import { HOST } from "./servers";

export class ServiceStandIn {
    private server?: net.Server;
    private endpoints: number[] = [];
    private next = 0;
    private readonly open = new Set<net.Socket>();
    port = 0;

    async start(endpoints: number[]): Promise<this> {
        this.endpoints = [...endpoints];
        const server = net.createServer((client) => this.forward(client));
        await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
        this.port = (server.address() as net.AddressInfo).port;
        this.server = server;
        return this;
    }

    /** The ports new connections go to: the Ready pods, in the EndpointSlice's words. */
    setEndpoints(endpoints: number[]): void {
        this.endpoints = [...endpoints];
    }

    get current(): number[] {
        return [...this.endpoints];
    }

    private forward(client: net.Socket): void {
        if (this.endpoints.length === 0) {
            client.resetAndDestroy();
            return;
        }
        const port = this.endpoints[this.next++ % this.endpoints.length];
        const upstream = net.connect(port, HOST);
        for (const socket of [client, upstream]) {
            this.open.add(socket);
            socket.once("close", () => this.open.delete(socket));
        }
        // A reset on one side is a reset on the other; an orderly close is passed on as one (pipe's end).
        client.on("error", () => upstream.resetAndDestroy());
        upstream.on("error", () => client.resetAndDestroy());
        client.pipe(upstream);
        upstream.pipe(client);
    }

    async stop(): Promise<void> {
        this.open.forEach((s) => s.destroy());
        await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    }
}
