// Starts `crossway wayland-filter` as a child process in front of a compositor, and stops it (tests, bench).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Compositor } from "./compositor.ts";
import { makePeerDirs } from "./compositor.ts";
import { parseLogLines, spawnCrossway } from "./crossway-stack.ts";
import { waitFor } from "./processes.ts";

/** Options of {@link startWaylandFilterProcess}. */
export interface WaylandFilterProcessOptions {
  /** --name; default "vm" unless the policy names the VM. */
  name?: string;
  /** A policy object, written to a file and passed as --policy. */
  policy?: Record<string, unknown>;
  /** CROSSWAY_LOG; default "info". */
  logLevel?: string;
  startTimeoutMs?: number;
}

/** A running filter process. */
export interface WaylandFilterProcess {
  /** The socket the VMM (or the emulated device) connects to. */
  socketPath: string;
  pid: number;
  running(): boolean;
  /** The filter's stderr parsed (pino JSON lines). */
  logRecords(): Record<string, unknown>[];
  /** Only the audit lines. */
  auditRecords(): Record<string, unknown>[];
  /** A compositor-like view of the filter, to put `crossway device --wayland` in front of it. */
  asCompositor(): Compositor;
  stop(): Promise<void>;
}

/** Starts the filter on DIR/filter.sock → `compositor`, waiting for its ready line. */
export async function startWaylandFilterProcess(
  compositor: Compositor,
  opts: WaylandFilterProcessOptions = {},
): Promise<WaylandFilterProcess> {
  const dirs = makePeerDirs("wlfilter");
  mkdirSync(dirs.base, { recursive: true });
  const socketPath = join(dirs.base, "filter.sock");
  const args = ["wayland-filter", "--listen", socketPath, "--upstream", compositor.socketPath];
  if (opts.policy !== undefined) {
    const file = join(dirs.base, "policy.json");
    writeFileSync(file, JSON.stringify(opts.policy));
    args.push("--policy", file);
  }
  if (opts.name !== undefined || opts.policy?.name === undefined) args.push("--name", opts.name ?? "vm");
  const env = { ...(process.env as Record<string, string>), CROSSWAY_LOG: opts.logLevel ?? "info" };
  const child = spawnCrossway("crossway wayland-filter", args, env, join(dirs.base, "filter.log"));
  try {
    await waitFor(
      "crossway wayland-filter's ready line",
      () => (child.stdout().includes("listening on") ? true : undefined),
      {
        timeoutMs: opts.startTimeoutMs ?? 30_000,
        abort: () => (child.proc.running ? undefined : "crossway wayland-filter exited"),
        explain: () => `filter stderr:\n${child.stderr().slice(-2000)}`,
      },
    );
  } catch (err) {
    await child.proc.stop();
    dirs.remove();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  const logRecords = (): Record<string, unknown>[] => parseLogLines(child.stderr());
  return {
    socketPath,
    pid: child.proc.pid,
    running: () => child.proc.running,
    logRecords,
    auditRecords: () => logRecords().filter((r) => r.audit === true),
    asCompositor: () => ({ ...compositor, socketPath }),
    stop(): Promise<void> {
      stopped ??= child.proc
        .stop()
        .then(() => child.keep())
        .finally(() => dirs.remove());
      return stopped;
    },
  };
}
