// Day-two operations as velure's services see them (issue 39): a load of velure's own drivers (auth-service's GORM
// on pgx, publish-order-service's lib/pq pool with its outbox listener beside it) runs through the PgBouncer the
// program renders for the dev stack while exactly one operation happens, and the test reports per operation what
// the apps saw: requests, failed, the error window (first to last failure), acknowledged writes lost and the errors
// by kind. Each row is printed as a "figure: operation" line, and the table once per mode.
//
// What this layer can show: operations on PgBouncer and PostgreSQL processes. The central PgBouncer's two replicas
// sit behind a Service's stand-in (serviceStandIn.ts) and run under the pods' entrypoint, so that their stop is the
// pod's. Operations on the apps' pods (their rollout with the sidecar, the HPA, a mode switch) need a kubelet and real
// endpoints: tests/e2e/realNode.test.ts.
import * as assert from "assert";
import { execFileSync } from "child_process";
import { clusterShutdownSequence } from "../../components/pgbouncerCluster";
import { StopSequence, entrypointCommand, stopSeconds } from "../../components/pgbouncerPod";
import { SIDECAR_STOP } from "../../components/pgbouncerSidecar";
import { ServiceSpec, VelureConfig, serverOf } from "../../config";
import { pgbouncerClusterArgs } from "../../options/pgbouncerCluster";
import { ACKED_ROWS, ClientResult, LOCAL_VERSION, byName, countIn, devConfig, errorKinds, layerServices, named, startClient, velureServers } from "./clientRuns";
import { LOCAL_PGBOUNCER_VERSION } from "./pooler";
import { LAYER, PgBouncerProcess, PostgresServer, sleep } from "./servers";
import { ServiceStandIn } from "./serviceStandIn";
import { serviceUrl, startPooler } from "./velureStack";

/** The load before the operation, and after it: long enough for a driver to show it recovered. */
const BEFORE_MS = 2000;
const AFTER_MS = 3000;
/** How long "the database unreachable" lasts. */
const DOWN_SECONDS = 30;
/** An unplanned operation's error window may exceed its outage by this much (issue 39's goal). */
const WINDOW_MARGIN_SECONDS = 1;

type Mode = "pgbouncer-sidecar" | "pgbouncer-cluster";

/** The central PgBouncer's stop sequence, as the component renders it for the service's server. */
function centralStop(config: VelureConfig, service: ServiceSpec) {
    return clusterShutdownSequence(pgbouncerClusterArgs(config, serverOf(config, service)));
}

/** A PgBouncer as its container runs it: under the pods' entrypoint, with the stop sequence the component renders. */
function startContainer(config: VelureConfig, service: ServiceSpec, stop: StopSequence, port?: number): Promise<PgBouncerProcess> {
    return startPooler(config, service, { port, entrypoint: (ini) => entrypointCommand(LOCAL_VERSION, stop, ini) });
}

/** The PgBouncers one service reaches: its sidecar, or the central replicas behind their Service. */
class PoolerSide {
    readonly retired: PgBouncerProcess[] = [];
    private constructor(
        readonly config: VelureConfig,
        readonly service: ServiceSpec,
        /** How its containers stop, as the component renders them. */
        readonly stop: StopSequence,
        readonly replicas: PgBouncerProcess[],
        readonly front?: ServiceStandIn,
    ) {}

    static async start(config: VelureConfig, service: ServiceSpec): Promise<PoolerSide> {
        if (config.mode === "pgbouncer-sidecar") {
            return new PoolerSide(config, service, SIDECAR_STOP, [await startContainer(config, service, SIDECAR_STOP)]);
        }
        const stop = centralStop(config, service);
        const replicas = await Promise.all(Array.from({ length: config.pgbouncer.replicas }, () => startContainer(config, service, stop)));
        return new PoolerSide(config, service, stop, replicas, await new ServiceStandIn().start(replicas.map((r) => r.port)));
    }

    /** A new pod's container (a rollout's). */
    startReplica(): Promise<PgBouncerProcess> {
        return startContainer(this.config, this.service, this.stop);
    }

    /** The port the service's URL names: the sidecar's, or the Service's. */
    get port(): number {
        return this.front?.port ?? this.replicas[0].port;
    }

    /** The kubelet's restart of replica i's container, on the same port, once its process has ended. */
    async restart(i: number): Promise<void> {
        const old = this.replicas[i];
        this.retired.push(old);
        this.replicas[i] = await startContainer(this.config, this.service, this.stop, old.port);
    }

    async end(): Promise<void> {
        await this.front?.stop();
        await Promise.all([...this.replicas, ...this.retired].map((b) => b.stop()));
    }
}

