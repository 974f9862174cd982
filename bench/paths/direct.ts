// The reference path: clients connect straight to the compositor's socket.
import type { BenchPath } from "./types.ts";

/** Clients talk to weston directly; there is no proxy to measure. */
export const directPath: BenchPath = {
  id: "direct",
  label: "direct",
  available: async () => undefined,
  start: async (ctx) => ({
    display: ctx.compositorSocket,
    proxyPids: [],
    health: () => undefined,
    logPaths: [],
    stop: async () => {},
  }),
};
