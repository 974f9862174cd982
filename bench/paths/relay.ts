// A trivial C relay (bench/clients/relay.c) as the floor of any proxy hop: bytes and fds forwarded, nothing parsed.
import { join } from "node:path";
import { spawnPeer, uniqueName, waitForPath } from "../lib/processes.ts";
import type { BenchPath, PathContext, RunningPath } from "./types.ts";

/**
 * Starts a one-process relay, `file ...prefix LISTEN_PATH COMPOSITOR_SOCKET`, and waits until it listens: the shape
 * of both floors, the C relay and the Node relay.
 */
export async function startRelay(
  ctx: PathContext,
  name: string,
  file: string,
  prefix: readonly string[],
): Promise<RunningPath> {
  const id = name.replaceAll(" ", "-");
  const display = join(ctx.workDir, uniqueName(`${id}.sock`));
  const relay = spawnPeer(name, file, [...prefix, display, ctx.compositorSocket], {
    env: ctx.env,
    pinned: ctx.pinned,
    logPath: join(ctx.workDir, `${id}.log`),
    cwd: ctx.repoRoot,
  });
  try {
    await waitForPath(display, relay, 20_000);
  } catch (err) {
    await relay.stop();
    throw err;
  }
  return {
    display,
    proxyPids: [relay.pid],
    health: () => (relay.running() ? undefined : `${name} exited`),
    logPaths: [relay.logPath],
    stop: () => relay.stop(),
  };
}

/** One process, one hop: what a proxy costs before it does any work of its own. */
export const relayPath: BenchPath = {
  id: "relay",
  label: "C relay (floor)",
  available: async () => undefined,
  start: (ctx) => startRelay(ctx, "relay", ctx.bins.relay, []),
};