interface OperationContext {
    sides: PoolerSide[];
    servers: PostgresServer[];
}

interface Operation {
    name: string;
    planned: boolean;
    modes: Mode[];
    /** How the program (or the cluster) carries it out, in the table's words. */
    how: string;
    /** Carries it out; answers the outage it caused (seconds the pooler or the database was away), 0 for none. */
    run(context: OperationContext): Promise<number>;
    /**
     * The services' connection lifetime for this run, in their pools and in the config alike (velure's 300 s would
     * make a test of minutes), and the drain time: what a stopping central PgBouncer waits for.
     */
    shortened?: { lifetimeSeconds: number; drainSeconds: number };
}

/** SIGKILL to a PgBouncer under its entrypoint: the process, not the shell (the container's main process exits with it). */
function killPgBouncer(bouncer: PgBouncerProcess): void {
    execFileSync("pkill", ["-KILL", "-P", String(bouncer.pid), "-x", "pgbouncer"]);
}

/** Seconds since `start` (a Date.now()). */
const since = (start: number) => (Date.now() - start) / 1000;

const OPERATIONS: Operation[] = [
    {
        name: "pgbouncer.ini RELOAD",
        planned: true,
        modes: ["pgbouncer-sidecar", "pgbouncer-cluster"],
        how: "SIGHUP to every PgBouncer (the program rolls the pods on a change instead: rows below)",
        run: async ({ sides }) => {
            for (const bouncer of sides.flatMap((s) => s.replicas)) {
                await bouncer.reload(() => bouncer.ini);
            }
            return 0;
        },
    },
    {
        name: "central PgBouncer rollout (2 replicas)",
        planned: true,
        modes: ["pgbouncer-cluster"],
        how: "maxSurge 1, maxUnavailable 0: a new replica Ready, the old one out of the endpoints, then its stop (SIGTERM to the entrypoint)",
        shortened: { lifetimeSeconds: 5, drainSeconds: 3 },
        run: async ({ sides }) => {
            await Promise.all(
                sides.map(async (side) => {
                    for (const [i, old] of [...side.replicas].entries()) {
                        const next = await side.startReplica();
                        side.front?.setEndpoints([...(side.front?.current ?? []).filter((p) => p !== old.port), next.port]);
                        side.replicas[i] = next;
                        side.retired.push(old);
                        old.signal("SIGTERM");
                        await old.waitExit((stopSeconds(side.stop) + 10) * 1000);
                    }
                }),
            );
            return 0;
        },
    },
    {
        name: "PgBouncer killed (SIGKILL), restarted",
        planned: false,
        modes: ["pgbouncer-sidecar", "pgbouncer-cluster"],
        how: "SIGKILL to PgBouncer (one replica of the central ones); the kubelet starts the container again on the same port",
        run: async ({ sides }) => {
            const start = Date.now();
            await Promise.all(
                sides.map(async (side) => {
                    killPgBouncer(side.replicas[0]);
                    await side.replicas[0].waitExit(5000);
                    await side.restart(0);
                }),
            );
            return since(start);
        },
    },
    {
        name: "database restart",
        planned: false,
        modes: ["pgbouncer-sidecar", "pgbouncer-cluster"],
        how: "pg_ctl restart -m fast (an RDS reboot's stand-in, the address unchanged)",
        run: async ({ servers }) => {
            const start = Date.now();
            servers.forEach((s) => s.restart("fast"));
            return since(start);
        },
    },
    {
        name: `database down ${DOWN_SECONDS} s`,
        planned: false,
        modes: ["pgbouncer-sidecar", "pgbouncer-cluster"],
        how: `pg_ctl stop -m fast, ${DOWN_SECONDS} s, pg_ctl start (the address unchanged)`,
        run: async ({ servers }) => {
            const start = Date.now();
            servers.forEach((s) => s.halt("fast"));
            await sleep(DOWN_SECONDS * 1000);
            servers.forEach((s) => s.resume());
            return since(start);
        },
    },
];

interface Row {
    operation: string;
    mode: Mode;
    driver: string;
    planned: boolean;
    outage: number;
    requests: number;
    failed: number;
    /** Seconds from the first failure to the last (0 for one failure, undefined for none). */
    window?: number;
    lost: number;
    listenerDrops: number;
    errors: string;
    recovered: number;
}

function windowOf(result: ClientResult): number | undefined {
    return result.firstFailure === undefined || result.lastFailure === undefined ? undefined : Math.round((result.lastFailure - result.firstFailure) * 100) / 100;
}

