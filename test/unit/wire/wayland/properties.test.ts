// fast-check properties of the wire engine: round trips for every message in the tables, splits, truncation,
// huge lengths, fd-count mismatches, ids on the wrong side, garbage. Seed printed; FC_SEED=n replays a run.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CrosswayError } from "../../../../src/errors.ts";
import { ArgValues } from "../../../../src/wire/wayland/arg-values.ts";
import { decodeArgs } from "../../../../src/wire/wayland/decoder.ts";
import { WireProtocolError } from "../../../../src/wire/wayland/errors.ts";
import { FdQueue } from "../../../../src/wire/wayland/fd-queue.ts";
import { MessageFramer, NEED_MORE } from "../../../../src/wire/wayland/framer.ts";
import { MessageWriter } from "../../../../src/wire/wayland/message-writer.ts";
import { ObjectMap, SERVER_ID_START, Side } from "../../../../src/wire/wayland/object-map.ts";
import { ArgKind, type MessageDesc } from "../../../../src/wire/wayland/protocol-registry.ts";
import { Direction, WireConnection } from "../../../../src/wire/wayland/wire-connection.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { loadFixtures, replay } from "../../../helpers/wayland-fixtures.ts";
import { testRegistry } from "./wire-helpers.ts";

useFdLeakCheck();

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`fast-check seed ${seed} (replay with FC_SEED=${seed})`);
/** Every property gets the printed seed, a run count and a time box so CI stays fast. */
const opts = (numRuns: number) => ({ seed, numRuns, interruptAfterTimeLimit: 4000 });

const registry = testRegistry();
const allMessages: MessageDesc[] = [];
for (const i of registry.interfaces()) allMessages.push(...i.requests, ...i.events);

type Arg = number | string | null | Uint8Array;

/** Random arguments matching `desc` (strings without NUL; object ids on any side; fds as numbers). */
function argsFor(desc: MessageDesc): fc.Arbitrary<Arg[]> {
  const parts: fc.Arbitrary<Arg>[] = [];
  for (let i = 0; i < desc.kinds.length; i++) {
    const nullable = desc.nullable[i] === 1;
    switch (desc.kinds[i]) {
      case ArgKind.INT:
      case ArgKind.FIXED:
        parts.push(fc.integer({ min: -0x80000000, max: 0x7fffffff }));
        break;
      case ArgKind.UINT:
        parts.push(fc.integer({ min: 0, max: 0xffffffff }));
        break;
      case ArgKind.OBJECT:
        parts.push(
          nullable ? fc.integer({ min: 0, max: 0xffffffff }) : fc.integer({ min: 1, max: 0xffffffff }),
        );
        break;
      case ArgKind.NEW_ID:
        parts.push(fc.integer({ min: 1, max: 0xffffffff }));
        break;
      case ArgKind.STRING: {
        const s = fc.string({ unit: "grapheme", maxLength: 40 }).map((x) => x.replaceAll("\0", ""));
        parts.push(nullable ? fc.option(s, { nil: null }) : s);
        break;
      }
      case ArgKind.ARRAY:
        parts.push(fc.uint8Array({ maxLength: 70 }));
        break;
      default:
        parts.push(fc.integer({ min: 0, max: 1 << 20 }));
    }
  }
  return fc.tuple(...parts);
}

const messageArb = fc.integer({ min: 0, max: allMessages.length - 1 }).chain((k) => {
  const desc = allMessages[k] as MessageDesc;
  return fc.tuple(fc.constant(desc), argsFor(desc), fc.integer({ min: 1, max: 0xfffffffe }));
});

function encode(
  desc: MessageDesc,
  args: Arg[],
  objectId: number,
  max = 65532,
): { bytes: Uint8Array; fds: number[] } {
  const w = new MessageWriter({ maxMessageSize: max });
  w.begin(objectId, desc.opcode);
  desc.kinds.forEach((k, i) => {
    const a = args[i];
    if (k === ArgKind.INT || k === ArgKind.FIXED) w.int(a as number);
    else if (k === ArgKind.STRING) w.string(a as string | null);
    else if (k === ArgKind.ARRAY) w.array(a as Uint8Array);
    else if (k === ArgKind.FD) w.fd(a as number);
    else w.uint(a as number);
  });
  w.end();
  return { bytes: w.bytes().slice(), fds: [...w.fds] };
}

function decodeOne(desc: MessageDesc, bytes: Uint8Array, fds: number[], splits: number[] = []): ArgValues {
  const f = new MessageFramer({ maxMessageSize: 65532 });
  const q = new FdQueue();
  for (const fd of fds) q.push(fd);
  let at = 0;
  for (const s of [...splits.filter((x) => x > 0 && x < bytes.length).sort((a, b) => a - b), bytes.length]) {
    expect(f.next()).toBe(NEED_MORE);
    f.push(bytes, at, s - at);
    at = s;
  }
  const v = f.next();
  if (v === NEED_MORE) throw new Error("whole message pushed but NEED_MORE");
  const out = new ArgValues();
  decodeArgs(v, desc, out, q, null, Side.CLIENT);
  return out;
}

