import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/**
 * CPU and memory of another process, read from /proc so the measured process needs no hook of its own.
 * Linux only; on anything else the readers return null and the report says n/a.
 */

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ; 100 on every Linux build Node supports

/** utime + stime of all threads, in 10 ms ticks; it also keeps the time of threads that have exited. */
function cpuMsFromStat(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * CPU time of a process in ms. Sums each live thread's time on CPU from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds: a 16 MiB transfer costs tens of ms, too few 10 ms ticks to count), and falls back to
 * /proc/<pid>/stat where schedstat is missing. Null when the process is gone.
 */
export function cpuMs(pid: number): number | null {
  try {
    let nanoseconds = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        nanoseconds += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // A thread that exited between readdir and read.
      }
    }
    if (Number.isFinite(nanoseconds) && nanoseconds > 0) return nanoseconds / 1e6;
  } catch {
    // No task directory: fall back.
  }
  return cpuMsFromStat(pid);
}

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export const rssBytes = (pid: number): number | null => statusField(pid, 'VmRSS');
export const peakRssBytes = (pid: number): number | null => statusField(pid, 'VmHWM');

/**
 * Resets VmHWM to the current RSS (Linux >= 4.0, own processes), so a later read gives the peak of one
 * phase rather than of the process's life. Returns false when the kernel refused.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples VmRSS on a timer: a fallback for VmHWM, and a check that the peak was not a single spike. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private peak = 0;

  constructor(private readonly pid: number, private readonly intervalMs = 100) {}

  start(): void {
    this.peak = rssBytes(this.pid) ?? 0;
    this.timer = setInterval(() => {
      const rss = rssBytes(this.pid);
      if (rss !== null && rss > this.peak) this.peak = rss;
    }, this.intervalMs);
    this.timer.unref();
  }

  /** The largest sample since start. */
  stop(): number {
    clearInterval(this.timer);
    this.timer = undefined;
    return this.peak;
  }
}

/** CPU used by a set of processes over one phase, in ms, keyed by role. */
export class CpuMeter {
  private readonly before = new Map<string, number | null>();

  constructor(private readonly pids: Readonly<Record<string, number | undefined>>) {
    for (const [role, pid] of Object.entries(pids)) this.before.set(role, pid === undefined ? null : cpuMs(pid));
  }

  read(): Record<string, number | null> {
    const used: Record<string, number | null> = {};
    for (const [role, pid] of Object.entries(this.pids)) {
      const start = this.before.get(role) ?? null;
      const end = pid === undefined ? null : cpuMs(pid);
      used[role] = start === null || end === null ? null : end - start;
    }
    return used;
  }
}

/** CPU ms of each process in `pids` that is still alive. */
export function cpuOfPids(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const used = cpuMs(pid);
    if (used !== null) out.set(pid, used);
  }
  return out;
}

/** CPU used between two readings of a changing set of processes; one that appeared meanwhile counts whole. */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, used] of after) total += used - (before.get(pid) ?? 0);
  return total;
}

/**
 * Busy CPU time of the whole machine in ms, all CPUs: user, nice, system and steal (time the hypervisor
 * gave to other guests). irq and softirq are left out: loopback TCP is processed there on behalf of the
 * bench's own processes without being charged to them, and it would read as someone else's load.
 */
export function machineBusyMs(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, , , , , steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (steal ?? 0)) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** How busy the machine is over `ms`, as % of one core: the load others put on it before we start. */
export async function machineBusyPct(ms: number): Promise<number | null> {
  const before = machineBusyMs();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = machineBusyMs();
  return before === null || after === null ? null : ((after - before) / ms) * 100;
}
