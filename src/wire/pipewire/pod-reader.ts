// Strict SPA POD decoder: every check of pipewire.md §2.4 (items 2-13) while building a value tree.
import { podError } from "./pod-error.ts";
import {
  CHOICE_MIN_VALUES,
  FIXED_BODY_SIZE,
  KNOWN_PROP_FLAGS,
  POD_MAX_BODY,
  type Pod,
  type PodArrayValue,
  type PodControl,
  type PodProp,
  type PodScalar,
  PodType,
  podTypeName,
  SCALAR_CHILD_SIZE,
} from "./pod-types.ts";

/** Limits of the strict decoder; every field has a default in {@link STRICT_POD_LIMITS}. */
export interface PodLimits {
  /** Deepest nesting; the payload Struct is depth 0. */
  readonly maxDepth: number;
  /** Most PODs plus array/choice elements in one decode call. */
  readonly maxPods: number;
  /** Longest string body in bytes, including the NUL. */
  readonly maxString: number;
  /** Most elements in one Array or Choice. */
  readonly maxElements: number;
  /** Sequence is MIDI/control data: denied in the filter's profiles (§2.4 item 10). */
  readonly allowSequence: boolean;
  /** Pointer carries a process address: denied on the wire (§2.4 item 11). */
  readonly allowPointer: boolean;
}

/**
 * The filter's limits: depth 8 and 4096 PODs (§2.4 item 13), 4 KiB strings (values of dict items; keys are
 * capped lower by the message schema), 256 array elements (§2.4 item 6).
 */
export const STRICT_POD_LIMITS: PodLimits = {
  maxDepth: 8,
  maxPods: 4096,
  maxString: 4096,
  maxElements: 256,
  allowSequence: false,
  allowPointer: false,
};

/**
 * Limits for messages from a PipeWire daemon (server→client): its own messages carry long property values and big
 * param lists, so depth, counts and strings are looser than {@link STRICT_POD_LIMITS}; Sequence and Pointer stay
 * denied.
 */