describe("properties", () => {
  it(`round-trips random messages of every interface (${allMessages.length} messages), split anywhere`, () => {
    fc.assert(
      fc.property(messageArb, fc.array(fc.nat(5000), { maxLength: 4 }), ([desc, args, id], splits) => {
        const { bytes, fds } = encode(desc, args, id);
        const out = decodeOne(desc, bytes, fds, splits);
        desc.kinds.forEach((k, i) => {
          const a = args[i];
          if (k === ArgKind.STRING) expect(out.string(i)).toBe(a);
          else if (k === ArgKind.ARRAY) expect([...out.array(i)]).toEqual([...(a as Uint8Array)]);
          else if (k === ArgKind.INT || k === ArgKind.FIXED) expect(out.int(i)).toBe(a);
          else expect(out.uint(i)).toBe(a);
        });
        const again = new MessageWriter({ maxMessageSize: 65532 }).encode(id, desc, out);
        expect(Buffer.from(again.bytes()).equals(Buffer.from(bytes))).toBe(true);
        expect(again.fds).toEqual(fds);
      }),
      opts(3000),
    );
  });

  it("replays captured streams identically at random split points", () => {
    const fixtures = loadFixtures();
    const baseline = new Map(
      fixtures.map((f) => [f.name, replay(f, registry).lines.map((l) => l.slice(14))]),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: fixtures.length - 1 }),
        fc.integer({ min: 1, max: 97 }),
        (k, step) => {
          const f = fixtures[k] as (typeof fixtures)[number];
          const chunks = f.chunks.flatMap((c) => {
            const b = Buffer.from(c.b64, "base64");
            const parts = [];
            for (let i = 0; i < b.length; i += step)
              parts.push({
                d: c.d,
                fds: i === 0 ? c.fds : 0,
                b64: b.subarray(i, i + step).toString("base64"),
              });
            return parts;
          });
          const r = replay({ ...f, chunks }, registry);
          expect(r.mismatches).toEqual([]);
          expect(r.lines.map((l) => l.slice(14))).toEqual(baseline.get(f.name));
        },
      ),
      opts(40),
    );
  });

  it("truncated messages give NEED_MORE or a typed 'message too short' error, never anything else", () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), ([desc, args, id], cut) => {
        const { bytes, fds } = encode(desc, args, id);
        if (bytes.length <= 8) return;
        // Bytes cut off in the stream: NEED_MORE.
        const f = new MessageFramer({ maxMessageSize: 65532 });
        f.push(bytes, 0, 1 + (cut % (bytes.length - 1)));
        expect(f.next()).toBe(NEED_MORE);
        // A header that claims less than the arguments need: an argument error.
        const k = 8 + 4 * (cut % ((bytes.length - 8) / 4));
        const t = bytes.slice(0, k);
        new Uint32Array(t.buffer)[1] = ((k << 16) | desc.opcode) >>> 0;
        let err: unknown;
        try {
          decodeOne(desc, t, fds);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(WireProtocolError);
        expect((err as WireProtocolError).code).toBe("CW_WIRE_INVALID_ARGUMENTS");
        expect((err as WireProtocolError).message).toMatch(/message too short|not nul-terminated/);
      }),
      opts(3000),
    );
  });

  it("string/array lengths near 2^32 are rejected before anything is sized by them", () => {
    const withLen = allMessages.filter((d) =>
      d.kinds.some((k) => k === ArgKind.STRING || k === ArgKind.ARRAY),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: withLen.length - 1 }).chain((k) => {
          const desc = withLen[k] as MessageDesc;
          return fc.tuple(fc.constant(desc), argsFor(desc));
        }),
        fc.integer({ min: 0xffff0000, max: 0xffffffff }),
        ([desc, args], huge) => {
          const first = desc.kinds.findIndex((k) => k === ArgKind.STRING || k === ArgKind.ARRAY);
          const a = args.map((x, i) =>
            i === first && desc.kinds[i] === ArgKind.STRING && x === null ? "x" : x,
          );
          const { bytes, fds } = encode(desc, a, 5);
          // The length word of the first string/array: after the words of the args before it.
          let off = 8;
          for (let i = 0; i < first; i++) {
            const k = desc.kinds[i];
            if (k === ArgKind.FD) continue;
            if (k === ArgKind.STRING)
              off += 4 + (a[i] === null ? 0 : (Buffer.byteLength(a[i] as string) + 4) & ~3);
            else if (k === ArgKind.ARRAY) off += 4 + (((a[i] as Uint8Array).length + 3) & ~3);
            else off += 4;
          }
          new DataView(bytes.buffer).setUint32(off, huge, true);
          expect(() => decodeOne(desc, bytes, fds)).toThrow(/message too short.*length \d+/);
        },
      ),
      opts(2000),
    );
  });

  it("fd count mismatches: too few is an error that keeps the queue; extra fds stay queued", () => {
    const withFds = allMessages.filter((d) => d.fdCount > 0);
    expect(withFds.length).toBeGreaterThan(5);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: withFds.length - 1 }).chain((k) => {
          const desc = withFds[k] as MessageDesc;
          return fc.tuple(fc.constant(desc), argsFor(desc), fc.integer({ min: -desc.fdCount, max: 3 }));
        }),
        ([desc, args, delta]) => {
          const { bytes, fds } = encode(desc, args, 5);
          const given = delta < 0 ? fds.slice(0, fds.length + delta) : [...fds, ...Array(delta).fill(99)];
          const f = new MessageFramer({ maxMessageSize: 65532 });
          f.push(bytes);
          const v = f.next();
          if (v === NEED_MORE) throw new Error("NEED_MORE");
          const q = new FdQueue();
          for (const fd of given) q.push(fd);
          const out = new ArgValues();
          if (delta < 0) {
            expect(() => decodeArgs(v, desc, out, q, null, Side.CLIENT)).toThrow(/file descriptor expected/);
            expect(q.length).toBe(given.length);
          } else {
            decodeArgs(v, desc, out, q, null, Side.CLIENT);
            q.consume(desc.fdCount);
            expect(q.length).toBe(delta);
          }
        },
      ),
      opts(1000),
    );
  });

  it("new ids on the wrong side of 0xff000000 are rejected for both directions", () => {
    const withNew = allMessages.filter((d) => d.newIdIndex >= 0);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: withNew.length - 1 }).chain((k) => {
          const desc = withNew[k] as MessageDesc;
          return fc.tuple(fc.constant(desc), argsFor(desc), fc.boolean());
        }),
        ([desc, args, asClient]) => {
          const a = [...args];
          // The id the sender may not use: a server id from a client, a client id from the server.
          a[desc.newIdIndex] = asClient ? SERVER_ID_START + 0 : 2;
          const { bytes, fds } = encode(desc, a, 5);
          const f = new MessageFramer({ maxMessageSize: 65532 });
          f.push(bytes);
          const v = f.next();
          if (v === NEED_MORE) throw new Error("NEED_MORE");
          const q = new FdQueue();
          for (const fd of fds) q.push(fd);
          const map = new ObjectMap(registry);
          expect(() =>
            decodeArgs(v, desc, new ArgValues(), q, map, asClient ? Side.CLIENT : Side.SERVER),
          ).toThrow(/not a valid new object id/);
          // ...and the right side's next id is accepted.
          a[desc.newIdIndex] = asClient ? 2 : SERVER_ID_START;
          const ok = encode(desc, a, 5);
          const f2 = new MessageFramer({ maxMessageSize: 65532 });
          f2.push(ok.bytes);
          const v2 = f2.next();
          if (v2 === NEED_MORE) throw new Error("NEED_MORE");
          decodeArgs(v2, desc, new ArgValues(), q, map, asClient ? Side.CLIENT : Side.SERVER);
        },
      ),
      opts(1000),
    );
  });

  it("garbage in either direction ends in NEED_MORE or a typed error, in bounded steps", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 64 }),
        fc.boolean(),
        fc.nat(4),
        (ws, events, nfds) => {
          const conn = new WireConnection(registry, { maxMessageSize: 4096 });
          const dir = events ? Direction.EVENT : Direction.REQUEST;
          // Bias towards plausible headers so decoding, not just framing, is exercised.
          const w = Uint32Array.from(ws);
          for (let i = 1; i < w.length; i += 3)
            w[i] = (((w[i] as number) % 64) << 18) | ((w[i] as number) & 3);
          if (w.length > 0) w[0] = ((w[0] as number) % 4) + 1;
          conn.framer(dir).push(new Uint8Array(w.buffer));
          for (let i = 0; i < nfds; i++) conn.fdQueue(dir).push(100 + i);
          let steps = 0;
          try {
            while (conn.next(dir) !== NEED_MORE) {
              steps++;
              expect(steps).toBeLessThanOrEqual(ws.length / 2 + 1);
            }
          } catch (e) {
            expect(e).toBeInstanceOf(CrosswayError);
          }
          conn.drainFds();
        },
      ),
      opts(5000),
    );
  });
});
