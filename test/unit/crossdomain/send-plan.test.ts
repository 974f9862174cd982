// SEND planning (src/crossdomain/send-plan.ts): a fast-check property over random batches of messages with fds and
// pipes, asserting the ordering rule and every per-SEND limit; plus the issue-12 example and the refusals.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_SEND_RECV_SIZE } from "../../../src/crossdomain/protocol.ts";
import { type PlanItem, planSends } from "../../../src/crossdomain/send-plan.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

/** A batch: messages of `size` bytes, each with `blobs` blob fds and maybe one pipe (wl_data_offer.receive). */
const batch = fc.array(
  fc.record({
    size: fc.integer({ min: 8, max: 5000 }).map((n) => n & ~3),
    blobs: fc.integer({ min: 0, max: 6 }),
    pipe: fc.boolean(),
  }),
  { minLength: 1, maxLength: 80 },
);

describe("planSends", () => {
  it("property: every item on a SEND that starts before its message ends, and every limit kept", () => {
    fc.assert(
      fc.property(batch, fc.constantFrom(28, 4), (msgs, maxIdentifiers) => {
        const items: PlanItem[] = [];
        let len = 0;
        for (const m of msgs) {
          len += m.size;
          for (let b = 0; b < m.blobs; b++) items.push({ pipe: false, end: len });
          if (m.pipe) items.push({ pipe: true, end: len });
        }
        const plan = planSends(len, items, { maxBytes: MAX_SEND_RECV_SIZE, maxIdentifiers });
        // Contiguous cover of the bytes and the items, in order.
        expect(plan[0]?.start).toBe(0);
        expect(plan.at(-1)?.end).toBe(len);
        expect(plan.at(-1)?.lastItem).toBe(items.length);
        let next = 0;
        let nextItem = 0;
        for (const s of plan) {
          expect(s.start).toBe(next);
          expect(s.firstItem).toBe(nextItem);
          expect(s.end - s.start).toBeGreaterThanOrEqual(1);
          expect(s.end - s.start).toBeLessThanOrEqual(MAX_SEND_RECV_SIZE);
          expect(s.lastItem - s.firstItem).toBeLessThanOrEqual(maxIdentifiers);
          let pipes = 0;
          for (let i = s.firstItem; i < s.lastItem; i++) {
            if (items[i]!.pipe) pipes++;
            // The ordering rule: the SEND's first byte (where the host's sendmsg attaches the fds) is inside or
            // before the item's message.
            expect(s.start).toBeLessThan(items[i]!.end);
          }
          expect(pipes).toBeLessThanOrEqual(1);
          next = s.end;
          nextItem = s.lastItem;
        }
      }),
      { numRuns: 500 },
    );
  });

  it("issue 12's example: receive (48 B, pipe A), receive (40 B, pipe B), 200 B: pipe B starts inside its message", () => {
    const plan = planSends(
      288,
      [
        { pipe: true, end: 48 },
        { pipe: true, end: 88 },
      ],
      { maxBytes: MAX_SEND_RECV_SIZE, maxIdentifiers: 28 },
    );
    expect(plan).toEqual([
      { start: 0, end: 87, firstItem: 0, lastItem: 1 },
      { start: 87, end: 288, firstItem: 1, lastItem: 2 },
    ]);
  });

  it("refuses, naming the item, when items cannot ride on the bytes", () => {
    const limits = { maxBytes: MAX_SEND_RECV_SIZE, maxIdentifiers: 28 };
    expect(() =>
      planSends(
        1,
        [
          { pipe: true, end: 1 },
          { pipe: true, end: 1 },
        ],
        limits,
      ),
    ).toThrow(/2 items need 2 SENDs .* but 1 bytes cannot start them all/);
    expect(() => planSends(0, [{ pipe: false, end: 0 }], limits)).toThrow(
      /item 0 ends its message at byte 0/,
    );
    expect(() =>
      planSends(
        10,
        [
          { pipe: false, end: 8 },
          { pipe: false, end: 4 },
        ],
        limits,
      ),
    ).toThrow(/item 1 ends its message at byte 4, outside \[8, 10\]/);
    expect(planSends(0, [], limits)).toEqual([]);
    // 9 blobs of one 8-byte message with 4 identifiers per SEND: three SENDs, all starting inside the message.
    const nine = Array.from({ length: 9 }, () => ({ pipe: false, end: 16 }));
    expect(planSends(16, nine, { maxBytes: MAX_SEND_RECV_SIZE, maxIdentifiers: 4 })).toEqual([
      { start: 0, end: 14, firstItem: 0, lastItem: 4 },
      { start: 14, end: 15, firstItem: 4, lastItem: 8 },
      { start: 15, end: 16, firstItem: 8, lastItem: 9 },
    ]);
    // A pipe, a blob and a pipe in two messages: the second pipe starts its SEND on the last byte of its message.
    const tight = [
      { pipe: true, end: 4 },
      { pipe: false, end: 8 },
      { pipe: true, end: 8 },
    ];
    expect(planSends(8, tight, { maxBytes: MAX_SEND_RECV_SIZE, maxIdentifiers: 28 })).toEqual([
      { start: 0, end: 7, firstItem: 0, lastItem: 2 },
      { start: 7, end: 8, firstItem: 2, lastItem: 3 },
    ]);
  });
});
