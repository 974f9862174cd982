// A corpus of malformed message payloads, one per check of pipewire.md §2.4, built with our own POD encoder.
import { type Pod, pod } from "../../src/wire/pipewire/pod-types.ts";
import { encodePod } from "../../src/wire/pipewire/pod-writer.ts";

/** One malformed payload: what it breaks, the reason code the validator must report, and the bytes. */
export interface MalformedCase {
  readonly name: string;
  readonly reason: string;
  readonly payload: Uint8Array;
  /** Fds the header should claim for this case (default 0). */
  readonly nFds?: number;
}

const LE = true;

/** A Struct payload wrapping `inner` raw POD bytes (which must be a multiple of 8 long). */
function structOf(inner: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + inner.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, inner.length, LE);
  v.setUint32(4, 14, LE);
  out.set(inner, 8);
  return out;
}

/** Raw POD bytes: header {size, type} then `body`, padded to 8 with `padByte`. */
function rawPod(type: number, body: Uint8Array, size = body.length, padByte = 0): Uint8Array {
  const total = (8 + body.length + 7) & ~7;
  const out = new Uint8Array(total).fill(padByte);
  const v = new DataView(out.buffer);
  v.setUint32(0, size, LE);
  v.setUint32(4, type, LE);
  out.set(body, 8);
  return out;
}

