// The PipeWire paths: clients straight to the daemon, or through `crossway pipewire-filter` (issue 6).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type Env, type PeerProcess, spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";

/** Where a PipeWire path's clients connect: PIPEWIRE_REMOTE=`remote`. */
export interface RunningPwPath {
  readonly remote: string;
  /** Sockets for benchmarks that need another filter profile (e.g. "audio-playback"); `remote` otherwise. */
  readonly remotes?: Readonly<Record<string, string>>;
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

export function cliPath(repoRoot: string): string {
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
    // One filter per profile the benchmarks need: camera (camera stream, pw-cli, pw-dump), audio-playback.
    const camera = await startFilter(ctx, filterArgs("", ctx.upstream, ctx.cameraNode), "pw-filter");
    let audio: { listen: string; peer: PeerProcess };
    try {
      audio = await startFilter(ctx, audioFilterArgs(ctx.upstream), "pw-filter-audio");
    } catch (err) {
      await camera.peer.stop();
      throw err;
    }
    return {
      remote: camera.listen,
      remotes: { "audio-playback": audio.listen },
      proxyPids: [camera.peer.pid, audio.peer.pid],
      health: () =>
        camera.peer.running() && audio.peer.running() ? undefined : "crossway pipewire-filter exited",
      stop: async () => {
        await camera.peer.stop();
        await audio.peer.stop();
      },
    };
  },
};

/** The audio-playback filter for the audio stream benchmark (any Audio/Sink target). */
export function audioFilterArgs(upstream: string): string[] {
  return ["pipewire-filter", "--listen", "", "--upstream", upstream, "--profile", "audio-playback"];
}

/** Starts one filter (args with an empty --listen value, filled in here) and waits for its socket. */
async function startFilter(
  ctx: PwPathContext,
  args: string[],
  name: string,
): Promise<{ listen: string; peer: PeerProcess }> {
  const listen = join(ctx.workDir, uniqueName(`${name}.sock`));
  const withListen = args.map((a, i) => (args[i - 1] === "--listen" ? listen : a));
  const peer: PeerProcess = spawnPeer(
    "crossway pipewire-filter",
    process.execPath,
    [cliPath(ctx.repoRoot), ...withListen],
    {
      env: ctx.env,
      pinned: false,
      logPath: join(ctx.workDir, `${name}.log`),
    },
  );
  try {
    await waitForPath(listen, peer, 20_000);
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return { listen, peer };
}
