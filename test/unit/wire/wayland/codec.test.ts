// Encoder exactness (UTF-8 lengths with NUL, zero padding, two's-complement fixed) and WAYLAND_DEBUG formatting.
import { describe, expect, it } from "vitest";
import { formatDebugLine, formatFixed, formatTimestamp } from "../../../../src/wire/wayland/debug-format.ts";
import { WireEncodeError, WireProtocolError } from "../../../../src/wire/wayland/errors.ts";
import { FdQueue } from "../../../../src/wire/wayland/fd-queue.ts";
import { MessageFramer, NEED_MORE } from "../../../../src/wire/wayland/framer.ts";
import { MessageWriter, utf8Length } from "../../../../src/wire/wayland/message-writer.ts";
import { SERVER_ID_START } from "../../../../src/wire/wayland/object-map.ts";
import { type DecodedMessage, Direction } from "../../../../src/wire/wayland/wire-connection.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { build, connWithFactory, feed } from "./wire-helpers.ts";

useFdLeakCheck();

const words = (b: Uint8Array): number[] => [...new Uint32Array(b.buffer, b.byteOffset, b.length / 4)];

describe("MessageWriter", () => {
  it("writes strings as UTF-8 with the NUL counted and zero padding", () => {
    const b = build(1, 0, (w) => w.string("é€😀"));
    // 2 + 3 + 4 bytes + NUL = 10, padded to 12.
    expect(words(b)[1]).toBe(((8 + 4 + 12) << 16) >>> 0);
    expect(words(b)[2]).toBe(10);
    expect([...b.subarray(12)]).toEqual([0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0, 0, 0]);
    expect(utf8Length("é€😀")).toBe(9);
    expect(utf8Length("\ud800x")).toBe(4); // lone surrogate: U+FFFD (3 bytes), as TextEncoder writes it
  });

  it("writes fixed as two's-complement 24.8 (-1.0 is 0xffffff00)", () => {
    expect(words(build(1, 0, (w) => w.fixed(-1)))[2]).toBe(0xffffff00);
    expect(words(build(1, 0, (w) => w.fixed(1.5)))[2]).toBe(0x180);
    expect(words(build(1, 0, (w) => w.fixed(-0.00390625)))[2]).toBe(0xffffffff);
  });

  it("writes arrays with zero padding and a null string as length 0", () => {
    const b = build(1, 0, (w) => w.array(new Uint8Array([1, 2, 3, 4, 5])).string(null));
    expect(words(b).slice(2)).toEqual([5, 0x04030201, 5, 0]);
  });

  it("raw() copies framed messages exactly, small ones word by word and large ones whole, after other content", () => {
    // Sizes on both sides of raw()'s 256-byte word-copy limit, and a writer that already holds a message.
    const msgs = [
      build(7, 1, (w) => w.int(-5)),
      build(8, 2, (w) => w.string("x".repeat(239))), // 8 + 4 + 240 = 252 bytes
      build(9, 3, (w) => w.string("y".repeat(243))), // 256 bytes
      build(10, 4, (w) => w.string("z".repeat(300)).uint(0xdeadbeef)), // 320 bytes
      build(11, 5, () => {}),
    ];
    const framer = new MessageFramer({ maxMessageSize: 4096 });
    for (const m of msgs) framer.push(m);
    const out = new MessageWriter();
    out.begin(1, 0).uint(42).end();
    const head = out.bytes().slice();
    for (;;) {
      const v = framer.next();
      if (v === NEED_MORE) break;
      out.raw(v);
    }
    const want = new Uint8Array(head.length + msgs.reduce((n, m) => n + m.length, 0));
    want.set(head, 0);
    let at = head.length;
    for (const m of msgs) {
      want.set(m, at);
      at += m.length;
    }
    expect([...out.bytes()]).toEqual([...want]);
    expect(msgs.map((m) => m.length)).toEqual([12, 252, 256, 320, 8]);
  });

  it("rejects out-of-range values and oversized messages with typed errors", () => {
    const w = new MessageWriter();
    expect(() => w.begin(0, 0)).toThrow(WireEncodeError);
    w.begin(1, 0);
    expect(() => w.int(2 ** 31)).toThrow(/int 2147483648 is out of range/);
    expect(() => w.uint(-1)).toThrow(/uint -1 is out of range/);
    expect(() => w.fixed(2 ** 24)).toThrow(/fixed 16777216 is out of range/);
    w.array(new Uint8Array(5000));
    expect(() => w.end()).toThrow(/is 5012 bytes, above the limit 4096/);
    expect(w.length).toBe(0);
  });
});

