// A trivial C relay (bench/clients/relay.c) as the floor of any proxy hop: bytes and fds forwarded, nothing parsed.
import { join } from "node:path";
import { spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import type { BenchPath } from "./types.ts";

/** One process, one hop: what a proxy costs before it does any work of its own. */
export const relayPath: BenchPath = {
  id: "relay",
  label: "C relay (floor)",
  available: async () => undefined,
  start: async (ctx) => {
    const display = join(ctx.workDir, uniqueName("relay.sock"));
    const relay = spawnPeer("relay", ctx.bins.relay, [display, ctx.compositorSocket], {
      env: ctx.env,
      pinned: ctx.pinned,
      logPath: join(ctx.workDir, "relay.log"),
    });
    try {
      await waitForPath(display, relay);
    } catch (err) {
      await relay.stop();
      throw err;
    }
    return {
      display,
      proxyPids: [relay.pid],
      health: () => (relay.running() ? undefined : "relay exited"),
      logPaths: [relay.logPath],
      stop: () => relay.stop(),
    };
  },
};
