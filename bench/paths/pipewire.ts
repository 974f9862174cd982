// The PipeWire paths: clients straight to the daemon, or through `crossway pipewire-filter` (issue 6).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type Env, type PeerProcess, spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";

/** Where a PipeWire path's clients connect: PIPEWIRE_REMOTE=`remote`. */
export interface RunningPwPath {
  readonly remote: string;
  readonly proxyPids: readonly number[];
  health(): string | undefined;
  stop(): Promise<void>;
}

/** What a PipeWire path needs to start. */
export interface PwPathContext {
  /** The daemon's socket. */
  readonly upstream: string;
  readonly env: Env;
  readonly workDir: string;
  readonly repoRoot: string;
  /** The camera node the camera profile is allowed to see. */
  readonly cameraNode: string;
}

/** One way for a PipeWire client to reach the daemon. */
export interface PwPath {
  readonly id: string;
  readonly label: string;
  available(repoRoot: string): Promise<string | undefined>;
  start(ctx: PwPathContext): Promise<RunningPwPath>;
}

/** Clients talk to the daemon's socket directly. */
export const pwDirectPath: PwPath = {
  id: "direct",
  label: "direct",
  available: async () => undefined,
  start: async (ctx) => ({
    remote: ctx.upstream,
    proxyPids: [],
    health: () => undefined,
    stop: async () => {},
  }),
};

/*
 * The filter's command line (issue 6), kept here so it can follow the CLI as it lands:
 *   crossway pipewire-filter --listen PATH --upstream PATH --profile camera --target NODE
 * The camera profile is the one the camera stream needs; pw-cli and pw-dump run through the same instance.
 */
function filterArgs(listen: string, upstream: string, cameraNode: string): string[] {
  return [
    "pipewire-filter",
    "--listen",
    listen,
    "--upstream",
    upstream,
    "--profile",
    "camera",
    "--target",
    cameraNode,
  ];
}

function cliPath(repoRoot: string): string {
  return process.env.CROSSWAY_BENCH_CLI ?? join(repoRoot, "bin/crossway.js");
}

/** `crossway pipewire-filter` in its camera profile. */
export const pwFilterPath: PwPath = {
  id: "crossway-filter",
  label: "crossway pipewire-filter",
  available: async (repoRoot) => {
    const child = spawn(process.execPath, [cliPath(repoRoot), "pipewire-filter", "--help"], {
      stdio: "ignore",
      env: { ...process.env, CROSSWAY_LOG: "silent" },
    });
    const code = await new Promise<number | null>((r) => child.on("close", r));
    return code === 0 ? undefined : "crossway pipewire-filter not implemented";
  },
  start: async (ctx) => {
    const listen = join(ctx.workDir, uniqueName("pw-filter.sock"));
    const peer: PeerProcess = spawnPeer(
      "crossway pipewire-filter",
      process.execPath,
      [cliPath(ctx.repoRoot), ...filterArgs(listen, ctx.upstream, ctx.cameraNode)],
      { env: ctx.env, pinned: false, logPath: join(ctx.workDir, "pipewire-filter.log") },
    );
    try {
      await waitForPath(listen, peer, 20_000);
    } catch (err) {
      await peer.stop();
      throw err;
    }
    return {
      remote: listen,
      proxyPids: [peer.pid],
      health: () => (peer.running() ? undefined : "crossway pipewire-filter exited"),
      stop: () => peer.stop(),
    };
  },
};
