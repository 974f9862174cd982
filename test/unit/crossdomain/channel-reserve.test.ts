// The spare-channel reserve's bookkeeping, with opens the test completes by hand: who gets which channel, what is
// closed, and when it opens again. Real channels, hosts and fds are in test/integration/spare-channels.test.ts.
import { fstatSync, openSync } from "node:fs";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CloseReason, CrossDomainChannel, ReceivedItem } from "../../../src/crossdomain/channel.ts";
import { ChannelReserve } from "../../../src/crossdomain/channel-reserve.ts";

/** Stands for a channel: what the reserve touches (its two handlers, its logger, close), and whether it was closed. */
class StubChannel {
  closed = false;
  logger: unknown = null;
  onReceive: (data: Uint8Array, items: readonly ReceivedItem[]) => "continue" | "pause" = () => "continue";
  onClose: (reason: CloseReason) => void = () => {};
  constructor(readonly n: number) {}
  useLogger(logger: unknown): void {
    this.logger = logger;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose({ kind: "local" });
  }
}

/** Opens the test resolves or rejects itself, in order. */
function manualOpens() {
  const pending: Array<{ resolve: (c: StubChannel) => void; reject: (e: Error) => void }> = [];
  /** The logger each open was given, in order. */
  const loggers: unknown[] = [];
  let made = 0;
  return {
    pending,
    loggers,
    open: (logger: unknown) =>
      new Promise<CrossDomainChannel>((resolve, reject) => {
        loggers.push(logger);
        pending.push({ resolve: resolve as unknown as (c: StubChannel) => void, reject });
      }),
    /** Completes the oldest open with a new stub channel. */
    succeed(): StubChannel {
      const c = new StubChannel(++made);
      pending.shift()?.resolve(c);
      return c;
    },
    fail(message: string): void {
      pending.shift()?.reject(new Error(message));
    },
  };
}

const flush = () => new Promise((r) => setImmediate(r));
const log = pino({ level: "silent" });
/** The logger a client's take passes: the channel must log with it once taken. */
const clientLog = log.child({ client: "c1" });

describe("ChannelReserve", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hands out the ready channel and opens the next one after the refill delay", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const o = manualOpens();
    const r = new ChannelReserve({ size: 1, open: o.open, log });
    expect(o.pending.length).toBe(1);
    const first = o.succeed();
    await flush();
    expect(r.status()).toMatchObject({ ready: 1, opening: 0 });
    const got = await r.take(clientLog);
    expect(got).toBe(first as unknown as CrossDomainChannel);
    expect(first.logger).toBe(clientLog);
    expect(o.loggers[0]).not.toBe(clientLog);
    // The taker owns it now: the reserve's handlers are gone, a close does not count as a spare lost.
    first.close();
    expect(r.status()).toMatchObject({ ready: 0, handedReady: 1, diedUnused: 0 });
    expect(o.pending.length).toBe(0);
    vi.advanceTimersByTime(25);
    expect(o.pending.length).toBe(1);
    r.close();
    o.succeed();
    await flush();
  });

  it("a take while the spare is still opening waits for that one instead of opening another", async () => {
    const o = manualOpens();
    const r = new ChannelReserve({ size: 1, open: o.open, log });
    const taken = r.take(clientLog);
    expect(o.pending.length).toBe(1);
    const c = o.succeed();
    expect(await taken).toBe(c as unknown as CrossDomainChannel);
    expect(c.logger).toBe(clientLog);
    await flush();
    expect(r.status()).toMatchObject({ ready: 0, openedOnDemand: 1 });
    r.close();
    expect(c.closed).toBe(false);
  });

  it("a take whose awaited spare fails opens one of its own", async () => {
    const o = manualOpens();
    const r = new ChannelReserve({ size: 1, open: o.open, log });
    const taken = r.take(clientLog);
    o.fail("device gone");
    await flush();
    // The reserve's failure is retried later; the client's own open is the one pending now, with its logger.
    expect(o.pending.length).toBe(1);
    expect(o.loggers[1]).toBe(clientLog);
    const own = o.succeed();
    expect(await taken).toBe(own as unknown as CrossDomainChannel);
    expect(r.status().failures).toBe(1);
    r.close();
  });

  it("backs off, doubling, while opens fail; a spare handed out ends the streak", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const o = manualOpens();
    const r = new ChannelReserve({ size: 1, open: o.open, log });
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      o.fail("INIT: cannot connect");
      await flush();
      let ms = 0;
      while (o.pending.length === 0 && ms < 10_000) {
        vi.advanceTimersByTime(10);
        ms += 10;
      }
      waits.push(ms);
    }
    expect(waits).toEqual([100, 200, 400, 800]);
    expect(r.status().failures).toBe(4);
    o.succeed();
    await flush();
    await r.take(log);
    expect(r.status().failures).toBe(0);
    r.close();
  });

  it("a spare the host hangs up on or speaks on is dropped (items released) and reopened", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const o = manualOpens();
    const r = new ChannelReserve({ size: 1, open: o.open, log });
    const a = o.succeed();
    await flush();
    a.onClose({ kind: "host-hangup" });
    expect(r.status()).toMatchObject({ ready: 0, diedUnused: 1, failures: 1 });
    vi.advanceTimersByTime(100);
    const b = o.succeed();
    await flush();
    expect(r.status().ready).toBe(1);
    // A message before any client: the channel is closed, and the fds its items carried with it.
    const fd = openSync("/dev/null", "r");
    expect(b.onReceive(new Uint8Array(8), [{ kind: "blob", fd, size: 4096, access: "read-only" }])).toBe(
      "pause",
    );
    expect(b.closed).toBe(true);
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
    expect(r.status()).toMatchObject({ ready: 0, diedUnused: 2 });
    r.close();
  });

  it("close() closes ready spares and the ones still opening when they arrive, and refuses takes", async () => {
    const o = manualOpens();
    const r = new ChannelReserve({ size: 2, open: o.open, log });
    expect(o.pending.length).toBe(2);
    const ready = o.succeed();
    await flush();
    r.close();
    expect(ready.closed).toBe(true);
    const late = o.succeed();
    await flush();
    expect(late.closed).toBe(true);
    await expect(r.take(log)).rejects.toThrow(/closed/);
  });

  it("refuses a size outside 0-16", () => {
    const o = manualOpens();
    expect(() => new ChannelReserve({ size: 17, open: o.open, log })).toThrow(/0-16/);
    expect(() => new ChannelReserve({ size: 1.5, open: o.open, log })).toThrow(/0-16/);
    expect(o.pending.length).toBe(0);
  });
});