export const DAEMON_POD_LIMITS: PodLimits = {
  maxDepth: 16,
  maxPods: 65536,
  maxString: 65536,
  maxElements: 4096,
  allowSequence: false,
  allowPointer: false,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Per-decode state: the buffer view, the running POD count and every Fd index met (for §2.4 item 12). */
export class PodReader {
  readonly view: DataView;
  readonly bytes: Uint8Array;
  readonly limits: PodLimits;
  /** Fd indices in the order met; the message layer checks them against the header's n_fds. */
  readonly fdRefs: bigint[] = [];
  private pods = 0;

  constructor(bytes: Uint8Array, limits: PodLimits = STRICT_POD_LIMITS) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.limits = limits;
  }

  u32(off: number): number {
    return this.view.getUint32(off, LITTLE_ENDIAN);
  }

  /**
   * Decodes the POD at `off`, which must lie inside [off, end) of this reader's buffer with its padding.
   * Returns the POD and the offset after its padding. Offsets are relative to the reader's buffer, whose start
   * is the alignment base (the payload start, as in `parser.h` spa_pod_parser_read_header).
   */
  read(off: number, end: number, depth = 0): { pod: Pod; next: number } {
    if (depth > this.limits.maxDepth)
      throw podError("depth", off, `nesting deeper than ${this.limits.maxDepth}`);
    if (off % 8 !== 0) throw podError("misaligned", off, "POD does not start 8-aligned");
    if (off + 8 > end) throw podError("truncated-header", off, `POD header needs 8 bytes, ${end - off} left`);
    const size = this.u32(off);
    const type = this.u32(off + 4);
    if (size >= POD_MAX_BODY) throw podError("too-large", off, `${podTypeName(type)} body of ${size} bytes`);
    const body = off + 8;
    // size < 2^20, so these sums stay far below 2^53.
    const next = body + ((size + 7) & ~7);
    if (next > end)
      throw podError(
        "overflows-container",
        off,
        `${podTypeName(type)} of ${size} bytes exceeds its container`,
      );
    this.countPods(1, off);
    for (let i = body + size; i < next; i++) {
      if (this.bytes[i] !== 0) throw podError("nonzero-padding", i, `after ${podTypeName(type)}`);
    }
    const fixed = FIXED_BODY_SIZE.get(type);
    if (fixed !== undefined && size !== fixed) {
      throw podError(
        "bad-fixed-size",
        off,
        `${podTypeName(type)} with a ${size}-byte body (must be ${fixed})`,
      );
    }
    return { pod: this.body(type, body, size, depth, off), next };
  }

  private countPods(n: number, off: number): void {
    this.pods += n;
    if (this.pods > this.limits.maxPods)
      throw podError("pod-count", off, `more than ${this.limits.maxPods} PODs`);
  }

  private scalar(type: number, at: number): PodScalar {
    const v = this.view;
    switch (type) {
      case PodType.Bool:
        return { t: "bool", v: v.getInt32(at, LITTLE_ENDIAN) !== 0 };
      case PodType.Id:
        return { t: "id", v: v.getUint32(at, LITTLE_ENDIAN) };
      case PodType.Int:
        return { t: "int", v: v.getInt32(at, LITTLE_ENDIAN) };
      case PodType.Long:
        return { t: "long", v: v.getBigInt64(at, LITTLE_ENDIAN) };
      case PodType.Float:
        return { t: "float", v: v.getFloat32(at, LITTLE_ENDIAN) };
      case PodType.Double:
        return { t: "double", v: v.getFloat64(at, LITTLE_ENDIAN) };
      case PodType.Rectangle:
        return { t: "rect", w: v.getUint32(at, LITTLE_ENDIAN), h: v.getUint32(at + 4, LITTLE_ENDIAN) };
      default:
        return { t: "frac", num: v.getUint32(at, LITTLE_ENDIAN), denom: v.getUint32(at + 4, LITTLE_ENDIAN) };
    }
  }

  private body(type: number, body: number, size: number, depth: number, off: number): Pod {
    switch (type) {
      case PodType.None:
        return { t: "none" };
      case PodType.Bool:
      case PodType.Id:
      case PodType.Int:
      case PodType.Float:
      case PodType.Long:
      case PodType.Double:
      case PodType.Rectangle:
      case PodType.Fraction:
        return this.checkedScalar(type, body, off);
      case PodType.String:
        return this.string(body, size, off);
      case PodType.Bytes:
        return { t: "bytes", v: this.bytes.slice(body, body + size) };
      case PodType.Bitmap:
        return { t: "bitmap", v: this.bytes.slice(body, body + size) };
      case PodType.Array:
        return this.array(body, size, off);
      case PodType.Struct: {
        const fields: Pod[] = [];
        const end = body + size;
        let at = body;
        while (at < end) {
          const r = this.read(at, end, depth + 1);
          fields.push(r.pod);
          at = r.next;
        }
        // read() never returns past `end`, and a Struct body that is not a multiple of 8 leaves a gap that the
        // next read rejects as truncated or overflowing: the children therefore tile the body exactly (item 8).
        return { t: "struct", fields };
      }
      case PodType.Object:
        return this.object(body, size, depth, off);
      case PodType.Sequence:
        return this.sequence(body, size, depth, off);
      case PodType.Pointer: {
        if (!this.limits.allowPointer)
          throw podError("pointer-denied", off, "Pointer PODs are not allowed on the wire");
        if (size !== 16)
          throw podError("bad-fixed-size", off, `Pointer with a ${size}-byte body (must be 16)`);
        if (this.u32(body + 4) !== 0) throw podError("nonzero-padding", body + 4, "Pointer padding word");
        return {
          t: "pointer",
          pointerType: this.u32(body),
          value: this.view.getBigUint64(body + 8, LITTLE_ENDIAN),
        };
      }
      case PodType.Fd: {
        const v = this.view.getBigInt64(body, LITTLE_ENDIAN);
        this.fdRefs.push(v);
        return { t: "fd", v };
      }
      case PodType.Choice:
        return this.choice(body, size, off);
      case PodType.Pod:
        throw podError("pod-type-denied", off, "type Pod (20) has no wire form");
      default:
        throw podError("unknown-type", off, `unknown POD type ${type}`);
    }
  }

  private string(body: number, size: number, off: number): Pod {
    if (size < 1) throw podError("string-empty", off, "String with an empty body (no NUL)");
    if (size > this.limits.maxString) throw podError("string-too-long", off, `String of ${size} bytes`);
    const last = body + size - 1;
    if (this.bytes[last] !== 0) throw podError("string-no-nul", off, "String does not end with NUL");
    const nul = this.bytes.indexOf(0, body);
    if (nul !== last) throw podError("string-interior-nul", nul, "String has a NUL before its end");
    try {
      return { t: "string", v: utf8.decode(this.bytes.subarray(body, last)) };
    } catch {
      throw podError("string-not-utf8", off, "String is not valid UTF-8");
    }
  }

  /**
   * A scalar with the value checks a faithful re-encoding needs: Bool is 0 or 1 (builder.h writes `val ? 1 : 0`)
   * and floats are finite (NaN bit patterns are not preserved by JavaScript numbers, and no param needs them).
   */
  private checkedScalar(type: number, at: number, off: number): PodScalar {
    if (type === PodType.Bool) {
      const raw = this.view.getUint32(at, LITTLE_ENDIAN);
      if (raw > 1) throw podError("bool-value", off, `Bool with value ${raw}`);
    }
    const v = this.scalar(type, at);
    if ((v.t === "float" || v.t === "double") && !Number.isFinite(v.v)) {
      throw podError("float-not-finite", off, `${v.t} that is NaN or infinite`);
    }
    return v;
  }

  /** Reads `count` packed scalars of `type` (already checked to be a scalar child type). */
  private elements(type: number, at: number, cs: number, count: number, off: number): PodScalar[] {
    if (count > this.limits.maxElements) throw podError("too-many-elements", off, `${count} elements`);
    this.countPods(count, off);
    const out: PodScalar[] = [];
    for (let i = 0; i < count; i++) {
      const where = at + i * cs;
      // Bool/Id/Int/Float elements are 4 bytes with no padding word inside arrays (spa-pod.dox "Array").
      out.push(this.checkedScalar(type, where, off));
    }
    return out;
  }

  /** Validates an array body `{cs, child_type, elements}` of `size` bytes at `at` (§2.4 item 6). */
  private arrayBody(at: number, size: number, off: number): PodArrayValue {
    if (size < 8) throw podError("array-short", off, `Array body of ${size} bytes`);
    const cs = this.u32(at);
    const childType = this.u32(at + 4);
    const want = SCALAR_CHILD_SIZE.get(childType);
    if (want === undefined) throw podError("array-child-type", off, `Array of ${podTypeName(childType)}`);
    if (cs !== want)
      throw podError("array-child-size", off, `Array of ${podTypeName(childType)} with child size ${cs}`);
    if ((size - 8) % cs !== 0)
      throw podError("array-ragged", off, `Array body ${size - 8} not a multiple of ${cs}`);
    return { t: "array", childType, values: this.elements(childType, at + 8, cs, (size - 8) / cs, off) };
  }

  private array(body: number, size: number, off: number): Pod {
    return this.arrayBody(body, size, off);
  }

  private choice(body: number, size: number, off: number): Pod {
    if (size < 16) throw podError("choice-short", off, `Choice body of ${size} bytes`);
    const choiceType = this.u32(body);
    const flags = this.u32(body + 4);
    const cs = this.u32(body + 8);
    const childType = this.u32(body + 12);
    if (choiceType > 4) throw podError("choice-type", off, `Choice type ${choiceType}`);
    if (flags !== 0) throw podError("choice-flags", off, `Choice flags ${flags} (must be 0)`);
    const n = cs === 0 ? 0 : (size - 16) / cs;
    if (cs === 0 || !Number.isInteger(n)) throw podError("choice-child-size", off, `Choice child size ${cs}`);
    const min = CHOICE_MIN_VALUES[choiceType] ?? 1;
    if (n < min)
      throw podError("choice-count", off, `Choice type ${choiceType} with ${n} values (needs ${min})`);
    if (n > this.limits.maxElements) throw podError("too-many-elements", off, `Choice with ${n} values`);
    if (childType === PodType.Array) {
      // Choice<Array>: each value is a complete array body of exactly cs bytes (pw-cat's audio position).
      const values: PodArrayValue[] = [];
      for (let i = 0; i < n; i++) values.push(this.arrayBody(body + 16 + i * cs, cs, off));
      this.countPods(n, off);
      return { t: "choice", choiceType, flags, childType, values };
    }
    const want = SCALAR_CHILD_SIZE.get(childType);
    if (want === undefined) throw podError("choice-child-type", off, `Choice of ${podTypeName(childType)}`);
    if (cs !== want)
      throw podError("choice-child-size", off, `Choice of ${podTypeName(childType)} with child size ${cs}`);
    const values = this.elements(childType, body + 16, cs, n, off);
    if (choiceType === 1 || choiceType === 2) checkRange(values, choiceType === 2, off);
    return { t: "choice", choiceType, flags, childType, values };
  }

  private object(body: number, size: number, depth: number, off: number): Pod {
    if (size < 8) throw podError("object-short", off, `Object body of ${size} bytes`);
    const objectType = this.u32(body);
    const objectId = this.u32(body + 4);
    const end = body + size;
    const props: PodProp[] = [];
    const seen = new Set<number>();
    let at = body + 8;
    while (at < end) {
      if (at + 8 > end) throw podError("object-tiling", at, "truncated property header");
      const key = this.u32(at);
      const flags = this.u32(at + 4);
      if (seen.has(key)) throw podError("object-dup-key", at, `property key 0x${key.toString(16)} repeated`);
      seen.add(key);
      if ((flags & ~KNOWN_PROP_FLAGS) !== 0)
        throw podError("object-prop-flags", at, `property flags 0x${flags.toString(16)}`);
      // The value POD starts 8 bytes after the property, so it stays 8-aligned relative to the payload.
      const r = this.read(at + 8, end, depth + 1);
      props.push({ key, flags, value: r.pod });
      at = r.next;
    }
    return { t: "object", objectType, objectId, props };
  }

  private sequence(body: number, size: number, depth: number, off: number): Pod {
    if (!this.limits.allowSequence)
      throw podError("sequence-denied", off, "Sequence PODs are not allowed here");
    if (size < 8) throw podError("sequence-short", off, `Sequence body of ${size} bytes`);
    const unit = this.u32(body);
    if (this.u32(body + 4) !== 0) throw podError("nonzero-padding", body + 4, "Sequence pad word");
    const end = body + size;
    const controls: PodControl[] = [];
    let at = body + 8;
    while (at < end) {
      if (at + 8 > end) throw podError("sequence-tiling", at, "truncated control header");
      const r = this.read(at + 8, end, depth + 1);
      controls.push({ offset: this.u32(at), type: this.u32(at + 4), value: r.pod });
      at = r.next;
    }
    return { t: "sequence", unit, controls };
  }
}

