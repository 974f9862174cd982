// The fast paths' inline loop (native/src/inline_loop.h) on real peers: a connection doing round trips keeps the
// guest's thread, and everything else the guest serves (a new client, the control socket, a stop signal) still gets
// its turn at once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { controlStatus } from "../helpers/control-status.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { waitFor } from "../helpers/processes.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { ScriptedHost } from "../helpers/scripted-host.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

/** Round trips on `client` until `until()` says stop; resolves with how many were made. */
async function roundTripsUntil(client: RawWaylandClient, until: () => boolean): Promise<number> {
  let n = 0;
  while (!until()) {
    await client.roundTrip(10_000);
    n++;
  }
  return n;
}

describe("inline loop", () => {
  const scratch = mkdtempSync(join(tmpdir(), "crossway-inline-loop-"));
  const control = join(scratch, "guest.control");
  let weston: Compositor;
  let stack: CrosswayStack | undefined;
  const clients: RawWaylandClient[] = [];

  beforeAll(async () => {
    weston = await startWeston();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stack?.stop();
    stack = undefined;
  });

  afterAll(async () => {
    await weston?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("round trips run in it while a new client and the control socket are served", async () => {
    stack = await startCrosswayStack(weston, { logLevel: "warn", guestArgs: ["--control", control] });
    const before = await controlStatus(control);
    expect(before.inlineLoop.enabled).toBe(true);
    const busy = RawWaylandClient.connect(stack.socketPath);
    clients.push(busy);
    busy.getRegistry();
    await busy.roundTrip();
    let stop = false;
    const storm = roundTripsUntil(busy, () => stop);
    try {
      // Each of these needs the guest's loop (the listening socket, a new connection's JavaScript, the control
      // socket) while the busy connection keeps the thread between its own wake-ups.
      for (let i = 0; i < 5; i++) {
        const other = RawWaylandClient.connect(stack.socketPath);
        clients.push(other);
        other.getRegistry();
        await other.roundTrip(10_000);
        other.bind("wl_compositor", 4);
        await other.roundTrip(10_000);
      }
      const during = await controlStatus(control);
      expect(during.connections.length).toBeGreaterThanOrEqual(6);
    } finally {
      stop = true;
    }
    const made = await storm;
    expect(made).toBeGreaterThan(20);
    const after = await controlStatus(control);
    // Wake-ups handled inside stays: at least one per round trip of the storm (the device's answer), the first of
    // each stay excepted.
    expect(after.inlineLoop.stays).toBeGreaterThan(before.inlineLoop.stays);
    expect(after.inlineLoop.wakeups - before.inlineLoop.wakeups).toBeGreaterThanOrEqual(made / 2);
  });

  it("serves the riding POLL's deadline inside a stay: an answered client that goes quiet still hears the host", async () => {
    const host = await ScriptedHost.listen(join(scratch, "host.sock"));
    try {
      stack = await startCrosswayStack({ socketPath: join(scratch, "host.sock") } as Compositor, {
        logLevel: "warn",
        guestArgs: ["--control", control],
      });
      const client = RawWaylandClient.connect(stack.socketPath);
      clients.push(client);
      client.getRegistry();
      await client.roundTrip();
      // Round trips the guest's fast path carries whole (sync; done and delete_id), so the connection keeps the
      // thread, and after each answer the POLL waits up to a millisecond to ride on the next request.
      for (let i = 0; i < 50; i++) await client.roundTrip();
      const before = await controlStatus(control);
      // The client says nothing more; the host announces a global. It is heard only if the riding POLL went alone
      // when its deadline passed, and the guest's thread is in its stay, waiting on that deadline itself.
      for (let i = 0; i < 3; i++) {
        await client.roundTrip();
        await new Promise((r) => setTimeout(r, 20));
        expect(host.announce(100 + i, "wl_shm", 1)).toBe(1);
        await waitFor(
          `the announced global ${100 + i}`,
          () => (client.globals.has(100 + i) ? true : undefined),
          {
            timeoutMs: 10_000,
          },
        );
      }
      const after = await controlStatus(control);
      expect(after.inlineLoop.timers, JSON.stringify(after.inlineLoop)).toBeGreaterThan(
        before.inlineLoop.timers,
      );
    } finally {
      await stack?.stop();
      stack = undefined;
      await host.close();
    }
  });

  it("a stop signal ends the guest while a connection keeps the thread", async () => {
    stack = await startCrosswayStack(weston, { logLevel: "warn" });
    const busy = RawWaylandClient.connect(stack.socketPath);
    clients.push(busy);
    busy.getRegistry();
    await busy.roundTrip();
    let stop = false;
    const storm = roundTripsUntil(busy, () => stop).catch((err: unknown) => err);
    try {
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      const guest = stack;
      process.kill(guest.guestPid, "SIGTERM");
      // The signal reaches libuv through its signal pipe, which makes libuv's epoll fd readable: the inline loop
      // hands the thread back at once.
      await waitFor("the guest to exit after SIGTERM", () => (guest.guestRunning() ? undefined : true), {
        timeoutMs: 10_000,
      });
    } finally {
      stop = true;
    }
    // The busy client saw its connection end (the guest closed it), not a hang.
    const outcome = await storm;
    expect(outcome instanceof Error ? outcome.message : String(outcome)).not.toMatch(/timed out|timeout/i);
  });
});
