// Child processes for real test peers: a tracked spawn that always kills the whole process group, and `run`.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { CrosswayError } from "../errors.ts";

/** Environment variables as child_process takes them. */
export type Env = Record<string, string>;

/** Searches $PATH (and the sbin directories, which runuser/useradd live in) for an executable. */
export function findCommand(cmd: string): string | undefined {
  if (cmd.includes("/")) return isExecutable(cmd) ? cmd : undefined;
  const dirs = (process.env.PATH ?? "").split(delimiter).concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
  for (const dir of dirs) {
    if (dir === "") continue;
    const p = join(dir, cmd);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws CW_HARNESS_MISSING_PACKAGE naming the Debian package when `cmd` is not installed, so a test that needs a
 * missing tool fails with an actionable message instead of being skipped.
 */
export function requireCommand(cmd: string, debPackage: string): void {
  if (findCommand(cmd) === undefined) {
    throw new CrosswayError(
      "CW_HARNESS_MISSING_PACKAGE",
      `${cmd} not found: install Debian package '${debPackage}' (scripts/setup.sh installs everything)`,
    );
  }
}

/** Options of {@link run}. */
export interface RunOptions {
  env?: Env;
  /** Kills the process group (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
  input?: Buffer | string;
  cwd?: string;
}

/** What a finished command produced. `signal` is set when it was killed (e.g. by the timeout). */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  timedOut: boolean;
}

/** Runs a command to completion in its own process group, collecting its output; never throws for exit codes. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? (process.env as Env),
      cwd: opts.cwd,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGKILL");
    }, opts.timeoutMs ?? 30_000);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // Anything the command left behind in its group goes too: `run` never leaves processes.
      killGroup(child.pid, "SIGKILL");
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err), timedOut });
    });
    child.stdin.on("error", () => {
      // The command may exit without reading its input (EPIPE); its exit status tells the story.
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Like {@link run} but rejects (with stderr in the message) unless the command exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new CrosswayError(
      "CW_HARNESS_START",
      `${cmd} ${args.join(" ")} failed (code ${r.code}, signal ${r.signal}${r.timedOut ? ", timed out" : ""}): ${r.stderr.toString().trim().slice(0, 2000)}`,
    );
  }
  return r;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

/** A process identity that survives pid reuse: pid plus its start time (field 22 of /proc/PID/stat). */
export interface ProcessId {
  pid: number;
  startTime: string;
}

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses; the fields after its last ')' are fixed.
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The identity of a running process, or undefined if it is gone. */
export function processId(pid: number): ProcessId | undefined {
  const f = statFields(pid);
  // f[0] is field 3 (state), so field 22 (starttime) is f[19].
  if (f === undefined || f[19] === undefined) return undefined;
  return { pid, startTime: f[19] };
}

/** True while the process exists and is not a zombie (zombies re-parented to PID 1 may linger; they are dead). */
export function isAlive(id: ProcessId): boolean {
  const f = statFields(id.pid);
  if (f === undefined) return false;
  return f[0] !== "Z" && f[0] !== "X" && f[19] === id.startTime;
}

/**
 * All live descendants of `pid` (by walking /proc parent links), plus members of its process group that were
 * re-parented (sway double-forks swaybg, which then hangs off PID 1 but stays in sway's group).
 */
export function descendants(pid: number): ProcessId[] {
  const children = new Map<number, number[]>();
  const group: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = Number(name);
    const f = statFields(p);
    // f[1] is field 4 (ppid), f[2] field 5 (process group).
    if (f === undefined || f[1] === undefined) continue;
    const ppid = Number(f[1]);
    if (Number(f[2]) === pid && p !== pid) group.push(p);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [p]);
    else list.push(p);
  }
  const found = new Set<number>();
  const stack = [pid, ...group];
  for (const g of group) found.add(g);
  while (stack.length > 0) {
    const p = stack.pop() as number;
    for (const c of children.get(p) ?? []) {
      if (found.has(c) || c === pid) continue;
      found.add(c);
      stack.push(c);
    }
  }
  const out: ProcessId[] = [];
  for (const p of found) {
    const id = processId(p);
    if (id !== undefined) out.push(id);
  }
  return out;
}