function printRow(row: Row): void {
    const window = row.window === undefined ? "-" : `${row.window} s`;
    console.log(
        `      figure: operation | PgBouncer ${LOCAL_PGBOUNCER_VERSION} | ${row.mode} | ${row.operation} | ${row.driver} | ${row.requests} requests | ${row.failed} failed | window ${window} | outage ${row.outage.toFixed(1)} s | ${row.lost} lost | listener drops ${row.listenerDrops} | ${row.errors || "no errors"}`,
    );
}

/** The load commands at this layer: GORM only where the program takes pgx in a transaction pool (1.21+). */
const LOADS = [...(named ? [{ command: "gorm", service: "auth-service", server: "auth", args: [] as string[] }] : []), { command: "pq", service: "publish-order-service", server: "orders", args: ["-listen", "1"] }];

describe(`day-two operations under velure's load, PgBouncer ${LOCAL_PGBOUNCER_VERSION} (${LAYER}): what each costs the apps`, function () {
    this.timeout(600000);
    const servers = velureServers();

    /** The dev stack's config on this layer, with the operation's shortened lifetime and drain. */
    function operationConfig(mode: Mode, operation: Operation): VelureConfig {
        const short = operation.shortened;
        if (!short) {
            return devConfig(servers, mode, layerServices());
        }
        const services = layerServices().map((s) => (s.client ? { ...s, client: { ...s.client, maxLifetimeSeconds: short.lifetimeSeconds } } : s));
        return devConfig(servers, mode, services, false, { pgbouncerDrainSeconds: short.drainSeconds });
    }

    for (const mode of ["pgbouncer-sidecar", "pgbouncer-cluster"] as Mode[]) {
        describe(mode, () => {
            const rows: Row[] = [];
            after(() => rows.forEach(printRow));

            for (const operation of OPERATIONS.filter((o) => o.modes.includes(mode))) {
                const goal = operation.planned ? "0 failed" : `an error window within the outage + ${WINDOW_MARGIN_SECONDS} s`;
                it(`${operation.name} (${operation.how}): ${goal}, no acknowledged write lost`, async () => {
                    const config = operationConfig(mode, operation);
                    const loads = LOADS.map((l) => ({ ...l, spec: byName(config, l.service) }));
                    const sides = await Promise.all(loads.map((l) => PoolerSide.start(config, l.spec)));
                    let outage = 0;
                    let results: ClientResult[];
                    try {
                        const lifetime = operation.shortened ? ["-max-lifetime", `${operation.shortened.lifetimeSeconds}s`] : [];
                        const runs = loads.map((l, i) => startClient(l.command, serviceUrl(config, l.spec, sides[i].port), ["-workers", "10", "-run", `${mode}-${OPERATIONS.indexOf(operation)}`, ...lifetime, ...l.args]));
                        try {
                            await sleep(BEFORE_MS);
                            outage = await operation.run({ sides, servers: loads.map((l) => servers[l.server]) });
                            await sleep(AFTER_MS);
                        } finally {
                            results = await Promise.all(runs.map((r) => r.end()));
                        }
                    } finally {
                        await Promise.all(sides.map((s) => s.end()));
                    }
                    const measured: Row[] = [];
                    for (const [i, l] of loads.entries()) {
                        const result = results[i];
                        const stored = await countIn(servers[l.server], l.spec.database, ACKED_ROWS[l.command], [result.acked ?? []]);
                        const row: Row = {
                            operation: operation.shortened ? `${operation.name}, lifetime ${operation.shortened.lifetimeSeconds} s` : operation.name,
                            mode,
                            driver: l.command === "gorm" ? "auth-service GORM/pgx" : "publish-order lib/pq + listener",
                            planned: operation.planned,
                            outage,
                            requests: result.ops,
                            failed: result.failed,
                            window: windowOf(result),
                            lost: (result.acked?.length ?? 0) - stored,
                            listenerDrops: result.listenerDrops ?? 0,
                            errors: errorKinds(result),
                            recovered: result.okAfterLastError,
                        };
                        rows.push(row);
                        measured.push(row);
                        assert.strictEqual(result.fatal, undefined, `${l.command} ended with a fatal error`);
                    }
                    for (const row of measured) {
                        printRow(row);
                        assert.strictEqual(row.lost, 0, `${row.driver}: no acknowledged write lost`);
                        assert.ok(row.recovered >= 10, `${row.driver} recovered by itself: ${row.recovered} operations succeeded after its last error`);
                        if (operation.planned) {
                            assert.strictEqual(row.failed, 0, `${row.driver}: a planned operation fails no request (${row.errors})`);
                        } else if (row.window !== undefined) {
                            assert.ok(row.window <= row.outage + WINDOW_MARGIN_SECONDS, `${row.driver}: error window ${row.window} s for an outage of ${row.outage.toFixed(1)} s (${row.errors})`);
                        }
                    }
                });
            }
        });
    }
});
