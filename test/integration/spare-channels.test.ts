// The guest's spare channels (src/crossdomain/channel-reserve.ts) on real peers: a client starts on a channel opened
// before it came, the reserve opens the next, and a host that drops or speaks on a spare costs no client anything.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { requestStatus } from "../../src/control/control-client.ts";
import type { StatusReport } from "../../src/control/status-report.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { controlStatus } from "../helpers/control-status.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { fdCount, stableFdCount } from "../helpers/process-fds.ts";
import { run, waitFor } from "../helpers/processes.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { ScriptedHost } from "../helpers/scripted-host.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

/**
 * The guest's status once `ok` holds for it (the reserve opens and refills asynchronously), asked in-process so
 * polling does not start a `crossway status` per reading; the first test reads it through the command too.
 */
async function statusWhen(
  control: string,
  what: string,
  ok: (s: StatusReport) => boolean,
): Promise<StatusReport> {
  let last: StatusReport | undefined;
  return await waitFor(
    what,
    async () => {
      last = await requestStatus(control, 30_000);
      return ok(last) ? last : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 20, explain: () => JSON.stringify(last?.spareChannels) },
  );
}

/** No client connected and `n` spares ready, none being opened. */
function idleWith(n: number): (s: StatusReport) => boolean {
  return (s) => s.connections.length === 0 && s.spareChannels?.ready === n && s.spareChannels.opening === 0;
}

/** A client that binds wl_compositor and makes round trips: it works only if its channel reaches the host. */
async function useOnce(socketPath: string): Promise<void> {
  const c = RawWaylandClient.connect(socketPath);
  try {
    c.getRegistry();
    await c.roundTrip(10_000);
    await c.roundTrip(10_000);
  } finally {
    c.close();
  }
}

