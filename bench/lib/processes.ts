// Long-running peers of a benchmark (compositor, proxies): spawned in their own process group, optionally pinned.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, statSync } from "node:fs";
import { basename, delimiter, join } from "node:path";
import { CrosswayError } from "../../src/errors.ts";
import { processTree } from "./procfs.ts";

/** Environment variables as child_process takes them. */
export type Env = Record<string, string>;

/** The CPU every process is pinned to in the "pinned" placement. */
export const PINNED_CPU = "0";

/** Searches $PATH for an executable. */
export function findCommand(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** Throws CW_HARNESS_MISSING_PACKAGE naming the Debian package when `cmd` is not installed. */
export function requireCommand(cmd: string, debPackage: string): void {
  if (findCommand(cmd) === undefined) {
    throw new CrosswayError(
      "CW_HARNESS_MISSING_PACKAGE",
      `${cmd} not found: install Debian package '${debPackage}' (scripts/setup.sh installs everything)`,
    );
  }
}

/** `cmd args` or, when pinned, `taskset -c 0 cmd args` (taskset execs, so the pid is the command's own). */
export function pinnedCommand(pinned: boolean, cmd: string, args: readonly string[]): [string, string[]] {
  return pinned ? ["taskset", ["-c", PINNED_CPU, cmd, ...args]] : [cmd, [...args]];
}

let reaper: string | undefined;

/**
 * Starts every later peer under `reapBin` (bench/clients/reap.c), a child subreaper, so the grandchildren it
 * orphans when stopped are reaped instead of piling up as zombies of PID 1.
 */
export function useReaper(reapBin: string): void {
  reaper = reapBin;
}

/** A running peer whose output goes to a log file. */
export interface PeerProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** True until the process has exited. */
  running(): boolean;
  /** Resolves with the exit code (or null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM to the group; after 3 s SIGKILL to the descendants, then to the peer itself. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link spawnPeer}. */
export interface SpawnPeerOptions {
  env: Env;
  pinned: boolean;
  logPath: string;
  cwd?: string;
}

/**
 * Spawns `cmd args` in its own process group with stdout and stderr appended to `logPath`, under the subreaper
 * when {@link useReaper} was called (then `pid` is the reaper's; the command is its only child).
 */
export function spawnPeer(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnPeerOptions,
): PeerProcess {
  const [file, argv] =
    reaper === undefined
      ? pinnedCommand(opts.pinned, cmd, args)
      : pinnedCommand(opts.pinned, reaper, [cmd, ...args]);
  const logFd = openSync(opts.logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(file, argv, {
      env: opts.env,
      cwd: opts.cwd,
      detached: true,
      stdio: ["ignore", logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  if (child.pid === undefined) {
    throw new CrosswayError("CW_HARNESS_START", `${name}: could not spawn ${file}`);
  }
  const pid = child.pid;
  let alive = true;
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => {
      alive = false;
      resolve(code);
    });
    child.on("error", () => {
      alive = false;
      resolve(null);
    });
  });
  let stopping: Promise<void> | undefined;
  const wait = (ms: number): Promise<void> =>
    Promise.race([exited.then(() => {}), new Promise<void>((r) => setTimeout(r, ms).unref())]);
  const stop = async (): Promise<void> => {
    killGroup(pid, "SIGTERM");
    await wait(3000);
    if (alive) {
      // Descendants first, so the reaper (or the peer) can still reap them, then the peer itself.
      for (const p of processTree([pid])) if (p !== pid) killPid(p);
      await wait(1000);
      if (alive) killGroup(pid, "SIGKILL");
      await exited;
    }
  };
  return {
    name,
    pid,
    logPath: opts.logPath,
    running: () => alive,
    exited,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {}
}

/** The last lines of a log file, for error messages. */
export function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A socket file name unique on this machine (`<random>-<suffix>`), so {@link isListening} can match by name. */
export function uniqueName(suffix: string): string {
  return `${randomBytes(4).toString("hex")}-${suffix}`;
}

/** True when a Unix socket bound to `path` is listening (flag __SO_ACCEPTCON in /proc/net/unix). */
export function isListening(path: string): boolean {
  const name = basename(path);
  let table: string;
  try {
    table = readFileSync("/proc/net/unix", "latin1");
  } catch {
    return existsSync(path);
  }
  for (const line of table.split("\n")) {
    // "Num RefCount Protocol Flags Type St Inode Path"; a path may not contain spaces here (ours never do).
    // waypipe binds after chdir to the socket's directory, so the table shows only the name: callers make
    // names unique (see uniqueName).
    const f = line.trim().split(/\s+/);
    if ((f[7] === path || f[7] === name) && f[3] === "00010000") return true;
  }
  return false;
}

/**
 * Waits until a socket at `path` is listening: the file appears at bind(), before listen(), and a client
 * connecting in between gets ECONNREFUSED (seen with waypipe server). Fails early when `peer` exits, with the
 * tail of its log.
 */
export async function waitForPath(path: string, peer: PeerProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!isListening(path)) {
    if (!peer.running()) {
      throw new CrosswayError(
        "CW_HARNESS_START",
        `${peer.name} exited before listening on ${path}; log ${peer.logPath}:\n${logTail(peer.logPath)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new CrosswayError(
        "CW_HARNESS_START",
        `${peer.name} did not listen on ${path} within ${timeoutMs} ms; log ${peer.logPath}:\n${logTail(peer.logPath)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Pins every thread of a running process to CPU 0 (`taskset -a -p`); its later threads and children inherit it. */
export async function pinRunning(pid: number): Promise<void> {
  const child = spawn("taskset", ["-a", "-p", "-c", PINNED_CPU, String(pid)], { stdio: "ignore" });
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  if (code !== 0)
    throw new CrosswayError("CW_BENCH_FAILED", `taskset -a -p -c ${PINNED_CPU} ${pid} exited ${code}`);
}

/**
 * The last warning-or-worse line of a proxy log, compacted: for JSON (pino) lines its detail, reason or msg.
 * Used to say why a client failed when the client itself only saw a closed socket; `fromByte` skips what
 * was logged before that client ran.
 */
export function lastLogComplaint(path: string, fromByte = 0): string | undefined {
  let text: string;
  try {
    text = readFileSync(path).subarray(fromByte).toString("utf8");
  } catch {
    return undefined;
  }
  const lines = text.trimEnd().split("\n").reverse();
  for (const line of lines) {
    if (line.startsWith("{")) {
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        if (typeof j.level === "number" && j.level < 40) continue;
        const what = j.detail ?? j.reason ?? j.err ?? j.msg;
        return typeof what === "string" ? what : JSON.stringify(what);
      } catch {
        continue;
      }
    }
    if (/error|fail|warn/i.test(line)) return line.trim();
  }
  return undefined;
}

/** Current size of a file (0 if missing): where a later {@link lastLogComplaint} starts. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
