// Starts `crossway device` + `crossway guest` as child processes in front of a compositor, and stops them (tests, demo).
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Compositor, clientEnv, makePeerDirs } from "./compositor.ts";
import { spawnTracked, type TrackedProcess, waitFor } from "./processes.ts";

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

/** Options of {@link startCrosswayStack}. */
export interface CrosswayStackOptions {
  /** CROSSWAY_LOG for both processes; default "info" so tests can assert on session log lines. */
  logLevel?: string;
  /** Extra arguments for `crossway guest` (e.g. ["--config", FILE] or ["--title-prefix", "[vm] "]). */
  guestArgs?: readonly string[];
  /** Extra arguments for `crossway device` (e.g. ["--flavor", "libkrun"]). */
  deviceArgs?: readonly string[];
  /** Extra environment for both processes. */
  env?: Record<string, string>;
  /** How long each process may take to print its ready line; default 30 s (tsx start-up on a busy machine). */
  startTimeoutMs?: number;
}

/** A running device + guest pair. */
export interface CrosswayStack {
  /** Absolute path of the guest Wayland socket. */
  socketPath: string;
  /** The emulated device's socket (what a guest kernel's virtio-gpu would reach). */
  deviceSocketPath: string;
  /** Environment for clients of the guest: XDG_RUNTIME_DIR, WAYLAND_DISPLAY (absolute path), PATH, HOME, LANG. */
  env: Record<string, string>;
  guestPid: number;
  devicePid: number;
  /** The guest's stderr so far (pino JSON lines). */
  guestLog(): string;
  /** The guest's stdout so far (its ready line, reload outcomes). */
  guestOutput(): string;
  /** The device's stderr so far (pino JSON lines). */
  deviceLog(): string;
  /** The guest's stderr parsed: one object per JSON line (non-JSON lines are skipped). */
  guestLogRecords(): Record<string, unknown>[];
  /**
   * Resolves once the guest's stderr contains `text`. The guest logs asynchronously: a line can land after what a
   * client saw of the same event, so a check of the log waits for it rather than reading it once.
   */
  waitForGuestLog(text: string, timeoutMs?: number): Promise<void>;
  /** True while the guest process has not exited. */
  guestRunning(): boolean;
  /** True while the device process has not exited. */
  deviceRunning(): boolean;
  /** SIGTERMs guest then device (SIGKILL after a grace period), waits until both are gone. Idempotent. */
  stop(): Promise<void>;
}

/** One tracked child: stdout piped (for the ready line), stderr (the pino log) appended to a file. */
export interface Child {
  proc: TrackedProcess;
  stdout: () => string;
  stderr: () => string;
  /** Snapshots the log into memory, so it stays readable after the scratch directory is removed. */
  keep: () => void;
}

/** Spawns `crossway ARGS` in its own process group, stderr appended to `logPath`, stdout kept for ready lines. */
export function spawnCrossway(
  name: string,
  args: readonly string[],
  env: Record<string, string>,
  logPath: string,
): Child {
  // spawnTracked sends stderr to logFd; a file (not a pipe) also keeps a flood of log lines from ever blocking
  // the child on a full pipe while the test is busy.
  const logFd = openSync(logPath, "a");
  let proc: TrackedProcess;
  try {
    proc = spawnTracked(name, process.execPath, [BIN, ...args], { env, logFd, pipeStdout: true });
  } finally {
    closeSync(logFd);
  }
  let out = "";
  proc.child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  let kept: string | undefined;
  const stderr = (): string => kept ?? readText(logPath);
  return {
    proc,
    stdout: () => out,
    stderr,
    keep: () => {
      kept = readText(logPath);
    },
  };
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * Starts `crossway device --listen DIR/dev.sock --wayland <compositor socket>` and `crossway guest --device
 * emulated:DIR/dev.sock --socket DIR/xdg/wayland-crossway`, waiting for each one's ready line on stdout. Both run
 * in their own process group and are killed by stop() (and, as a last resort, when the test process exits).
 */
export async function startCrosswayStack(
  compositor: Compositor,
  opts: CrosswayStackOptions = {},
): Promise<CrosswayStack> {
  const dirs = makePeerDirs("stack");
  mkdirSync(dirs.runtimeDir, { mode: 0o700 });
  const devSock = join(dirs.base, "dev.sock");
  const socketPath = join(dirs.runtimeDir, "wayland-crossway");
  const env = {
    ...(process.env as Record<string, string>),
    CROSSWAY_LOG: opts.logLevel ?? "info",
    ...(opts.env ?? {}),
  };
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const started: Child[] = [];
  const stopAll = async (): Promise<void> => {
    // Guest first, so its sessions end before the device goes (keeps the device log free of spurious errors).
    for (const c of [...started].reverse()) {
      await c.proc.stop();
      c.keep();
    }
  };
  try {
    const device = spawnCrossway(
      "crossway device",
      ["device", "--listen", devSock, "--wayland", compositor.socketPath, ...(opts.deviceArgs ?? [])],
      env,
      join(dirs.base, "device.log"),
    );
    started.push(device);
    await waitFor(
      "crossway device's ready line",
      () => (device.stdout().includes("listening on") ? true : undefined),
      {
        timeoutMs,
        abort: () => (device.proc.running ? undefined : "crossway device exited"),
        explain: () => `device stderr:\n${device.stderr().slice(-2000)}`,
      },
    );
    const guest = spawnCrossway(
      "crossway guest",
      ["guest", "--device", `emulated:${devSock}`, "--socket", socketPath, ...(opts.guestArgs ?? [])],
      env,
      join(dirs.base, "guest.log"),
    );
    started.push(guest);
    await waitFor(
      "crossway guest's ready line",
      () => (guest.stdout().includes("listening on") ? true : undefined),
      {
        timeoutMs,
        abort: () => (guest.proc.running ? undefined : "crossway guest exited"),
        explain: () => `guest stderr:\n${guest.stderr().slice(-2000)}`,
      },
    );
    let stopped: Promise<void> | undefined;
    return {
      socketPath,
      deviceSocketPath: devSock,
      env: clientEnv({ XDG_RUNTIME_DIR: dirs.runtimeDir, WAYLAND_DISPLAY: socketPath }),
      guestPid: guest.proc.pid,
      devicePid: device.proc.pid,
      guestLog: guest.stderr,
      guestOutput: guest.stdout,
      deviceLog: device.stderr,
      guestLogRecords: () => parseLogLines(guest.stderr()),
      waitForGuestLog: async (text, ms = 30_000) => {
        await waitFor(
          `the guest's log line "${text}"`,
          () => (guest.stderr().includes(text) ? true : undefined),
          {
            timeoutMs: ms,
            abort: () => (guest.proc.running ? undefined : "crossway guest exited"),
            explain: () => `guest stderr:\n${guest.stderr().slice(-2000)}`,
          },
        );
      },
      guestRunning: () => guest.proc.running,
      deviceRunning: () => device.proc.running,
      stop(): Promise<void> {
        stopped ??= stopAll().finally(() => dirs.remove());
        return stopped;
      },
    };
  } catch (err) {
    await stopAll();
    dirs.remove();
    throw err;
  }
}

/** Parses pino's JSON lines; anything else (a stack trace printed by node) is skipped. */
export function parseLogLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line cut by a still-running write: the next read completes it.
    }
  }
  return out;
}
