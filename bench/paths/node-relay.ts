// The JavaScript floor of a proxy hop (bench/clients/node-relay.ts): the relay's job done in Node with crossway's addon.
import { join } from "node:path";
import { startRelay } from "./relay.ts";
import type { BenchPath } from "./types.ts";

/**
 * One Node process, one hop, nothing parsed: set against the C relay in the same run it gives what Node's event loop
 * and addon calls cost per hop, a cost no JavaScript guest or device can go below (issue 15's "show it was needed").
 */
export const nodeRelayPath: BenchPath = {
  id: "node-relay",
  label: "Node relay (JS floor)",
  available: async () => undefined,
  start: (ctx) =>
    startRelay(ctx, "node relay", process.execPath, [
      "--import",
      "tsx",
      join(ctx.repoRoot, "bench/clients/node-relay.ts"),
    ]),
};
