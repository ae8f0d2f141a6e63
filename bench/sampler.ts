// Server connections, sampled from one long-lived session (a new session per sample would fork a backend each
// time, inside the measured window). Its own connection is left out of the count.
import { Client } from "pg";
import { PostgresServer, USER, sleep } from "../tests/integration/servers";

// Each side's clients carry their own application_name (PgBouncer passes it on to its server connections), so that
// a side's count leaves out the other side's connections: PgBouncer keeps its idle ones open between rounds.
const SQL = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND datname = $2 AND application_name = $3 AND pid <> pg_backend_pid()";

/** The application_name of one side's clients. */
export function applicationName(side: string): string {
    return `velure-bench-${side}`;
}

async function count(client: Client, database: string, side: string): Promise<number> {
    return (await client.query(SQL, [USER, database, applicationName(side)])).rows[0].n as number;
}

/**
 * Waits until the previous run's server connections are gone (a closed backend lingers in pg_stat_activity for a
 * moment), so that one round's peak does not count the last round's leftovers.
 */
export async function waitForNoServerConnections(pg: PostgresServer, database: string, side: string, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await pg.superuser(async (client) => {
        while ((await count(client, database, side)) > 0 && Date.now() < deadline) {
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
            peak = Math.max(peak, await count(client, database, side));
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