describe("spare channels", () => {
  const scratch = mkdtempSync(join(tmpdir(), "crossway-spare-"));
  const control = join(scratch, "guest.control");
  let weston: Compositor;
  let stack: CrosswayStack | undefined;

  beforeAll(async () => {
    weston = await startWeston();
  });

  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  afterAll(async () => {
    await weston?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("clients start on a spare, the next is opened, and neither guest nor device keeps an fd of the clients", async () => {
    stack = await startCrosswayStack(weston, { logLevel: "warn", guestArgs: ["--control", control] });
    await statusWhen(control, "a spare ready", idleWith(1));
    // As a user reads it: `crossway status --json` and the table's line.
    const first = await controlStatus(control);
    const table = await run(process.execPath, [BIN, "status", "--control", control], { timeoutMs: 30_000 });
    expect(table.stdout.toString()).toContain(
      "spare channels: 1 of 1 ready; clients started on a spare 0, on a new channel 0\n",
    );
    expect(first.spareChannels).toEqual({
      size: 1,
      ready: 1,
      opening: 0,
      handedReady: 0,
      openedOnDemand: 0,
      diedUnused: 0,
      failures: 0,
      // No client has made a pool yet: nothing to ask ahead.
      requirementsAhead: { asked: 0, used: 0, widths: [] },
    });
    const guestFds = await stableFdCount(stack.guestPid);
    const deviceFds = fdCount(stack.devicePid);
    for (let i = 0; i < 3; i++) {
      const c = RawWaylandClient.connect(stack.socketPath);
      c.getRegistry();
      await c.roundTrip(10_000);
      const compositor = c.bind("wl_compositor", 4);
      expect(compositor).toBeGreaterThan(0);
      await c.roundTrip(10_000);
      // While the client is connected, its context and the next spare's are both open.
      await statusWhen(
        control,
        "the client served and the next spare ready",
        (s) => s.spareChannels?.ready === 1,
      );
      c.close();
      await statusWhen(control, "the client gone, a spare ready", idleWith(1));
    }
    const after = await controlStatus(control);
    expect(after.spareChannels).toMatchObject({
      handedReady: 3,
      openedOnDemand: 0,
      diedUnused: 0,
      failures: 0,
    });
    expect(await stableFdCount(stack.guestPid)).toBe(guestFds);
    // The device's side of a channel is a context socket and its host connection: the clients' are closed, the
    // spare's is the one counted before.
    await waitFor("the device's fds back to one spare's", () =>
      fdCount(stack?.devicePid ?? 0) === deviceFds ? true : undefined,
    );
  });

  it("a pool size clients used is asked ahead on the channels opened after it, and the next such pool uses the answer", async () => {
    stack = await startCrosswayStack(weston, { logLevel: "warn", guestArgs: ["--control", control] });
    await statusWhen(control, "a spare ready", idleWith(1));
    /** A client that makes a pool of `size` bytes with one buffer, and a round trip: the host accepted both. */
    const poolOnce = async (size: number): Promise<void> => {
      const c = RawWaylandClient.connect(stack?.socketPath ?? "");
      try {
        c.getRegistry();
        await c.roundTrip(10_000);
        c.createShmPool(c.bind("wl_shm", 1), size);
        await c.roundTrip(10_000);
      } finally {
        c.close();
      }
    };
    // 300,000 bytes is the 320 KiB bucket (64 KiB steps up to 1 MiB, linear-blob.ts); 3 MB the 3 MiB one.
    const small = 5 * 65536;
    const large = 3 * 1024 * 1024;
    await poolOnce(300_000);
    let s = await statusWhen(control, "the client gone, a spare ready", idleWith(1));
    expect(s.spareChannels?.requirementsAhead).toMatchObject({ used: 0, widths: [small] });
    // The spare now waiting may have opened before that pool was made: one client more puts a channel opened after
    // it in the reserve, and that one asked.
    await useOnce(stack.socketPath);
    s = await statusWhen(control, "a spare opened after the pool ready", idleWith(1));
    const asked = s.spareChannels?.requirementsAhead?.asked ?? 0;
    expect(asked).toBeGreaterThanOrEqual(1);
    await poolOnce(300_000);
    s = await statusWhen(control, "the pool's client gone", idleWith(1));
    expect(s.spareChannels?.requirementsAhead?.used).toBe(1);
    // Another size is not answered ahead, and becomes the most recent one.
    await poolOnce(large - 4096);
    s = await statusWhen(control, "the large pool's client gone", idleWith(1));
    expect(s.spareChannels?.requirementsAhead).toMatchObject({ used: 1, widths: [large, small] });
    expect(s.spareChannels?.handedReady).toBe(4);
    const table = await run(process.execPath, [BIN, "status", "--control", control], { timeoutMs: 30_000 });
    expect(table.stdout.toString()).toMatch(/; image requirements asked ahead \d+, used 1\n/);
  });

  it("with --spare-channels 0 every client opens its own channel and nothing stays open between clients", async () => {
    stack = await startCrosswayStack(weston, {
      logLevel: "warn",
      guestArgs: ["--control", control, "--spare-channels", "0"],
    });
    const idle = await statusWhen(control, "the guest answering", idleWith(0));
    expect(idle.spareChannels).toMatchObject({ size: 0, ready: 0, opening: 0 });
    const deviceFds = fdCount(stack.devicePid);
    await useOnce(stack.socketPath);
    await useOnce(stack.socketPath);
    const after = await statusWhen(control, "both clients gone", idleWith(0));
    expect(after.spareChannels).toMatchObject({ handedReady: 0, openedOnDemand: 2 });
    await waitFor("the device's fds back", () =>
      fdCount(stack?.devicePid ?? 0) === deviceFds ? true : undefined,
    );
  });

  for (const action of ["hang-up", "speak"] as const) {
    it(`a host that ${action === "hang-up" ? "hangs up on" : "speaks first on"} a spare loses it, and the next client still starts on a spare`, async () => {
      const hostPath = join(scratch, `host-${action}.sock`);
      const host = await ScriptedHost.listen(hostPath, { first: { count: 1, action } });
      try {
        stack = await startCrosswayStack({ socketPath: hostPath } as Compositor, {
          logLevel: "warn",
          guestArgs: ["--control", control],
        });
        // The first spare's host connection got the misbehaviour; the reserve waited out its backoff and opened
        // another, which the host serves.
        const healed = await statusWhen(
          control,
          "a second spare ready",
          (s) => idleWith(1)(s) && host.accepted >= 2,
        );
        expect(host.misbehaved).toBe(1);
        await stack.waitForGuestLog("spare channel lost");
        const lost = stack.guestLogRecords().filter((r) => r.msg === "spare channel lost");
        expect(lost.length).toBe(1);
        expect(String(lost[0]?.err)).toMatch(
          action === "hang-up"
            ? /spare channel (ended before any client used it|cannot open)|cannot open a spare channel/
            : /the host sent a message on a spare channel before any client used it/,
        );
        expect(lost[0]?.retryMs).toBe(100);
        expect(healed.spareChannels?.diedUnused ?? 0).toBeLessThanOrEqual(1);
        await useOnce(stack.socketPath);
        const after = await statusWhen(control, "the client gone, a spare ready", idleWith(1));
        expect(after.spareChannels).toMatchObject({ handedReady: 1, openedOnDemand: 0, failures: 0 });
        expect(stack.guestRunning()).toBe(true);
      } finally {
        await stack?.stop();
        stack = undefined;
        await host.close();
      }
    });
  }

  it("a compositor that dies takes the spare with it: retries back off, hold no fd, and clients fail at once", async () => {
    const doomed = await startWeston({ width: 320, height: 240 });
    try {
      stack = await startCrosswayStack(doomed, { logLevel: "warn", guestArgs: ["--control", control] });
      await statusWhen(control, "a spare ready", idleWith(1));
      const withSpare = await stableFdCount(stack.guestPid);
      process.kill(doomed.pid, "SIGKILL");
      // The spare's host connection ends; every reopening fails (INIT cannot connect), each waiting twice as long.
      const failing = await statusWhen(
        control,
        "the spare lost and reopening failing",
        (s) => s.spareChannels?.ready === 0 && (s.spareChannels?.failures ?? 0) >= 3,
      );
      const fdsFailing = await stableFdCount(stack.guestPid);
      expect(fdsFailing).toBeLessThan(withSpare);
      // More failed retries (200, 400, 800 ms apart) and no fd more: a failed open leaves nothing behind.
      await statusWhen(
        control,
        "three more failed retries",
        (s) => (s.spareChannels?.failures ?? 0) >= (failing.spareChannels?.failures ?? 0) + 3,
      );
      expect(await stableFdCount(stack.guestPid)).toBe(fdsFailing);
      // One warning for the outage, not one per retry.
      expect(stack.guestLogRecords().filter((r) => r.msg === "spare channel lost").length).toBe(1);
      // A client meanwhile is refused at once (EOF), with the guest's error naming the host side.
      await RawWaylandClient.refusedAtOnce(stack.socketPath);
      await stack.waitForGuestLog("cannot open a cross-domain channel for the client");
      expect(stack.guestRunning()).toBe(true);
      expect(await stableFdCount(stack.guestPid)).toBe(fdsFailing);
    } finally {
      await stack?.stop();
      stack = undefined;
      await doomed.stop();
    }
  });

  it("refuses a spare count outside 0-16 (exit status 2)", async () => {
    for (const bad of ["17", "-1", "x", ""]) {
      const r = await run(
        process.execPath,
        [BIN, "guest", "--device", `emulated:${join(scratch, "none.sock")}`, "--spare-channels", bad],
        { timeoutMs: 60_000 },
      );
      expect(r.code, bad).toBe(2);
      expect(r.stderr.toString()).toBe(
        `crossway guest: --spare-channels must be a number from 0 to 16, not '${bad}'\n`,
      );
    }
  });
});
