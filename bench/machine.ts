// CPU accounting from /proc: how busy the machine was during a round, and how much of that was not ours (the
// benchmark's own client, PostgreSQL, PgBouncer and pgbench), so that a disturbed round can be marked.
import * as fs from "fs";
import * as os from "os";

const TICKS_PER_SECOND = 100;

/** Busy jiffies of the whole machine (all cores), from the first line of /proc/stat. */
function machineBusyTicks(): number {
    const fields = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return user + nice + system + irq + softirq + steal;
}

interface ProcStat {
    pid: number;
    ppid: number;
    /** utime + stime + cutime + cstime: its own CPU and that of its waited-for children. */
    ticks: number;
}

function readProc(pid: number): ProcStat | undefined {
    try {
        const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // The command name may hold spaces and parentheses: the fields start after the last ")".
        const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
        const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
        return { pid, ppid: Number(fields[1]), ticks: utime + stime + cutime + cstime };
    } catch {
        return undefined;
    }
}

/** CPU ticks of the given processes and all their descendants. */
export function treeTicks(roots: number[]): number {
    const all = fs
        .readdirSync("/proc")
        .filter((name) => /^\d+$/.test(name))
        .map((name) => readProc(Number(name)))
        .filter((p): p is ProcStat => p !== undefined);
    const ours = new Set(roots);
    let grew = true;
    while (grew) {
        grew = false;
        for (const p of all) {
            if (!ours.has(p.pid) && ours.has(p.ppid)) {
                ours.add(p.pid);
                grew = true;
            }
        }
    }
    return all.filter((p) => ours.has(p.pid)).reduce((sum, p) => sum + p.ticks, 0);
}

export interface LoadReading {
    /** The 1-minute load average when the round started. */
    loadBefore: number;
    /** CPU of processes that are not the benchmark's, in cores (1.0 = one core busy all the time). */
    otherCores: number;
    /** CPU of the benchmark's processes, in cores. */
    ourCores: number;
}

/** Measures from now until `stop`; `roots` are the benchmark's processes (their children count as ours). */
export function startLoadMeter(roots: () => number[]): { stop: () => LoadReading } {
    const loadBefore = os.loadavg()[0];
    const started = Date.now();
    const machine = machineBusyTicks();
    const ours = treeTicks(roots());
    return {
        stop: () => {
            const seconds = (Date.now() - started) / 1000;
            const machineCores = (machineBusyTicks() - machine) / TICKS_PER_SECOND / seconds;
            const ourCores = Math.max(0, treeTicks(roots()) - ours) / TICKS_PER_SECOND / seconds;
            return { loadBefore: round(loadBefore), otherCores: round(Math.max(0, machineCores - ourCores)), ourCores: round(ourCores) };
        },
    };
}

/** The CPU seconds one process and its children have used so far. */
export function cpuSeconds(pid: number): number {
    return (readProc(pid)?.ticks ?? 0) / TICKS_PER_SECOND;
}

export function round(n: number, digits = 2): number {
    return Number(n.toFixed(digits));
}