describe("WAYLAND_DEBUG format (libwayland 1.21 wl_closure_print)", () => {
  it("prints fixed values as %d.%08d of the magnitude", () => {
    expect(formatFixed(256)).toBe("1.00000000");
    expect(formatFixed(-256)).toBe("-1.00000000");
    expect(formatFixed(-1)).toBe("-0.00390625");
    expect(formatFixed(384)).toBe("1.50000000");
    expect(formatFixed(0x7fffffff)).toBe("8388607.99609375");
    expect(formatFixed(-0x80000000)).toBe("-8388608.00000000");
  });

  it("prints the timestamp as [%7u.%03u] of a 32-bit microsecond counter", () => {
    expect(formatTimestamp(1234567)).toBe("[   1234.567]");
    expect(formatTimestamp(2 ** 32 + 5)).toBe("[      0.005]");
  });

  it("prints every argument kind like libwayland", () => {
    const conn = connWithFactory();
    const m = feed(
      conn,
      Direction.EVENT,
      build(3, 0, (w) =>
        w
          .int(-5)
          .uint(4000000000)
          .fixed(-2.5)
          .string('a "q"')
          .uint(0)
          .uint(SERVER_ID_START)
          .array(new Uint8Array(6)),
      ),
      [77],
    ) as DecodedMessage;
    expect(formatDebugLine(m, 1_000_000)).toBe(
      '[   1000.000] ct_factory@3.everything(-5, 4000000000, -2.50000000, "a "q"", nil, new id ct_thing@4278190080, array[6], fd 77)',
    );
    const r = feed(
      conn,
      Direction.REQUEST,
      build(3, 1, (w) => w.string("ct_thing").uint(1).uint(4)),
    ) as DecodedMessage;
    expect(formatDebugLine(r, 0)).toBe(
      '[      0.000]  -> ct_factory@3.make_any("ct_thing", 1, new id [unknown]@4)',
    );
    const p = feed(
      conn,
      Direction.REQUEST,
      build(4, 0, (w) => w.uint(SERVER_ID_START).array(new Uint8Array(0))),
    ) as DecodedMessage;
    expect(formatDebugLine(p, 0)).toBe("[      0.000]  -> ct_thing@4.poke(ct_thing@4278190080, array[0])");
  });

  it("prints discarded events like client.c queue_event, ids as %d", () => {
    const conn = connWithFactory();
    feed(
      conn,
      Direction.REQUEST,
      build(3, 3, () => {}),
    );
    const z = feed(
      conn,
      Direction.EVENT,
      build(3, 0, (w) =>
        w.int(0).uint(0).fixed(0).string("").uint(0).uint(SERVER_ID_START).array(new Uint8Array(0)),
      ),
      [9],
    ) as DecodedMessage;
    expect(formatDebugLine(z, 0)).toBe("[      0.000] discarded [zombie]@3.[event 0](1 fd, 40 byte)");
    const u = feed(
      conn,
      Direction.EVENT,
      build(SERVER_ID_START + 7, 2, () => {}),
    ) as DecodedMessage;
    expect(formatDebugLine(u, 0)).toBe("[      0.000] discarded [unknown]@-16777209.[event 2](0 fd, 8 byte)");
  });
});

describe("wl_display.error from a rejected request", () => {
  it("encodes the error libwayland's server would post, and it decodes as wl_display.error", () => {
    const conn = connWithFactory();
    const err = feed(
      conn,
      Direction.REQUEST,
      build(9, 0, () => {}),
    );
    expect(err).toBeInstanceOf(WireProtocolError);
    const w = new MessageWriter();
    w.displayError((err as WireProtocolError).displayError);
    const ev = feed(conn, Direction.EVENT, w.bytes().slice()) as DecodedMessage;
    expect(formatDebugLine(ev, 0)).toBe(
      '[      0.000] wl_display@1.error(wl_display@1, 0, "invalid object 9")',
    );
  });

  it("records which message each outgoing fd belongs to (for <= 28 fds per sendmsg)", () => {
    const w = new MessageWriter();
    w.begin(3, 2).fd(10).uint(1).fd(11).end();
    w.begin(3, 0).uint(4).string(null).end();
    w.begin(3, 2).fd(12).uint(1).fd(13).end();
    expect(w.fds).toEqual([10, 11, 12, 13]);
    expect(w.fdMessageOffsets).toEqual([0, 0, 28, 28]);
    w.begin(3, 2).fd(14).array(new Uint8Array(5000));
    expect(() => w.end()).toThrow(WireEncodeError);
    expect(w.fds).toEqual([10, 11, 12, 13]);
  });
});

describe("FdQueue", () => {
  it("keeps order across growth and refuses fds beyond its limit with a typed error", () => {
    const q = new FdQueue(4, 6);
    for (let i = 0; i < 6; i++) q.push(10 + i);
    q.consume(2);
    expect([q.peek(0), q.peek(3), q.peek(4)]).toEqual([12, 15, -1]);
    q.push(16);
    q.push(17);
    expect(() => q.push(18)).toThrow(expect.objectContaining({ code: "CW_WIRE_FD_OVERFLOW" }));
    expect(q.drain()).toEqual([12, 13, 14, 15, 16, 17]);
    expect(q.length).toBe(0);
  });
});
