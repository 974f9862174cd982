// Unit tests of the strict POD reader and writer: round trips, every §2.4 rejection, real-traffic shapes.
import { describe, expect, it } from "vitest";
import { decodePayload } from "../../../../src/wire/pipewire/framing.ts";
import { PipeWireWireError } from "../../../../src/wire/pipewire/pod-error.ts";
import { decodePod } from "../../../../src/wire/pipewire/pod-reader.ts";
import { type Pod, pod } from "../../../../src/wire/pipewire/pod-types.ts";
import { encodePod } from "../../../../src/wire/pipewire/pod-writer.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { malformedCorpus } from "../../../helpers/pipewire-malformed.ts";

useFdLeakCheck();

describe("POD codec", () => {
  it("round-trips every wire type the filter accepts", () => {
    const samples: Pod[] = [
      pod.none(),
      pod.bool(true),
      pod.id(0xffffffff),
      pod.int(-5),
      pod.long(-(2n ** 62n)),
      pod.float(1.5),
      pod.double(-2.25),
      pod.string("héllo"),
      pod.bytes(new Uint8Array([1, 2, 3])),
      { t: "bitmap", v: new Uint8Array([9]) },
      pod.rect(320, 240),
      pod.frac(30, 1),
      {
        t: "array",
        childType: 3,
        values: [
          { t: "id", v: 3 },
          { t: "id", v: 4 },
        ],
      },
      pod.struct(pod.int(1), pod.string("x")),
      pod.object(0x40003, 3, [{ key: 1, flags: 0, value: pod.id(2) }]),
      pod.fd(-1),
      {
        t: "choice",
        choiceType: 1,
        flags: 0,
        childType: 4,
        values: [
          { t: "int", v: 2 },
          { t: "int", v: 1 },
          { t: "int", v: 32 },
        ],
      },
      {
        t: "choice",
        choiceType: 0,
        flags: 0,
        childType: 13,
        values: [
          {
            t: "array",
            childType: 3,
            values: [
              { t: "id", v: 3 },
              { t: "id", v: 4 },
            ],
          },
        ],
      },
    ];
    for (const p of samples) {
      const bytes = encodePod(p);
      expect(bytes.length % 8).toBe(0);
      expect(decodePod(bytes)).toEqual(p);
      expect(encodePod(decodePod(bytes))).toEqual(bytes);
    }
  });

  it("decodes Sequence and Pointer only when allowed", () => {
    const seq: Pod = { t: "sequence", unit: 0, controls: [{ offset: 0, type: 1, value: pod.int(3) }] };
    const ptr: Pod = { t: "pointer", pointerType: 5, value: 0x1234n };
    const limits = {
      maxDepth: 8,
      maxPods: 100,
      maxString: 100,
      maxElements: 10,
      allowSequence: true,
      allowPointer: true,
    };
    expect(decodePod(encodePod(seq), 0, undefined, limits)).toEqual(seq);
    expect(decodePod(encodePod(ptr), 0, undefined, limits)).toEqual(ptr);
    expect(() => decodePod(encodePod(seq))).toThrow(/sequence-denied/);
    expect(() => decodePod(encodePod(ptr))).toThrow(/pointer-denied/);
  });

  it("accepts Strings carrying None (Node.Info error) and Choice<Array> (pw-cat position)", () => {
    const payload = encodePod(
      pod.struct(pod.none(), {
        t: "choice",
        choiceType: 0,
        flags: 0,
        childType: 13,
        values: [{ t: "array", childType: 3, values: [{ t: "id", v: 3 }] }],
      }),
    );
    expect(decodePayload(payload, 0).body.fields.length).toBe(2);
  });

  it("checks fd references: in range, each fd exactly once", () => {
    expect(decodePayload(encodePod(pod.struct(pod.fd(0), pod.fd(1))), 2).fdRefs).toEqual([0n, 1n]);
    expect(() => decodePayload(encodePod(pod.struct(pod.fd(0), pod.fd(0))), 1)).toThrow(/fd-reused/);
    expect(() => decodePayload(encodePod(pod.struct(pod.int(0))), 1)).toThrow(/fd-unreferenced/);
  });

  describe("rejects every malformed case of §2.4", () => {
    for (const c of malformedCorpus()) {
      it(c.name, () => {
        let err: unknown;
        try {
          decodePayload(c.payload, c.nFds ?? 0);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(PipeWireWireError);
        expect((err as PipeWireWireError).reason).toBe(c.reason);
      });
    }
  });
});
