// The callers' side of an operation on the real node (issue 39, item 4): HTTP requests to each release's Service
// (its ClusterIP, through kube-proxy's rules, to whichever pods its endpoints hold) at a steady rate while the
// operation runs, counted as velure's users would see them: each request a sign-up (auth-service) or an order
// (publish-order-service), written through the pooler; an answer other than 200 is a failed request.
import { PostgresServer } from "../integration/servers";

export interface HttpTarget {
    name: string;
    url: string;
    /** The answer's field that names the row the request wrote, and how the server finds those rows. */
    written: { field: string; count: string };
    server: PostgresServer;
    database: string;
}

export interface HttpLoadRow {
    release: string;
    requests: number;
    failed: number;
    /** Seconds from the first failed request to the last (undefined: none failed). */
    window?: number;
    /** Acknowledged (200) writes the server does not have. */
    lost: number;
    /** Failed requests that started after the operation had ended (stop()'s `settledAt`). */
    failedAfterSettled: number;
    errors: Record<string, number>;
}

/** A request's answer: the row it wrote, or the kind of its failure. */
async function post(url: string, field: string): Promise<{ written?: string; error?: string }> {
    try {
        const response = await fetch(url, { method: "POST", signal: AbortSignal.timeout(10000) });
        const text = await response.text();
        if (response.status !== 200) {
            return { error: `HTTP ${response.status}: ${text.trim().slice(0, 120)}` };
        }
        return { written: JSON.parse(text)[field] };
    } catch (e) {
        const error = e as Error & { cause?: { code?: string } };
        return { error: error.cause?.code ?? error.name };
    }
}

/**
 * Starts `workers` loops per target, a request each `pauseMs`; stop(settledAt) ends them and counts what the callers
 * saw, and which failures started after `settledAt` (a request that hung on a pod gone mid-operation ends late).
 */
export function startHttpLoad(targets: HttpTarget[], workers = 2, pauseMs = 100): { stop: (settledAt: number) => Promise<HttpLoadRow[]> } {
    let running = true;
    let settled = Infinity;
    const loops = targets.map(async (target) => {
        const written: string[] = [];
        const row: HttpLoadRow = { release: target.name, requests: 0, failed: 0, lost: 0, failedAfterSettled: 0, errors: {} };
        const failedStarts: number[] = [];
        let first: number | undefined;
        let last: number | undefined;
        await Promise.all(
            Array.from({ length: workers }, async () => {
                while (running) {
                    const startedAt = Date.now();
                    const answer = await post(target.url, target.written.field);
                    row.requests++;
                    if (answer.error) {
                        row.failed++;
                        failedStarts.push(startedAt);
                        row.errors[answer.error] = (row.errors[answer.error] ?? 0) + 1;
                        last = Date.now();
                        first ??= last;
                    } else {
                        written.push(answer.written as string);
                    }
                    await new Promise((r) => setTimeout(r, pauseMs));
                }
            }),
        );
        row.failedAfterSettled = failedStarts.filter((t) => t > settled).length;
        row.window = first === undefined ? undefined : ((last as number) - first) / 1000;
        const stored = await target.server.superuser(async (c) => Number((await c.query(target.written.count, [written])).rows[0].n), target.database);
        row.lost = written.length - stored;
        return row;
    });
    return {
        stop: async (settledAt: number) => {
            settled = settledAt;
            running = false;
            return Promise.all(loops);
        },
    };
}

/** One row as the closing notes quote it. */
export function describeLoadRow(operation: string, row: HttpLoadRow): string {
    const errors = Object.entries(row.errors).map(([e, n]) => `${n}× ${e}`);
    const window = row.window === undefined ? "-" : `${row.window.toFixed(2)} s`;
    return `figure: real node operation | ${operation} | ${row.release} | ${row.requests} requests | ${row.failed} failed | window ${window} | ${row.lost} lost | ${errors.length ? errors.join("; ") : "no errors"}`;
}