/** Options of {@link spawnTracked}. */
export interface SpawnOptions {
  env?: Env;
  cwd?: string;
  /** An fd (e.g. an open log file) for stdout and stderr; default: ignored. */
  logFd?: number;
  /** Pipe stdout instead of sending it to the log (e.g. to read a printed address). */
  pipeStdout?: boolean;
  /** Pipe stderr instead of sending it to the log (e.g. to read a client's WAYLAND_DEBUG output as it runs). */
  pipeStderr?: boolean;
  /**
   * On stop, signal the descendants first and give the spawned process a moment to exit by itself. For wrappers
   * such as runuser, whose supervisor sleeps 2 s after it is signalled before it exits (util-linux su-common.c,
   * supervise_child), but exits at once when its child does.
   */
  stopChildrenFirst?: boolean;
}

/** A process started by {@link spawnTracked}: `stop()` kills its process group and every descendant. */
export class TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly name: string;
  /** Every process of this tree seen so far (refreshed on stop), to check by pid that none survives. */
  readonly seen = new Map<number, ProcessId>();
  private exitPromise: Promise<void>;
  /** Resolves on the child's "close": it exited and Node has closed the pipes of its stdio. */
  private closePromise: Promise<void>;
  private exited = false;
  private stopping: Promise<void> | undefined;

  private readonly childrenFirst: boolean;

  constructor(name: string, child: ChildProcess, childrenFirst = false) {
    this.childrenFirst = childrenFirst;
    // A failed spawn (ENOENT, EACCES) emits 'error' later; without a listener that would crash the process.
    child.on("error", () => {});
    if (child.pid === undefined) {
      throw new CrosswayError(
        "CW_HARNESS_START",
        `${name}: cannot spawn '${child.spawnfile}' (not installed?)`,
      );
    }
    this.name = name;
    this.child = child;
    this.pid = child.pid;
    const id = processId(this.pid);
    if (id !== undefined) this.seen.set(this.pid, id);
    this.exitPromise = new Promise((resolve) => {
      child.once("exit", () => {
        this.exited = true;
        resolve();
      });
    });
    this.closePromise = new Promise((resolve) => child.once("close", () => resolve()));
  }

  /** True until the direct child has exited. */
  get running(): boolean {
    return !this.exited;
  }

  /** Resolves when the direct child exits. */
  waitExit(): Promise<void> {
    return this.exitPromise;
  }

  /** Records the current descendants so that stop() can check them even after re-parenting. */
  snapshot(): void {
    if (!this.exited) for (const d of descendants(this.pid)) this.seen.set(d.pid, d);
  }

  /** The pids of this tree still alive (by pid + start time). */
  alive(): number[] {
    return [...this.seen.values()].filter(isAlive).map((p) => p.pid);
  }

  /**
   * SIGTERM to the group and every known descendant, SIGKILL after `graceMs`, then waits until no process of the
   * tree is alive. Idempotent. Rejects if a process survives SIGKILL for 5 s.
   */
  stop(graceMs = 2000): Promise<void> {
    this.stopping ??= this.doStop(graceMs);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    this.snapshot();
    const signalAll = (sig: NodeJS.Signals): void => {
      killGroup(this.pid, sig);
      for (const p of this.seen.values()) {
        if (!isAlive(p)) continue;
        try {
          process.kill(p.pid, sig);
        } catch {
          // Already gone.
        }
      }
    };
    if (this.childrenFirst) {
      for (const p of this.seen.values()) {
        if (p.pid === this.pid || !isAlive(p)) continue;
        try {
          process.kill(p.pid, "SIGTERM");
        } catch {
          // Already gone.
        }
      }
      const soft = Date.now() + Math.min(graceMs, 1000);
      while (Date.now() < soft && !this.exited) await sleep(10);
    }
    signalAll("SIGTERM");
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (this.alive().length > 0 || !this.exited)) await sleep(20);
    if (this.alive().length > 0 || !this.exited) signalAll("SIGKILL");
    const hard = Date.now() + 5000;
    while (this.alive().length > 0 || !this.exited) {
      if (Date.now() > hard) {
        throw new CrosswayError(
          "CW_HARNESS_START",
          `${this.name}: pids ${this.alive().join(",")} survived SIGKILL`,
        );
      }
      await sleep(20);
    }
    // The tree is dead, but the stdio pipes Node holds for it close a few loop turns later (end of stream, then the
    // handle's close): wait for them too, so a stopped process leaves no fd behind (the fd-leak check after a test
    // saw one under load). Bounded: a process that left the tree unseen could still hold a pipe's other end.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([this.closePromise, new Promise<void>((r) => (bound = setTimeout(r, 5000).unref()))]);
    clearTimeout(bound);
    live.delete(this);
  }
}

