// The host-side Wayland filter's paths: the filter alone (its own hop), and guest + device + filter (the whole chain).
import { join } from "node:path";
import { type PeerProcess, spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import { cliPath, profileFlags, startCrossway, subcommandHelp } from "./crossway.ts";
import type { BenchPath, PathContext, RunningPath } from "./types.ts";

/* crossway wayland-filter --listen FILTER_SOCKET --upstream COMPOSITOR_SOCKET --name bench (the safe default). */
async function startFilter(ctx: PathContext): Promise<{ socket: string; peer: PeerProcess }> {
  const socket = join(ctx.workDir, uniqueName("wlfilter.sock"));
  const peer = spawnPeer(
    "crossway wayland-filter",
    process.execPath,
    [
      ...profileFlags(ctx, "crossway-wayland-filter"),
      cliPath(ctx.repoRoot),
      "wayland-filter",
      "--listen",
      socket,
      "--upstream",
      ctx.compositorSocket,
      "--name",
      "bench",
    ],
    {
      env: { ...ctx.env, CROSSWAY_LOG: process.env.CROSSWAY_LOG ?? "warn" },
      pinned: ctx.pinned,
      logPath: join(ctx.workDir, "crossway-wayland-filter.log"),
    },
  );
  try {
    await waitForPath(socket, peer, 20_000);
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return { socket, peer };
}

const available = async ({ repoRoot }: Pick<PathContext, "repoRoot">): Promise<string | undefined> =>
  (await subcommandHelp(repoRoot, "wayland-filter")) === undefined
    ? "crossway wayland-filter not implemented"
    : undefined;

/** The filter alone between client and compositor: what the host-side boundary adds to a round trip. */
export const waylandFilterPath: BenchPath = {
  id: "wlfilter",
  label: "crossway wayland-filter alone",
  available,
  start: async (ctx) => {
    const f = await startFilter(ctx);
    return {
      display: f.socket,
      proxyPids: [f.peer.pid],
      health: () => (f.peer.running() ? undefined : "crossway wayland-filter exited"),
      logPaths: [f.peer.logPath],
      stop: () => f.peer.stop(),
    };
  },
};

/** guest + device + filter: the whole chain a VM's client goes through with the host-side filter. */
export const crosswayFilterPath: BenchPath = {
  id: "crossway-filter",
  label: "crossway (guest + device + filter)",
  available,
  start: async (ctx) => {
    const f = await startFilter(ctx);
    let rest: RunningPath;
    try {
      rest = await startCrossway({ ...ctx, compositorSocket: f.socket }, true);
    } catch (err) {
      await f.peer.stop();
      throw err;
    }
    return {
      display: rest.display,
      proxyPids: [...rest.proxyPids, f.peer.pid],
      ...(rest.guestSidePids !== undefined ? { guestSidePids: rest.guestSidePids } : {}),
      health: () => rest.health() ?? (f.peer.running() ? undefined : "crossway wayland-filter exited"),
      logPaths: [...rest.logPaths, f.peer.logPath],
      stop: async () => {
        await rest.stop();
        await f.peer.stop();
      },
    };
  },
};