/** Numeric view of a scalar for ordering checks; Rectangle and Fraction are compared per component elsewhere. */
function num(s: PodScalar): number | bigint {
  switch (s.t) {
    case "bool":
      return s.v ? 1 : 0;
    case "rect":
    case "frac":
      return 0;
    default:
      return s.v;
  }
}

function le(a: PodScalar, b: PodScalar): boolean {
  if (a.t === "rect" && b.t === "rect") return a.w <= b.w && a.h <= b.h;
  if (a.t === "frac" && b.t === "frac") {
    // a.num/a.denom <= b.num/b.denom, without division; denominators are checked non-zero by the caller.
    return BigInt(a.num) * BigInt(b.denom) <= BigInt(b.num) * BigInt(a.denom);
  }
  return num(a) <= num(b);
}

function show(s: PodScalar): string {
  return s.t === "rect" ? `${s.w}x${s.h}` : s.t === "frac" ? `${s.num}/${s.denom}` : String(s.v);
}

/** Range/Step semantics (§2.4 item 7): min <= default <= max, and step > 0. */
function checkRange(values: readonly PodScalar[], step: boolean, off: number): void {
  const [def, min, max, st] = values as [PodScalar, PodScalar, PodScalar, PodScalar | undefined];
  for (const v of values) {
    if (v.t === "frac" && v.denom === 0)
      throw podError("choice-range", off, "Fraction with denominator 0 in a range");
    if ((v.t === "float" || v.t === "double") && !Number.isFinite(v.v)) {
      throw podError("choice-range", off, "non-finite value in a range");
    }
  }
  // Only min <= max is enforced: GStreamer's pipewiresrc on 0.3.65 announces a Buffers range with default 0 and
  // min 1 (observed through this filter), and spa_pod_filter clamps defaults; an empty range is never valid
  // (PipeWire fff8f63c "reject impossible ranges after filtering").
  if (!le(min, max)) {
    throw podError("choice-range", off, `range [${show(min)}, ${show(max)}] is empty (default ${show(def)})`);
  }
  if (step && st !== undefined) {
    const positive =
      st.t === "rect"
        ? st.w > 0 && st.h > 0
        : st.t === "frac"
          ? st.num > 0
          : (num(st) as number | bigint) > 0;
    if (!positive) throw podError("choice-range", off, "step is not positive");
  }
}

/** Decodes one POD at `offset` in `bytes` with the strict checks; see {@link PodReader.read}. */
export function decodePod(
  bytes: Uint8Array,
  offset = 0,
  end = bytes.length,
  limits = STRICT_POD_LIMITS,
): Pod {
  return new PodReader(bytes, limits).read(offset, end).pod;
}
