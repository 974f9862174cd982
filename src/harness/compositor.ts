// The shape of a running test compositor (weston or sway) and the private directories peers run in.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Env } from "./processes.ts";

/** A running headless compositor in its own runtime dir. Clients run with `env`. */
export interface Compositor {
  kind: "weston" | "sway";
  /** The private XDG_RUNTIME_DIR (mode 0700) the compositor's socket lives in. */
  runtimeDir: string;
  /** Absolute path of the Wayland socket. */
  socketPath: string;
  /** The socket's name in runtimeDir: what WAYLAND_DISPLAY holds. */
  displayName: string;
  /** XDG_RUNTIME_DIR and WAYLAND_DISPLAY for clients, plus PATH, HOME and a UTF-8 locale (sway: also SWAYSOCK). */
  env: Record<string, string>;
  /** The compositor's pid (for sway started by root: the runuser process whose child is sway). */
  pid: number;
  /** stdout+stderr of the compositor. Removed by stop() unless CROSSWAY_KEEP_PEER_DIRS=1. */
  logPath: string;
  /** Writes a PNG of the whole output (grim for sway, weston-screenshooter for weston). */
  screenshot(pngPath: string): Promise<void>;
  /** Kills the compositor and everything it started, checks by pid that nothing is left. Idempotent. */
  stop(): Promise<void>;
}

/** A scratch directory for one peer: `base` holds logs and config, `runtimeDir` (0700) its sockets. */
export interface PeerDirs {
  base: string;
  runtimeDir: string;
  /** Removes everything unless CROSSWAY_KEEP_PEER_DIRS=1 (then prints nothing; the paths are in the logs). */
  remove(): void;
}

/** Peer directories not removed yet, so that an interrupted run still cleans up (see removeLeftoverPeerDirs). */
const liveDirs = new Set<string>();
let exitHookInstalled = false;

/** Makes a fresh private directory pair under the system temp dir. */
export function makePeerDirs(kind: string): PeerDirs {
  const base = mkdtempSync(join(tmpdir(), `crossway-${kind}-`));
  // Traversable by an unprivileged compositor user (sway runs as wltest); the runtime dir itself stays private.
  chmodSync(base, 0o755);
  const runtimeDir = join(base, "xdg");
  liveDirs.add(base);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", removeLeftoverPeerDirs);
  }
  return {
    base,
    runtimeDir,
    remove: () => {
      liveDirs.delete(base);
      if (process.env.CROSSWAY_KEEP_PEER_DIRS === "1") return;
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * Removes the directories of peers that were never stopped (call after their processes are gone: the test guard
 * and the exit hook do). Honours CROSSWAY_KEEP_PEER_DIRS=1.
 */
export function removeLeftoverPeerDirs(): void {
  for (const base of liveDirs) {
    liveDirs.delete(base);
    if (process.env.CROSSWAY_KEEP_PEER_DIRS !== "1") rmSync(base, { recursive: true, force: true });
  }
}

/** The environment a client of a peer gets: a minimal, predictable one plus the given variables. */
export function clientEnv(extra: Env): Env {
  const env: Env = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    LANG: "C.UTF-8",
  };
  for (const k of ["TMPDIR", "CROSSWAY_LOG"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** The pid of the compositor process itself (startSway's pid is runuser's when the tests run as root). */
export function compositorPid(c: Compositor): number {
  const comm = (pid: number): string => readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  if (comm(c.pid) === c.kind) return c.pid;
  const children = readFileSync(`/proc/${c.pid}/task/${c.pid}/children`, "utf8").trim().split(/\s+/);
  const pid = children.map(Number).find((p) => comm(p) === c.kind);
  if (pid === undefined) throw new Error(`no ${c.kind} process under ${c.pid}`);
  return pid;
}
