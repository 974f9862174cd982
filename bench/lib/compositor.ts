// The compositor every path is measured against: the test harness's headless weston (pixman) with a 1080p output.
import { startWeston } from "../../test/helpers/weston.ts";
import { type Env, pinRunning } from "./processes.ts";
import { isRunning, processTree } from "./procfs.ts";

/** A running compositor: clients get `env` plus WAYLAND_DISPLAY. */
export interface BenchCompositor {
  /** Absolute path of the Wayland socket. */
  readonly socketPath: string;
  /** XDG_RUNTIME_DIR and friends, without WAYLAND_DISPLAY (each path sets its own). */
  readonly env: Env;
  readonly pid: number;
  readonly logPath: string;
  running(): boolean;
  stop(): Promise<void>;
}

/**
 * Starts weston through the test harness (headless backend, `--use-pixman`: the default no-op renderer costs
 * ~18 ms per 1080p commit and would hide every proxy cost, issue 7). The output is 1080p so the 1080p toplevel
 * is on screen. When pinned, weston and the clients it launched itself (desktop-shell) are moved to CPU 0
 * with all their threads; anything they start later inherits that.
 */
export async function startCompositor(pinned: boolean): Promise<BenchCompositor> {
  const w = await startWeston({ width: 1920, height: 1080 });
  try {
    if (pinned) for (const pid of processTree([w.pid])) await pinRunning(pid);
  } catch (err) {
    await w.stop();
    throw err;
  }
  const { WAYLAND_DISPLAY: _display, ...env } = w.env;
  return {
    socketPath: w.socketPath,
    env,
    pid: w.pid,
    logPath: w.logPath,
    running: () => isRunning(w.pid),
    stop: () => w.stop(),
  };
}
