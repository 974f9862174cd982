// The compositor every path is measured against: headless weston with the pixman renderer and a 1080p output.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Env, type PeerProcess, requireCommand, spawnPeer, waitForPath } from "./processes.ts";

/** A running compositor: clients get `env` plus WAYLAND_DISPLAY. */
export interface BenchCompositor {
  readonly socketPath: string;
  readonly runtimeDir: string;
  readonly env: Env;
  readonly pid: number;
  readonly peer: PeerProcess;
  stop(): Promise<void>;
}

/**
 * Starts weston in `workDir` (its own XDG_RUNTIME_DIR). `--use-pixman` matters: the headless backend's default
 * no-op renderer costs ~18 ms per 1080p commit and would hide every proxy cost (issue 7). The output is 1080p so
 * the 1080p toplevel is fully on screen. The socket is usable about 65 ms after start (environment.md §2.1).
 */
export async function startCompositor(workDir: string, pinned: boolean): Promise<BenchCompositor> {
  requireCommand("weston", "weston");
  const runtimeDir = join(workDir, "xdg");
  mkdirSync(runtimeDir, { mode: 0o700, recursive: true });
  const socketName = "wayland-bench";
  const socketPath = join(runtimeDir, socketName);
  const env: Env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    LANG: "C.UTF-8",
    XDG_RUNTIME_DIR: runtimeDir,
  };
  const peer = spawnPeer(
    "weston",
    "weston",
    [
      "--backend=headless-backend.so",
      "--use-pixman",
      `--socket=${socketName}`,
      "--width=1920",
      "--height=1080",
      "--idle-time=0",
    ],
    { env, pinned, logPath: join(workDir, "weston.log") },
  );
  try {
    await waitForPath(socketPath, peer);
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return { socketPath, runtimeDir, env, pid: peer.pid, peer, stop: () => peer.stop() };
}
