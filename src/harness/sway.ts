// Starts headless sway (pixman) as the unprivileged user `wltest` in a private runtime dir; root clients connect.
import { execFileSync } from "node:child_process";
import { chownSync, closeSync, mkdirSync, openSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CrosswayError } from "../errors.ts";
import { type Compositor, clientEnv, makePeerDirs } from "./compositor.ts";
import { logTail, requireCommand, run, runOk, spawnTracked, waitFor } from "./processes.ts";
import { waitForWaylandRoundtrip } from "./wayland-ready.ts";

/** The unprivileged user sway runs as (sway refuses root: "Unable to drop root"); scripts/setup.sh creates it. */
export const SWAY_USER = "wltest";

/** Options of {@link startSway}. */
export interface SwayOptions {
  width?: number;
  height?: number;
  /** More sway.conf lines, appended after the harness's own (e.g. `for_window [app_id=x] floating enable`). */
  extraConfig?: string[];
}

function userIds(user: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new CrosswayError(
      "CW_HARNESS_START",
      `user '${user}' does not exist: run scripts/setup.sh (it runs 'useradd -m ${user}'; sway refuses to run as root)`,
    );
  }
}

/**
 * Starts sway with the headless backend and the pixman renderer; as root via `runuser -u wltest`, in a runtime dir
 * owned by wltest (mode 0700); as any other user directly. libwayland picks the socket name (the first free wayland-N), so it is detected.
 * Clients running as root reach it through DAC override. Xwayland is disabled so nothing starts lazily.
 */
export async function startSway(opts: SwayOptions = {}): Promise<Compositor> {
  requireCommand("sway", "sway");
  requireCommand("swaymsg", "sway");
  // Only root needs the detour through an unprivileged user; anyone else runs sway as themselves.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) requireCommand("runuser", "util-linux");
  const ids = asRoot ? userIds(SWAY_USER) : undefined;
  const dirs = makePeerDirs("sway");
  mkdirSync(dirs.runtimeDir, { mode: 0o700 });
  if (ids !== undefined) chownSync(dirs.runtimeDir, ids.uid, ids.gid);
  const width = opts.width ?? 800;
  const height = opts.height ?? 600;
  const configPath = join(dirs.base, "sway.conf");
  writeFileSync(
    configPath,
    [
      `output HEADLESS-1 resolution ${width}x${height} position 0,0 bg #000000 solid_color`,
      "default_border none",
      "default_floating_border none",
      "font pango:DejaVu Sans Mono 8",
      "xwayland disable",
      ...(opts.extraConfig ?? []),
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  const logPath = join(dirs.base, "sway.log");
  const swayEnv = [
    `XDG_RUNTIME_DIR=${dirs.runtimeDir}`,
    "WLR_BACKENDS=headless",
    "WLR_RENDERER=pixman",
    "WLR_LIBINPUT_NO_DEVICES=1",
    "WLR_HEADLESS_OUTPUTS=1",
    `HOME=${dirs.base}`,
    "LANG=C.UTF-8",
    `PATH=${process.env.PATH ?? "/usr/bin:/bin"}`,
  ];
  const logFd = openSync(logPath, "a");
  let proc: ReturnType<typeof spawnTracked>;
  try {
    const sway = ["env", "-i", ...swayEnv, "sway", "-c", configPath, "-d"];
    proc = asRoot
      ? spawnTracked("sway", "runuser", ["-u", SWAY_USER, "--", ...sway], { logFd, stopChildrenFirst: true })
      : spawnTracked("sway", sway[0] as string, sway.slice(1), { logFd });
  } finally {
    closeSync(logFd);
  }
  let displayName: string;
  try {
    displayName = await waitFor(
      "sway's wayland socket",
      () => readdirSync(dirs.runtimeDir).find((f) => /^wayland-\d+$/.test(f)),
      {
        abort: () => (proc.running ? undefined : "sway exited"),
        explain: () => `sway log ${logPath}:\n${logTail(logPath)}`,
      },
    );
  } catch (err) {
    await proc.stop();
    dirs.remove();
    throw err;
  }
  let ipcSocket: string;
  try {
    // sway's IPC socket (sway-ipc.UID.PID.sock) lets tests drive it with swaymsg; it is made right after the
    // Wayland socket.
    ipcSocket = await waitFor(
      "sway's IPC socket",
      () => readdirSync(dirs.runtimeDir).find((f) => /^sway-ipc\..*\.sock$/.test(f)),
      { abort: () => (proc.running ? undefined : "sway exited"), explain: () => logTail(logPath) },
    );
  } catch (err) {
    await proc.stop();
    dirs.remove();
    throw err;
  }
  try {
    // The sockets exist before sway dispatches: readiness is a Wayland round trip and an IPC answer.
    await waitForWaylandRoundtrip("sway to answer a wl_display.sync", join(dirs.runtimeDir, displayName), {
      abort: () => (proc.running ? undefined : "sway exited"),
      explain: () => `sway log ${logPath}:\n${logTail(logPath)}`,
    });
    const ipcEnv = clientEnv({
      XDG_RUNTIME_DIR: dirs.runtimeDir,
      SWAYSOCK: join(dirs.runtimeDir, ipcSocket),
    });
    await waitFor(
      "sway's IPC to answer get_version",
      async () =>
        (await run("swaymsg", ["-t", "get_version"], { env: ipcEnv })).code === 0 ? true : undefined,
      {
        timeoutMs: 30_000,
        abort: () => (proc.running ? undefined : "sway exited"),
        explain: () => `sway log ${logPath}:\n${logTail(logPath)}`,
      },
    );
  } catch (err) {
    await proc.stop();
    dirs.remove();
    throw err;
  }
  // sway (and swaybg) now exist: remember them so stop() can check each pid even after re-parenting.
  proc.snapshot();
  const env = clientEnv({
    XDG_RUNTIME_DIR: dirs.runtimeDir,
    WAYLAND_DISPLAY: displayName,
    SWAYSOCK: join(dirs.runtimeDir, ipcSocket),
  });
  let stopped: Promise<void> | undefined;
  return {
    kind: "sway",
    runtimeDir: dirs.runtimeDir,
    socketPath: join(dirs.runtimeDir, displayName),
    displayName,
    env,
    pid: proc.pid,
    logPath,
    async screenshot(pngPath: string): Promise<void> {
      requireCommand("grim", "grim");
      await runOk("grim", [pngPath], { env, timeoutMs: 60_000 });
    },
    stop(): Promise<void> {
      stopped ??= proc.stop().finally(() => dirs.remove());
      return stopped;
    },
  };
}