function u32s(...xs: number[]): Uint8Array {
  const out = new Uint8Array(xs.length * 4);
  const v = new DataView(out.buffer);
  for (let i = 0; i < xs.length; i++) v.setUint32(i * 4, (xs[i] as number) >>> 0, LE);
  return out;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function nested(depth: number): Pod {
  let p: Pod = pod.int(1);
  for (let i = 0; i < depth; i++) p = pod.struct(p);
  return p;
}

/** Every case of §2.4 (items 1-13) as a complete payload a v3 header can carry. */
export function malformedCorpus(): MalformedCase[] {
  const okInt = encodePod(pod.int(3));
  const cases: MalformedCase[] = [
    { name: "payload is an Int, not a Struct", reason: "payload-not-struct", payload: okInt },
    {
      name: "trailing bytes after payload",
      reason: "truncated-header",
      payload: cat(encodePod(pod.struct(pod.int(3))), u32s(0)),
    },
    {
      name: "footer is not a Struct",
      reason: "footer-not-struct",
      payload: cat(encodePod(pod.struct(pod.int(3))), encodePod(pod.int(0))),
    },
    {
      name: "bytes after the footer",
      reason: "trailing-bytes",
      payload: cat(encodePod(pod.struct(pod.int(3))), encodePod(pod.struct()), encodePod(pod.struct())),
    },
    { name: "truncated child header", reason: "truncated-header", payload: rawPod(14, u32s(7)) },
    { name: "child overflows struct", reason: "overflows-container", payload: structOf(u32s(64, 4, 3, 0)) },
    { name: "oversized POD (>= 1 MiB)", reason: "too-large", payload: structOf(u32s(1 << 20, 9)) },
    { name: "Int with an 8-byte body", reason: "bad-fixed-size", payload: structOf(rawPod(4, u32s(3, 0))) },
    { name: "Long with a 4-byte body", reason: "bad-fixed-size", payload: structOf(rawPod(5, u32s(3))) },
    { name: "None with a body", reason: "bad-fixed-size", payload: structOf(rawPod(1, u32s(0))) },
    {
      name: "non-zero padding word of Int",
      reason: "nonzero-padding",
      payload: structOf(cat(u32s(4, 4, 3, 0xdead))),
    },
    {
      name: "non-zero padding after String",
      reason: "nonzero-padding",
      payload: structOf(rawPod(8, new Uint8Array([0x61, 0]), 2, 0x55)),
    },
    {
      name: "String without NUL",
      reason: "string-no-nul",
      payload: structOf(rawPod(8, new Uint8Array([0x61, 0x62]))),
    },
    {
      name: "String with interior NUL",
      reason: "string-interior-nul",
      payload: structOf(rawPod(8, new Uint8Array([0x61, 0, 0x62, 0]))),
    },
    { name: "empty String body", reason: "string-empty", payload: structOf(rawPod(8, new Uint8Array(0))) },
    {
      name: "String not UTF-8",
      reason: "string-not-utf8",
      payload: structOf(rawPod(8, new Uint8Array([0xff, 0xfe, 0]))),
    },
    { name: "Array shorter than its header", reason: "array-short", payload: structOf(rawPod(13, u32s(4))) },
    {
      name: "Array with child size 0",
      reason: "array-child-size",
      payload: structOf(rawPod(13, u32s(0, 3))),
    },
    { name: "Array of Strings", reason: "array-child-type", payload: structOf(rawPod(13, u32s(4, 8, 0x61))) },
    {
      name: "Array ragged body",
      reason: "array-ragged",
      payload: structOf(rawPod(13, cat(u32s(4, 3), new Uint8Array(6)))),
    },
    { name: "Choice with 0 values", reason: "choice-count", payload: structOf(rawPod(19, u32s(1, 0, 4, 4))) },
    { name: "Choice type 9", reason: "choice-type", payload: structOf(rawPod(19, u32s(9, 0, 4, 4, 1))) },
    { name: "Choice flags set", reason: "choice-flags", payload: structOf(rawPod(19, u32s(0, 1, 4, 4, 1))) },
    {
      name: "Choice child size 0",
      reason: "choice-child-size",
      payload: structOf(rawPod(19, u32s(0, 0, 0, 4))),
    },
    {
      name: "Choice of Strings",
      reason: "choice-child-type",
      payload: structOf(rawPod(19, u32s(0, 0, 4, 8, 0x61))),
    },
    {
      name: "Range with min > max",
      reason: "choice-range",
      payload: structOf(rawPod(19, u32s(1, 0, 4, 4, 5, 10, 1))),
    },
    {
      name: "Step with step 0",
      reason: "choice-range",
      payload: structOf(rawPod(19, u32s(2, 0, 4, 4, 5, 1, 10, 0))),
    },
    {
      name: "Object shorter than its header",
      reason: "object-short",
      payload: structOf(rawPod(15, u32s(0x40003))),
    },
    {
      name: "Object with a repeated key",
      reason: "object-dup-key",
      payload: structOf(
        rawPod(15, cat(u32s(0x40003, 3), u32s(1, 0), encodePod(pod.id(2)), u32s(1, 0), encodePod(pod.id(2)))),
      ),
    },
    {
      name: "Object property with unknown flags",
      reason: "object-prop-flags",
      payload: structOf(rawPod(15, cat(u32s(0x40003, 3), u32s(1, 0x100), encodePod(pod.id(2))))),
    },
    {
      name: "Object truncated property",
      reason: "object-tiling",
      payload: structOf(rawPod(15, cat(u32s(0x40003, 3), u32s(1)))),
    },
    { name: "Sequence POD", reason: "sequence-denied", payload: structOf(rawPod(16, u32s(0, 0))) },
    { name: "Pointer POD", reason: "pointer-denied", payload: structOf(rawPod(17, u32s(0, 0, 0x1000, 0))) },
    { name: "Pod-type POD", reason: "pod-type-denied", payload: structOf(rawPod(20, u32s())) },
    { name: "unknown POD type", reason: "unknown-type", payload: structOf(rawPod(77, u32s())) },
    { name: "nesting deeper than 8", reason: "depth", payload: encodePod(nested(12)) },
    {
      name: "more than 4096 PODs",
      reason: "pod-count",
      payload: encodePod(pod.struct(...Array.from({ length: 4200 }, () => pod.none()))),
    },
    { name: "Fd index out of range", reason: "fd-index", payload: encodePod(pod.struct(pod.fd(3))) },
    { name: "Fd index negative (not -1)", reason: "fd-index", payload: encodePod(pod.struct(pod.fd(-2))) },
  ];
  return cases;
}
