// Robustness of `crossway guest` (issue 5): many clients, hostile clients and a dying compositor, with real peers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { isAlive, processId, requireCommand, run } from "../helpers/processes.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

describe("crossway stack helper", () => {
  let weston: Compositor;
  beforeAll(async () => {
    requireCommand("wayland-info", "wayland-utils");
    weston = await startWeston({ width: 320, height: 240 });
  });
  afterAll(async () => {
    await weston?.stop();
  });

  it("starts device + guest in front of weston, serves wayland-info and a raw client, and stops both", async () => {
    const stack: CrosswayStack = await startCrosswayStack(weston);
    const ids = [processId(stack.guestPid), processId(stack.devicePid)];
    try {
      const info = await run("wayland-info", [], { env: stack.env, timeoutMs: 20_000 });
      expect(info.code, info.stderr.toString()).toBe(0);
      expect(info.stdout.toString()).toMatch(/interface: 'wl_compositor'/);
      const c = RawWaylandClient.connect(stack.socketPath);
      try {
        c.getRegistry();
        await c.roundTrip();
        expect([...c.globals.values()].map((g) => g.iface)).toContain("wl_compositor");
      } finally {
        c.close();
      }
      expect(stack.guestLog()).toMatch(/"msg":"client connected"/);
    } finally {
      await stack.stop();
    }
    for (const id of ids) expect(id !== undefined && isAlive(id)).toBe(false);
  });
});
