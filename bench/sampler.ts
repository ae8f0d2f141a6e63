// Server connections, sampled from one long-lived session (a new session per sample would fork a backend each
// time, inside the measured window). Its own connection is left out of the count.
import { Client } from "pg";
import { PostgresServer, USER, sleep } from "../tests/integration/servers";

// Each side's clients carry their own application_name (PgBouncer passes it on to its server connections), so that
// a side's count leaves out the other side's connections.
const OF_SIDES = "FROM pg_stat_activity WHERE usename = $1 AND datname = $2 AND application_name = ANY($3) AND pid <> pg_backend_pid()";
const COUNT = `SELECT count(*)::int AS n ${OF_SIDES}`;
const TERMINATE = `SELECT count(pg_terminate_backend(pid))::int AS n ${OF_SIDES}`;

/** The application_name of one side's clients. */
export function applicationName(side: string): string {
    return `velure-bench-${side}`;
}

async function count(client: Client, database: string, sides: string[], sql = COUNT): Promise<number> {
    return (await client.query(sql, [USER, database, sides.map(applicationName)])).rows[0].n as number;
}

/**
 * Closes the sides' server connections and waits until they are gone, so that a round starts from none: PgBouncer
 * keeps idle ones for server_idle_timeout (300 s), and the last round's would count in this round's peak and hold
 * slots that a direct round's clients need. A pooled round so starts with a cold pool: one login per server
 * connection it opens, a few per round.
 */
export async function closeServerConnections(pg: PostgresServer, database: string, sides: string[], timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await pg.superuser(async (client) => {
        await count(client, database, sides, TERMINATE);
        // A terminated (or closed) backend lingers in pg_stat_activity for a moment.
        while ((await count(client, database, sides)) > 0) {
            if (Date.now() > deadline) {
                throw new Error(`server connections of ${sides.join(", ")} still open after ${timeoutMs} ms`);
            }
            await sleep(50);
        }
    });
}

export interface Sampler {
    /** Stops sampling; resolves with the peak and the number of samples taken. */
    stop(): Promise<{ peak: number; samples: number }>;
}

/** Samples one side's server connections every `everyMs` in one session (pg.superuser's), until stopped. */
export async function sampleServerConnections(pg: PostgresServer, database: string, side: string, everyMs = 10): Promise<Sampler> {
    let peak = 0;
    let samples = 0;
    let running = true;
    let started: () => void = () => undefined;
    const connected = new Promise<void>((resolve) => (started = resolve));
    const loop = pg.superuser(async (client) => {
        started();
        while (running) {
            peak = Math.max(peak, await count(client, database, [side]));
            samples++;
            await sleep(everyMs);
        }
    });
    await Promise.race([connected, loop]);
    return {
        stop: async () => {
            running = false;
            await loop;
            return { peak, samples };
        },
    };
}
