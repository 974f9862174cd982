// Starts headless weston (pixman renderer, debug protocols for screenshots) in a private runtime dir.
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CrosswayError } from "../errors.ts";
import { type Compositor, clientEnv, makePeerDirs } from "./compositor.ts";
import { logTail, requireCommand, runOk, spawnTracked, type TrackedProcess } from "./processes.ts";
import { waitForWaylandRoundtrip } from "./wayland-ready.ts";

/** Options of {@link startWeston}. */
export interface WestonOptions {
  width?: number;
  height?: number;
  extraArgs?: string[];
}

/**
 * Starts `weston --backend=headless-backend.so --use-pixman --debug --idle-time=0` as the current user (root is
 * fine for weston). Weston's headless backend has no wl_seat: clients that need one (foot, wl-clipboard) need sway.
 * Newer weston spells the backend `headless` and the renderer `--renderer=pixman`: that form is tried when the
 * first one is rejected (environment.md: weston 10 rejects `--backend=headless`).
 */
export async function startWeston(opts: WestonOptions = {}): Promise<Compositor> {
  requireCommand("weston", "weston");
  const dirs = makePeerDirs("weston");
  mkdirSync(dirs.runtimeDir, { mode: 0o700 });
  const displayName = "wayland-0";
  const socketPath = join(dirs.runtimeDir, displayName);
  const logPath = join(dirs.base, "weston.log");
  const common = [
    `--socket=${displayName}`,
    `--width=${opts.width ?? 1024}`,
    `--height=${opts.height ?? 768}`,
    "--idle-time=0",
    "--debug",
    ...(opts.extraArgs ?? []),
  ];
  const variants = [
    ["--backend=headless-backend.so", "--use-pixman"],
    ["--backend=headless", "--renderer=pixman"],
  ];
  const env = clientEnv({ XDG_RUNTIME_DIR: dirs.runtimeDir });
  let proc: TrackedProcess | undefined;
  let lastError: unknown;
  for (const variant of variants) {
    const logFd = openSync(logPath, "a");
    try {
      proc = spawnTracked("weston", "weston", [...variant, ...common], { env, logFd });
    } finally {
      closeSync(logFd);
    }
    const p = proc;
    try {
      // A round trip, not the socket: weston 10 creates its socket before loading its backend and shell, and only
      // then rejects an unknown option and exits.
      await waitForWaylandRoundtrip("weston to answer a wl_display.sync", socketPath, {
        abort: () => (p.running ? undefined : "weston exited"),
        explain: () => `weston log ${logPath}:\n${logTail(logPath)}`,
      });
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err;
      await p.stop();
      proc = undefined;
      // Only an unknown option/backend is worth another spelling; anything else is reported as it is.
      if (!/unknown backend|unhandled option|unrecognized option|unknown option/i.test(logTail(logPath)))
        break;
    }
  }
  if (proc === undefined) {
    dirs.remove();
    throw lastError instanceof Error
      ? lastError
      : new CrosswayError("CW_HARNESS_START", "weston did not start");
  }
  const tracked = proc;
  const clientVars = { ...env, WAYLAND_DISPLAY: displayName };
  let stopped: Promise<void> | undefined;
  return {
    kind: "weston",
    runtimeDir: dirs.runtimeDir,
    socketPath,
    displayName,
    env: clientVars,
    pid: tracked.pid,
    logPath,
    async screenshot(pngPath: string): Promise<void> {
      requireCommand("weston-screenshooter", "weston");
      // weston-screenshooter writes wayland-screenshot-<date>.png into its working directory (weston 10), or into
      // $XDG_PICTURES_DIR when set (newer weston: clients/screenshot.c, file_create_dated): both point at outDir.
      const outDir = join(dirs.base, `shot-${Date.now()}`);
      mkdirSync(outDir);
      await runOk("weston-screenshooter", [], {
        env: { ...clientVars, XDG_PICTURES_DIR: outDir },
        cwd: outDir,
        timeoutMs: 60_000,
      });
      const png = readdirSync(outDir).find((f) => f.endsWith(".png"));
      if (png === undefined) throw new CrosswayError("CW_HARNESS_START", "weston-screenshooter wrote no PNG");
      copyFileSync(join(outDir, png), pngPath);
      rmSync(outDir, { recursive: true, force: true });
    },
    stop(): Promise<void> {
      stopped ??= tracked.stop().finally(() => dirs.remove());
      return stopped;
    },
  };
}
