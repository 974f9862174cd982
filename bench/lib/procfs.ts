// Reads CPU time and memory of proxy process trees from /proc (proc(5): stat, task/*/schedstat, status, smaps_rollup).
import { readdirSync, readFileSync } from "node:fs";

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat. 100 on every Linux architecture we run on (proc(5)). */
export const CLOCK_TICKS_PER_SECOND = 100;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return undefined; // the process exited between listing and reading: it simply no longer counts
  }
}

/**
 * Fields of /proc/<pid>/stat after the command name, which may itself contain spaces and parentheses, so the
 * split starts after the last ')'. Index 0 is field 3 (state).
 */
function statFields(pid: number): string[] | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  const close = text.lastIndexOf(")");
  return text.slice(close + 2).split(" ");
}

/** All live descendants of `roots` (and the roots), found through the ppid field of /proc/<pid>/stat. */
export function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const f = statFields(pid);
    const ppid = f === undefined ? Number.NaN : Number(f[1]);
    if (!Number.isInteger(ppid)) continue;
    let list = children.get(ppid);
    if (list === undefined) {
      list = [];
      children.set(ppid, list);
    }
    list.push(pid);
  }
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    if (readText(`/proc/${pid}/stat`) === undefined) continue;
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out.sort((a, b) => a - b);
}

/** CPU time of a set of processes at one instant. */
export interface CpuSample {
  /** The processes sampled (sorted). */
  pids: number[];
  /** utime+stime+cutime+cstime over `pids`, in clock ticks (includes reaped children, 10 ms resolution). */
  ticks: number;
  /** Sum of the first field of /proc/<pid>/task/<tid>/schedstat over all live threads: ns, exact. */
  schedNs: number;
}

/** Samples the CPU time of every process in the trees under `roots`. */
export function sampleCpu(roots: readonly number[]): CpuSample {
  const pids = processTree(roots);
  let ticks = 0;
  let schedNs = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f === undefined) continue;
    // proc(5): utime(14) stime(15) cutime(16) cstime(17), i.e. indices 11..14 after the state field (3).
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    for (const tid of threadsOf(pid)) {
      const s = readText(`/proc/${pid}/task/${tid}/schedstat`);
      if (s !== undefined) schedNs += Number(s.split(" ")[0]);
    }
  }
  return { pids, ticks, schedNs };
}

/**
 * CPU time spent between two samples, in ns. The exact per-thread figure is used when the same processes were
 * alive at both instants; otherwise (per-connection forks, as waypipe does) the tick-based one, which also counts
 * children that exited and were reaped in between.
 */
export function cpuDeltaNs(before: CpuSample, after: CpuSample): { ns: number; exact: boolean } {
  const same = before.pids.length === after.pids.length && before.pids.every((p, i) => p === after.pids[i]);
  if (same) return { ns: after.schedNs - before.schedNs, exact: true };
  return { ns: ((after.ticks - before.ticks) * 1e9) / CLOCK_TICKS_PER_SECOND, exact: false };
}

/** Resident memory of a set of processes at one instant, in KiB. */
export interface MemorySample {
  pids: number[];
  /** Sum of VmRSS (shared pages counted once per process). */
  rssKiB: number;
  /** Sum of Pss from smaps_rollup (shared pages divided among their users): fair for forking proxies. */
  pssKiB: number;
}

function kibField(text: string | undefined, field: string): number {
  if (text === undefined) return 0;
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return m === null ? 0 : Number(m[1]);
}

/** Samples VmRSS and Pss of every process in the trees under `roots`. */
export function sampleMemory(roots: readonly number[]): MemorySample {
  const pids = processTree(roots);
  let rssKiB = 0;
  let pssKiB = 0;
  for (const pid of pids) {
    rssKiB += kibField(readText(`/proc/${pid}/status`), "VmRSS");
    pssKiB += kibField(readText(`/proc/${pid}/smaps_rollup`), "Pss");
  }
  return { pids, rssKiB, pssKiB };
}

/** The thread ids of a process (/proc/PID/task), the process's own id first; none if it is gone. */
export function threadsOf(pid: number): number[] {
  try {
    const tids = readdirSync(`/proc/${pid}/task`).map(Number);
    return [pid, ...tids.filter((t) => t !== pid)];
  } catch {
    return [];
  }
}

/** The CPUs a process may run on (Cpus_allowed_list of /proc/<pid>/status), e.g. "0" when pinned or "0-1". */
export function cpusAllowed(pid: number): string {
  return /^Cpus_allowed_list:\s*(\S+)/m.exec(readText(`/proc/${pid}/status`) ?? "")?.[1] ?? "?";
}

/** True while `pid` exists and is neither a zombie nor dead. */
export function isRunning(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== "Z" && state !== "X";
}
