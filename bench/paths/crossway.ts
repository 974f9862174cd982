// The crossway paths: guest proxy + emulated device (two processes, like waypipe), and the guest proxy alone.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type PeerProcess, spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import type { BenchPath, PathContext, RunningPath } from "./types.ts";

/*
 * The command lines, kept here so they can follow the CLI as it lands (issues 4 and 5):
 *   crossway device --listen DEVICE_SOCKET --wayland COMPOSITOR_SOCKET
 *   crossway guest --device emulated:DEVICE_SOCKET --socket APP_SOCKET
 * "Guest alone" needs a device-less mode of `crossway guest`; the spec has none yet, so it lights up only when
 * `crossway guest --help` offers GUEST_ALONE_OPTION (the compositor socket given to the guest proxy directly).
 */
const GUEST_ALONE_OPTION = "--wayland";

function deviceArgs(deviceSocket: string, compositorSocket: string): string[] {
  return ["device", "--listen", deviceSocket, "--wayland", compositorSocket];
}

function guestArgs(deviceSocket: string, appSocket: string): string[] {
  return ["guest", "--device", `emulated:${deviceSocket}`, "--socket", appSocket];
}

function guestAloneArgs(compositorSocket: string, appSocket: string): string[] {
  return ["guest", GUEST_ALONE_OPTION, compositorSocket, "--socket", appSocket];
}

/** The crossway CLI to measure: this checkout's, or another build's named by CROSSWAY_BENCH_CLI. */
export function cliPath(repoRoot: string): string {
  return process.env.CROSSWAY_BENCH_CLI ?? join(repoRoot, "bin/crossway.js");
}

/** `node bin/crossway.js <subcommand> --help`: exit status 0 and the help text, or undefined if unregistered. */
export async function subcommandHelp(repoRoot: string, sub: string): Promise<string | undefined> {
  const child = spawn(process.execPath, [cliPath(repoRoot), sub, "--help"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CROSSWAY_LOG: "silent" },
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  child.stderr.resume();
  const code = await new Promise<number | null>((r) => child.on("close", r));
  return code === 0 ? out : undefined;
}

/**
 * The environment of a crossway process under measurement: the compositor's, its log level, and
 * CROSSWAY_FAST_PATH when set (0 measures the guest without its native fast path, for A/B runs).
 */
export function crosswayEnv(ctx: PathContext): Record<string, string> {
  return {
    ...ctx.env,
    CROSSWAY_LOG: process.env.CROSSWAY_LOG ?? "warn",
    ...(process.env.CROSSWAY_FAST_PATH !== undefined
      ? { CROSSWAY_FAST_PATH: process.env.CROSSWAY_FAST_PATH }
      : {}),
  };
}

/** node flags that write a CPU profile named after `role` on exit, when profiling was asked for. */
export function profileFlags(ctx: PathContext, role: string): string[] {
  if (ctx.profileDir === undefined) return [];
  return ["--cpu-prof", `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${role}.cpuprofile`];
}

/** Starts `crossway guest` (with `crossway device` in front of ctx.compositorSocket when `withDevice`). */
export async function startCrossway(ctx: PathContext, withDevice: boolean): Promise<RunningPath> {
  const crossway = cliPath(ctx.repoRoot);
  const appSocket = join(ctx.workDir, uniqueName("crossway-app.sock"));
  const deviceSocket = join(ctx.workDir, uniqueName("crossway-device.sock"));
  const env = crosswayEnv(ctx);
  const peers: PeerProcess[] = [];
  let guest: PeerProcess;
  try {
    if (withDevice) {
      const device = spawnPeer(
        "crossway device",
        process.execPath,
        [
          ...profileFlags(ctx, "crossway-device"),
          crossway,
          ...deviceArgs(deviceSocket, ctx.compositorSocket),
        ],
        { env, pinned: ctx.pinned, logPath: join(ctx.workDir, "crossway-device.log") },
      );
      peers.push(device);
      await waitForPath(deviceSocket, device, 20_000);
    }
    const args = withDevice
      ? guestArgs(deviceSocket, appSocket)
      : guestAloneArgs(ctx.compositorSocket, appSocket);
    const role = withDevice ? "crossway-guest" : "crossway-guest-alone";
    guest = spawnPeer("crossway guest", process.execPath, [...profileFlags(ctx, role), crossway, ...args], {
      env,
      pinned: ctx.pinned,
      logPath: join(ctx.workDir, "crossway-guest.log"),
    });
    peers.push(guest);
    await waitForPath(appSocket, guest, 20_000);
  } catch (err) {
    await Promise.all(peers.map((p) => p.stop()));
    throw err;
  }
  return runningPeers(appSocket, peers, guest);
}

/** A started two-process path (a device half and a guest half): measured, health-checked and stopped together. */
export function runningPeers(
  display: string,
  peers: readonly PeerProcess[],
  guest: PeerProcess,
): RunningPath {
  return {
    display,
    proxyPids: peers.map((p) => p.pid),
    guestSidePids: [guest.pid],
    health: () => peers.find((p) => !p.running())?.name.concat(" exited"),
    logPaths: peers.map((p) => p.logPath),
    stop: async () => {
      await Promise.all(peers.map((p) => p.stop()));
    },
  };
}

/** crossway guest proxy + `crossway device` (emulated cross-domain), two processes. */
export const crosswayPath: BenchPath = {
  id: "crossway",
  label: "crossway (guest + device)",
  available: async ({ repoRoot }) => {
    if ((await subcommandHelp(repoRoot, "guest")) === undefined) return "crossway guest not implemented";
    if ((await subcommandHelp(repoRoot, "device")) === undefined) return "crossway device not implemented";
    return undefined;
  },
  start: (ctx) => startCrossway(ctx, true),
};

/** crossway's guest proxy connected straight to the compositor, if it has such a mode. */
export const crosswayGuestPath: BenchPath = {
  id: "crossway-guest",
  label: "crossway guest alone",
  available: async ({ repoRoot }) => {
    const help = await subcommandHelp(repoRoot, "guest");
    if (help === undefined) return "crossway guest not implemented";
    if (!help.includes(GUEST_ALONE_OPTION))
      return `crossway guest has no device-less mode (${GUEST_ALONE_OPTION})`;
    return undefined;
  },
  start: (ctx) => startCrossway(ctx, false),
};
