// Starts the full guest PipeWire chain as child processes: pipewire-filter → crossway device → crossway guest.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { clientEnv, makePeerDirs } from "./compositor.ts";
import { type Child, parseLogLines, spawnCrossway } from "./crossway-stack.ts";
import type { PipeWireStack } from "./pipewire.ts";
import { waitFor } from "./processes.ts";

/** Options of {@link startPipeWireGuestChain}. */
export interface PipeWireGuestChainOptions {
  /**
   * Filter profile: camera, screencast, audio-playback, audio-capture; or null for no filter at all, the device's
   * PipeWire channel going straight to the daemon as libkrun's does by default (what the filter forbids, such as a
   * guest client allocating its own buffers, can then be tested against the daemon itself).
   */
  readonly profile: string | null;
  /** `--target` values for the filter. */
  readonly targets?: readonly string[];
  /** Device flavour; default libkrun (PipeWire eventfds are libkrun items). */
  readonly flavor?: "libkrun" | "crosvm";
  /** CROSSWAY_LOG of the three processes; default "info". */
  readonly logLevel?: string;
  /** How long each may take to print its ready line; default 30 s (tsx start-up on a busy machine). */
  readonly startTimeoutMs?: number;
}

/** A running chain. Guest clients connect with `env` (PIPEWIRE_REMOTE = the guest's socket). */
export interface PipeWireGuestChain {
  /** The guest's PipeWire socket. */
  readonly socketPath: string;
  /** The filter's socket (what the device connects each PipeWire channel to); the daemon's without a filter. */
  readonly filterPath: string;
  /** Environment for guest clients: XDG_RUNTIME_DIR (the guest's), PIPEWIRE_REMOTE, PATH, HOME, LANG. */
  readonly env: Record<string, string>;
  readonly pids: { readonly filter: number; readonly device: number; readonly guest: number };
  /** The three logs (pino JSON lines) so far. */
  log(which: "filter" | "device" | "guest"): string;
  records(which: "filter" | "device" | "guest"): Record<string, unknown>[];
  running(which: "filter" | "device" | "guest"): boolean;
  /** Stops guest, device, filter (in that order), waits until all are gone. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `crossway pipewire-filter --upstream <daemon> --profile P`, `crossway device --flavor libkrun --pipewire
 * <filter socket>` and `crossway guest --device emulated:… --pipewire <guest socket> --no-wayland`, each waited
 * for by its ready line on stdout.
 */
export async function startPipeWireGuestChain(
  pw: Pick<PipeWireStack, "socketPath">,
  opts: PipeWireGuestChainOptions,
): Promise<PipeWireGuestChain> {
  const dirs = makePeerDirs("pwguest");
  mkdirSync(dirs.runtimeDir, { mode: 0o700 });
  const filterPath = join(dirs.base, "filter.sock");
  const devSock = join(dirs.base, "dev.sock");
  const socketPath = join(dirs.runtimeDir, "pipewire-0");
  const env = { ...(process.env as Record<string, string>), CROSSWAY_LOG: opts.logLevel ?? "info" };
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const started: Child[] = [];
  const names = new Map<string, Child>();
  const stopAll = async (): Promise<void> => {
    for (const c of [...started].reverse()) {
      await c.proc.stop();
      c.keep();
    }
  };
  const launch = async (
    name: "filter" | "device" | "guest",
    args: string[],
    ready: string,
  ): Promise<Child> => {
    const c = spawnCrossway(`crossway ${name}`, args, env, join(dirs.base, `${name}.log`));
    started.push(c);
    names.set(name, c);
    await waitFor(`crossway ${name}'s ready line`, () => (c.stdout().includes(ready) ? true : undefined), {
      timeoutMs,
      abort: () => (c.proc.running ? undefined : `crossway ${name} exited`),
      explain: () => `${name} stderr:\n${c.stderr().slice(-2000)}`,
    });
    return c;
  };
  const unfiltered = opts.profile === null;
  try {
    const targets = (opts.targets ?? []).flatMap((t) => ["--target", t]);
    if (!unfiltered) {
      await launch(
        "filter",
        [
          "pipewire-filter",
          "--listen",
          filterPath,
          "--upstream",
          pw.socketPath,
          "--profile",
          opts.profile as string,
          ...targets,
        ],
        "listening on",
      );
    }
    const upstream = unfiltered ? pw.socketPath : filterPath;
    await launch(
      "device",
      ["device", "--listen", devSock, "--pipewire", upstream, "--flavor", opts.flavor ?? "libkrun"],
      "listening on",
    );
    await launch(
      "guest",
      [
        "guest",
        "--device",
        `emulated:${devSock}`,
        "--pipewire",
        socketPath,
        "--pipewire-flavor",
        opts.flavor ?? "libkrun",
        "--no-wayland",
      ],
      "PipeWire listening on",
    );
  } catch (err) {
    await stopAll();
    dirs.remove();
    throw err;
  }
  // Without a filter, its pid is 0, its log empty and it never runs.
  const child = (w: string): Child | undefined => names.get(w);
  let stopped: Promise<void> | undefined;
  return {
    socketPath,
    filterPath: unfiltered ? pw.socketPath : filterPath,
    env: clientEnv({ XDG_RUNTIME_DIR: dirs.runtimeDir, PIPEWIRE_REMOTE: socketPath }),
    pids: {
      filter: child("filter")?.proc.pid ?? 0,
      device: child("device")?.proc.pid ?? 0,
      guest: child("guest")?.proc.pid ?? 0,
    },
    log: (w) => child(w)?.stderr() ?? "",
    records: (w) => parseLogLines(child(w)?.stderr() ?? ""),
    running: (w) => child(w)?.proc.running ?? false,
    stop(): Promise<void> {
      stopped ??= stopAll().finally(() => dirs.remove());
      return stopped;
    },
  };
}
