// The native floor of cross-domain (bench/clients/crossdomain-floor.c), and its halves paired with crossway's.
import { join } from "node:path";
import { type PeerProcess, spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import { cliPath, crosswayEnv, profileFlags, runningPeers, subcommandHelp } from "./crossway.ts";
import type { BenchPath, PathContext, RunningPath } from "./types.ts";

/**
 * The benchmarks a floor can run: it carries no fds (no wl_shm pools), which round trips, bursts and connects need
 * not. The shm benchmarks are skipped for these paths, not failed.
 */
const FLOOR_BENCHES = ["roundtrip", "burst", "connect"] as const;

function nodePeer(ctx: PathContext, role: string, args: string[], log: string): PeerProcess {
  return spawnPeer(
    role,
    process.execPath,
    [...profileFlags(ctx, role.replace(" ", "-")), cliPath(ctx.repoRoot), ...args],
    {
      env: crosswayEnv(ctx),
      pinned: ctx.pinned,
      logPath: join(ctx.workDir, log),
    },
  );
}

function cPeer(ctx: PathContext, role: string, args: string[], log: string): PeerProcess {
  return spawnPeer(role, ctx.bins["crossdomain-floor"], args, {
    env: ctx.env,
    pinned: ctx.pinned,
    logPath: join(ctx.workDir, log),
  });
}

/** Starts a guest half (C, or `crossway guest`) in front of a device half (C, or `crossway device`). */
async function startFloor(
  ctx: PathContext,
  nativeGuest: boolean,
  nativeDevice: boolean,
): Promise<RunningPath> {
  const deviceSocket = join(ctx.workDir, uniqueName("floor-device.sock"));
  const appSocket = join(ctx.workDir, uniqueName("floor-app.sock"));
  const peers: PeerProcess[] = [];
  try {
    const device = nativeDevice
      ? cPeer(ctx, "floor device", ["device", deviceSocket, ctx.compositorSocket], "floor-device.log")
      : nodePeer(
          ctx,
          "crossway device",
          ["device", "--listen", deviceSocket, "--wayland", ctx.compositorSocket],
          "crossway-device.log",
        );
    peers.push(device);
    await waitForPath(deviceSocket, device, 20_000);
    const guest = nativeGuest
      ? cPeer(ctx, "floor guest", ["guest", appSocket, deviceSocket], "floor-guest.log")
      : nodePeer(
          ctx,
          "crossway guest",
          ["guest", "--device", `emulated:${deviceSocket}`, "--socket", appSocket],
          "crossway-guest.log",
        );
    peers.push(guest);
    await waitForPath(appSocket, guest, 20_000);
    return runningPeers(appSocket, peers, guest);
  } catch (err) {
    await Promise.all(peers.map((p) => p.stop()));
    throw err;
  }
}

/**
 * Both halves in C, parsing nothing: the same messages per round trip as crossway (SEND with the POLL riding on
 * it, ring write and fence), with the ring written through a mapping as a VMM writes guest memory. No implementation of the
 * cross-domain pattern on this machine can be faster than this, so a target it misses is out of reach here.
 */
export const crossdomainFloorPath: BenchPath = {
  id: "cd-floor",
  label: "cross-domain floor (C guest + C device)",
  benches: FLOOR_BENCHES,
  available: async () => undefined,
  start: (ctx) => startFloor(ctx, true, true),
};

/** The C guest half against the real `crossway device`: what a guest with no JavaScript reaches with our device. */
export const crossdomainFloorGuestPath: BenchPath = {
  id: "cd-floor-guest",
  label: "C guest + crossway device",
  benches: FLOOR_BENCHES,
  available: async ({ repoRoot }) =>
    (await subcommandHelp(repoRoot, "device")) === undefined ? "crossway device not implemented" : undefined,
  start: (ctx) => startFloor(ctx, true, false),
};

/**
 * crossway's own guest against the native device half: what the guest costs when the VMM is native code, as it is
 * in a real VM (the emulated device is JavaScript standing in for it).
 */
export const crosswayNativeDevicePath: BenchPath = {
  id: "crossway-cdev",
  label: "crossway guest + C device",
  benches: FLOOR_BENCHES,
  available: async ({ repoRoot }) =>
    (await subcommandHelp(repoRoot, "guest")) === undefined ? "crossway guest not implemented" : undefined,
  start: (ctx) => startFloor(ctx, false, true),
};
