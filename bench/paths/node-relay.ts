// The JavaScript floor of a proxy hop (bench/clients/node-relay.ts): the relay's job done in Node with crossway's addon.
import { join } from "node:path";
import { spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import type { BenchPath } from "./types.ts";

/**
 * One Node process, one hop, nothing parsed: set against the C relay in the same run it gives what Node's event loop
 * and addon calls cost per hop, a cost no JavaScript guest or device can go below (issue 15's "show it was needed").
 */
export const nodeRelayPath: BenchPath = {
  id: "node-relay",
  label: "Node relay (JS floor)",
  available: async () => undefined,
  start: async (ctx) => {
    const display = join(ctx.workDir, uniqueName("node-relay.sock"));
    const relay = spawnPeer(
      "node relay",
      process.execPath,
      ["--import", "tsx", join(ctx.repoRoot, "bench/clients/node-relay.ts"), display, ctx.compositorSocket],
      { env: ctx.env, pinned: ctx.pinned, logPath: join(ctx.workDir, "node-relay.log"), cwd: ctx.repoRoot },
    );
    try {
      await waitForPath(display, relay, 20_000);
    } catch (err) {
      await relay.stop();
      throw err;
    }
    return {
      display,
      proxyPids: [relay.pid],
      health: () => (relay.running() ? undefined : "node relay exited"),
      logPaths: [relay.logPath],
      stop: () => relay.stop(),
    };
  },
};
