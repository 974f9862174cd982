// waypipe 0.8.4 as the comparison proxy: `waypipe client` next to the compositor, `waypipe server` next to the app.
import { join } from "node:path";
import { requireCommand, spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import type { BenchPath } from "./types.ts";

/** Compression off and no GPU, so waypipe copies and diffs shm like a plain relay would (environment.md §2.5). */
const COMMON = ["--compress", "none", "--no-gpu"];

/**
 * Two processes like crossway's guest proxy + device: the client side connects to the compositor and listens on
 * a private socket; the server side creates the app socket (`--display`) and forks one child per connection,
 * as does the client side, so the measured trees include those children. The server needs a command to run; an
 * idle `sleep` keeps it alive while bench clients come and go.
 */
export const waypipePath: BenchPath = {
  id: "waypipe",
  label: "waypipe 0.8.4",
  available: async () => {
    try {
      requireCommand("waypipe", "waypipe");
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  },
  start: async (ctx) => {
    const transport = join(ctx.workDir, uniqueName("waypipe.sock"));
    const display = join(ctx.workDir, uniqueName("waypipe-app.sock"));
    const clientSide = spawnPeer("waypipe client", "waypipe", ["--socket", transport, ...COMMON, "client"], {
      env: { ...ctx.env, WAYLAND_DISPLAY: ctx.compositorSocket },
      pinned: ctx.pinned,
      logPath: join(ctx.workDir, "waypipe-client.log"),
    });
    const peers = [clientSide];
    let serverSide: (typeof peers)[number];
    try {
      await waitForPath(transport, clientSide);
      serverSide = spawnPeer(
        "waypipe server",
        "waypipe",
        ["--socket", transport, ...COMMON, "--display", display, "server", "--", "sleep", "infinity"],
        { env: ctx.env, pinned: ctx.pinned, logPath: join(ctx.workDir, "waypipe-server.log") },
      );
      peers.push(serverSide);
      await waitForPath(display, serverSide);
    } catch (err) {
      await Promise.all(peers.map((p) => p.stop()));
      throw err;
    }
    return {
      display,
      proxyPids: peers.map((p) => p.pid),
      guestSidePids: [serverSide.pid],
      health: () => peers.find((p) => !p.running())?.name.concat(" exited"),
      logPaths: peers.map((p) => p.logPath),
      stop: async () => {
        await Promise.all(peers.map((p) => p.stop()));
      },
    };
  },
};