const live = new Set<TrackedProcess>();
let exitHookInstalled = false;

/**
 * Spawns `cmd` in a new process group, tracked so that it is killed on stop() and, as a last resort, when this
 * process exits. stdin is /dev/null.
 */
export function spawnTracked(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): TrackedProcess {
  const out = opts.pipeStdout === true ? "pipe" : (opts.logFd ?? "ignore");
  const child = spawn(cmd, args, {
    env: opts.env ?? (process.env as Env),
    cwd: opts.cwd,
    detached: true,
    stdio: ["ignore", out, opts.pipeStderr === true ? "pipe" : (opts.logFd ?? "ignore")],
  });
  const tp = new TrackedProcess(name, child, opts.stopChildrenFirst === true);
  live.add(tp);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", killAllTrackedNow);
  }
  return tp;
}

/**
 * SIGKILLs every tracked process tree now, synchronously (for exit and signal handlers, where nothing can be
 * awaited). Prefer TrackedProcess.stop().
 */
export function killAllTrackedNow(): void {
  for (const p of live) {
    p.snapshot();
    killGroup(p.pid, "SIGKILL");
    for (const d of p.seen.values()) {
      if (!isAlive(d)) continue;
      try {
        process.kill(d.pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
  }
}

/**
 * For command-line tools: on SIGINT/SIGTERM, kill every tracked process and exit 128+signal, so Ctrl-C never
 * leaves a compositor behind. Returns a function that removes the handlers.
 */
export function killTrackedOnSignals(): () => void {
  const handlers: [NodeJS.Signals, () => void][] = [
    ["SIGINT", () => exitOn(2)],
    ["SIGTERM", () => exitOn(15)],
  ];
  function exitOn(n: number): void {
    killAllTrackedNow();
    process.exit(128 + n);
  }
  for (const [sig, h] of handlers) process.once(sig, h);
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

/** Tracked processes not yet stopped (tests assert this is empty at the end). */
export function liveTracked(): readonly TrackedProcess[] {
  return [...live];
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined; rejects with `what` and the
 * optional `explain()` text after `timeoutMs`, or early when `abort()` says why waiting is pointless.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  opts: {
    timeoutMs?: number;
    intervalMs?: number;
    abort?: () => string | undefined;
    explain?: () => string;
  } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    const why = opts.abort?.();
    if (why !== undefined) throw new CrosswayError("CW_HARNESS_START", `${what}: ${why}${explainText(opts)}`);
    if (Date.now() > deadline) {
      throw new CrosswayError("CW_HARNESS_START", `timed out waiting for ${what}${explainText(opts)}`);
    }
    await sleep(opts.intervalMs ?? 20);
  }
}

function explainText(opts: { explain?: () => string }): string {
  const e = opts.explain?.();
  return e === undefined || e === "" ? "" : `\n${e}`;
}

/** The last `maxChars` of a log file, for error messages. */
export function logTail(path: string, maxChars = 2000): string {
  try {
    const s = readFileSync(path, "utf8");
    return s.length > maxChars ? s.slice(-maxChars) : s;
  } catch {
    return "";
  }
}
