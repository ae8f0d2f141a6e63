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

export interface Sampler {
    /** Stops sampling; resolves with the peak and the number of samples taken. */
    stop(): Promise<{ peak: number; samples: number }>;
}

/**
 * Waits until the previous run's server connections are gone (a closed backend lingers in pg_stat_activity for a
 * moment), so that one round's peak does not count the last round's leftovers.
 */
export async function waitForNoServerConnections(pg: PostgresServer, database: string, side: string, timeoutMs = 10000): Promise<void> {
    const client = new Client({ host: pg.dir, port: pg.port, user: "postgres", database: "postgres" });
    await client.connect();
    try {
        const deadline = Date.now() + timeoutMs;
        while ((await client.query(SQL, [USER, database, applicationName(side)])).rows[0].n > 0 && Date.now() < deadline) {
            await sleep(50);
        }
    } finally {
        await client.end();
    }
}

export async function sampleServerConnections(pg: PostgresServer, database: string, side: string, everyMs = 10): Promise<Sampler> {
    const client = new Client({ host: pg.dir, port: pg.port, user: "postgres", database: "postgres" });
    await client.connect();
    let peak = 0;
    let samples = 0;
    let running = true;
    const loop = (async () => {
        while (running) {
            const n = (await client.query(SQL, [USER, database, applicationName(side)])).rows[0].n as number;
            peak = Math.max(peak, n);
            samples++;
            await sleep(everyMs);
        }
    })();
    return {
        stop: async () => {
            running = false;
            await loop;
            await client.end();
            return { peak, samples };
        },
    };
}
