// The interface every measured path implements: direct, waypipe, and the crossway hooks.
import type { ClientBinaries } from "../lib/build.ts";
import type { Env } from "../lib/processes.ts";

/** What a path needs to start: where the compositor is and where to put its sockets and logs. */
export interface PathContext {
  /** Absolute path of the compositor's Wayland socket. */
  readonly compositorSocket: string;
  /** The compositor's client environment (XDG_RUNTIME_DIR etc., without WAYLAND_DISPLAY). */
  readonly env: Env;
  /** A private scratch directory for this path's sockets and logs. */
  readonly workDir: string;
  /** Pin every process this path starts to CPU 0. */
  readonly pinned: boolean;
  /** The repository root (for bin/crossway.js). */
  readonly repoRoot: string;
  /** The compiled benchmark programs (the relay path runs one of them). */
  readonly bins: ClientBinaries;
  /** When set, Node-based proxies run with --cpu-prof and write their profiles here (`--profile`). */
  readonly profileDir?: string;
}

/** A started path: clients connect with WAYLAND_DISPLAY=`display` (an absolute socket path). */
export interface RunningPath {
  readonly display: string;
  /** Root pids of the proxy processes (their whole trees are measured); empty for the direct path. */
  readonly proxyPids: readonly number[];
  /**
   * Of those, the processes that would run inside the VM next to the app (crossway guest; waypipe's server side,
   * which the app connects to), so a reader sees what the guest pays apart from the host side (the device stands
   * for the VMM, native code in reality). Absent: the path has no guest side (direct, relay).
   */
  readonly guestSidePids?: readonly number[];
  /** Returns a reason when a proxy has died (the run then marks this path failed), else undefined. */
  health(): string | undefined;
  /** The proxies' log files, so a client failure can be explained by the proxy's own last words. */
  readonly logPaths: readonly string[];
  stop(): Promise<void>;
}

/** One way for a client to reach the compositor. */
export interface BenchPath {
  /** Short stable id used in JSON and on the command line (`--paths`). */
  readonly id: string;
  /** Human-readable name for tables. */
  readonly label: string;
  /** The benchmark ids this path can run (a floor that carries no fds runs no shm benchmark); absent: all. */
  readonly benches?: readonly string[];
  /** Undefined when the path can run here, else the reason it cannot (shown in the table as "not available"). */
  available(ctx: Pick<PathContext, "repoRoot">): Promise<string | undefined>;
  start(ctx: PathContext): Promise<RunningPath>;
}
