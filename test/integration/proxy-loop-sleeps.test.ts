// `crossway guest` and `crossway device` sleep in one wait at a time: round trips in their fast paths' inline loops
// (epoll_wait), and libuv's epoll_pwait never after an empty non-blocking poll.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { epollWaits } from "../helpers/epoll-waits.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { requireCommand, spawnTracked, waitFor } from "../helpers/processes.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

/** Round trips made while strace watches: each makes guest and device wait for the other side. */
const ROUND_TRIPS = 60;

describe("proxy event loops", () => {
  const scratch = mkdtempSync(join(tmpdir(), "crossway-loop-sleeps-"));
  let weston: Compositor;
  let stack: CrosswayStack;

  beforeAll(async () => {
    requireCommand("strace", "strace");
    weston = await startWeston();
    stack = await startCrosswayStack(weston, { logLevel: "warn" });
  });

  afterAll(async () => {
    await stack?.stop();
    await weston?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("guest and device carry round trips in their inline loops, and libuv sleeps in one epoll_pwait", async () => {
    const client = RawWaylandClient.connect(stack.socketPath);
    try {
      client.getRegistry();
      await client.roundTrip();
      const traceFile = join(scratch, "loops.strace");
      const strace = spawnTracked(
        "strace",
        "strace",
        [
          "-f",
          "-e",
          "trace=epoll_pwait,epoll_wait",
          "-o",
          traceFile,
          "-p",
          String(stack.guestPid),
          "-p",
          String(stack.devicePid),
        ],
        { pipeStderr: true },
      );
      let straceErr = "";
      strace.child.stderr?.on("data", (d: Buffer) => {
        straceErr += d.toString();
      });
      try {
        // Ready when strace says it holds every thread of both processes.
        await waitFor(
          "strace attached to guest and device",
          () =>
            new RegExp(`Process ${stack.guestPid} attached`).test(straceErr) &&
            new RegExp(`Process ${stack.devicePid} attached`).test(straceErr)
              ? true
              : undefined,
          { timeoutMs: 30_000, abort: () => (strace.running ? undefined : `strace exited: ${straceErr}`) },
        );
        for (let i = 0; i < ROUND_TRIPS; i++) await client.roundTrip();
      } finally {
        await strace.stop();
      }
      const trace = readFileSync(traceFile, "utf8");
      for (const [name, pid] of [
        ["guest", stack.guestPid],
        ["device", stack.devicePid],
      ] as const) {
        const w = epollWaits(trace, pid);
        const inline = epollWaits(trace, pid, undefined, "epoll_wait");
        // Round trips make each process wait for the other side. After the first wake-up of a round trip that its fast
        // path handles, the connection keeps the thread and waits in its inline loop (native/src/inline_loop.h), with
        // libuv's timeout (never 0: that loop returns to libuv instead of polling). Half: a wake-up may find both
        // peers ready.
        expect(inline.sleeps, `${name}: inline loop waits`).toBeGreaterThanOrEqual(ROUND_TRIPS / 2);
        // With the metrics off, every wait of libuv's passes its real timeout (with them on, a wait whose first,
        // non-blocking poll finds the peer ready never does; test/unit/native/event-loop.test.ts has libuv alone).
        expect(w.emptyPollsBeforeSleep, `${name}: sleeps that began with an empty non-blocking poll`).toBe(0);
      }
    } finally {
      client.close();
    }
  });
});
