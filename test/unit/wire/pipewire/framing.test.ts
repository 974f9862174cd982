// Framer properties with fast-check: any split of real traffic into reads, with fds arriving early, frames the same.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeHeader, Framer } from "../../../../src/wire/pipewire/framing.ts";
import type { PipeWireWireError } from "../../../../src/wire/pipewire/pod-error.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { loadCaptures } from "../../../helpers/pipewire-fixtures.ts";

useFdLeakCheck();

// The S→C half of the camera capture: it carries fds (AddMem, Transport, SetActivation).
const msgs = (loadCaptures().get("camera.bin") ?? []).filter((m) => m.dir === "S->C");
const stream = Buffer.concat(msgs.map((m) => Buffer.from(m.bytes)));
const totalFds = msgs.reduce((n, m) => n + m.nFds, 0);

describe("Framer", () => {
  it("frames real traffic identically for any split into reads (fds sent with each message's first byte)", () => {
    expect(totalFds).toBeGreaterThan(2);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 64 }), (sizes) => {
        const framer = new Framer(1 << 20, 1024, 64);
        // Fd "numbers" are message indices, so the test can check which message got which fds.
        const fdAt = new Map<number, number[]>();
        let off = 0;
        msgs.forEach((m, i) => {
          fdAt.set(
            off,
            Array.from({ length: m.nFds }, () => i),
          );
          off += m.bytes.length;
        });
        const got: Array<{ size: number; fds: number[] }> = [];
        let pos = 0;
        let k = 0;
        while (pos < stream.length) {
          const n = Math.min(sizes[k++ % sizes.length] as number, stream.length - pos);
          const fds: number[] = [];
          for (let p = pos; p < pos + n; p++) fds.push(...(fdAt.get(p) ?? []));
          framer.push(stream.subarray(pos, pos + n), fds);
          pos += n;
          for (let f = framer.next(); f !== null; f = framer.next()) got.push({ size: f.size, fds: f.fds });
        }
        expect(got.length).toBe(msgs.length);
        got.forEach((g, i) => {
          expect(g.size).toBe((msgs[i] as { bytes: Uint8Array }).bytes.length - 16);
          expect(g.fds).toEqual(Array.from({ length: (msgs[i] as { nFds: number }).nFds }, () => i));
        });
        expect(framer.pending).toBe(0);
        expect(framer.queuedFds).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it("rejects oversize headers, fds a header does not own up to, and fds from a peer that may send none", () => {
    const big = new Framer(1024);
    big.push(encodeHeader(0, 2, 2048, 0, 0));
    expect(() => big.next()).toThrow(/oversize/);
    const lying = new Framer(1024);
    lying.push(new Uint8Array([...encodeHeader(0, 1, 8, 0, 4), 0, 0, 0, 0, 14, 0, 0, 0]));
    expect(() => lying.next()).toThrow(/missing-fds/);
    const none = new Framer(1024, 0);
    let err: unknown;
    try {
      none.push(encodeHeader(0, 2, 0, 0, 0), [7]);
    } catch (e) {
      err = e;
    }
    expect((err as PipeWireWireError).reason).toBe("unexpected-fds");
    expect(none.drainFds()).toEqual([7]);
  });
});
