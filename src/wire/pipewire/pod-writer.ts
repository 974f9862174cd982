// SPA POD encoder: exact size first, then one write into a zeroed buffer (so all padding is zero, as builder.h does).
import { type Pod, type PodArrayValue, type PodScalar, PodType, SCALAR_CHILD_SIZE } from "./pod-types.ts";

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

const round8 = (n: number): number => (n + 7) & ~7;

function scalarType(s: PodScalar): number {
  switch (s.t) {
    case "bool":
      return PodType.Bool;
    case "id":
      return PodType.Id;
    case "int":
      return PodType.Int;
    case "long":
      return PodType.Long;
    case "float":
      return PodType.Float;
    case "double":
      return PodType.Double;
    case "rect":
      return PodType.Rectangle;
    default:
      return PodType.Fraction;
  }
}

/** Body size of a POD (without header and padding). Strings are measured in UTF-8 bytes plus the NUL. */
export function podBodySize(p: Pod): number {
  switch (p.t) {
    case "none":
      return 0;
    case "bool":
    case "id":
    case "int":
    case "float":
      return 4;
    case "long":
    case "double":
    case "rect":
    case "frac":
    case "fd":
      return 8;
    case "string":
      return utf8.encode(p.v).length + 1;
    case "bytes":
    case "bitmap":
      return p.v.length;
    case "array":
      return arrayBodySize(p);
    case "struct": {
      let n = 0;
      for (const f of p.fields) n += round8(8 + podBodySize(f));
      return n;
    }
    case "object": {
      let n = 8;
      for (const pr of p.props) n += 8 + round8(8 + podBodySize(pr.value));
      return n;
    }
    case "sequence": {
      let n = 8;
      for (const c of p.controls) n += 8 + round8(8 + podBodySize(c.value));
      return n;
    }
    case "pointer":
      return 16;
    case "choice": {
      if (p.childType === PodType.Array) {
        const first = p.values[0] as PodArrayValue | undefined;
        return 16 + (first === undefined ? 0 : arrayBodySize(first) * p.values.length);
      }
      return 16 + (SCALAR_CHILD_SIZE.get(p.childType) ?? 0) * p.values.length;
    }
  }
}

function arrayBodySize(a: PodArrayValue): number {
  return 8 + (SCALAR_CHILD_SIZE.get(a.childType) ?? 0) * a.values.length;
}

/** Size of a whole POD including header and padding. */
export function podSize(p: Pod): number {
  return round8(8 + podBodySize(p));
}

/** Writes PODs into a pre-zeroed buffer. */
class PodWriter {
  readonly view: DataView;
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, LITTLE_ENDIAN);
  }

  scalar(at: number, s: PodScalar): void {
    const v = this.view;
    switch (s.t) {
      case "bool":
        v.setInt32(at, s.v ? 1 : 0, LITTLE_ENDIAN);
        break;
      case "id":
        v.setUint32(at, s.v >>> 0, LITTLE_ENDIAN);
        break;
      case "int":
        v.setInt32(at, s.v | 0, LITTLE_ENDIAN);
        break;
      case "long":
        v.setBigInt64(at, s.v, LITTLE_ENDIAN);
        break;
      case "float":
        v.setFloat32(at, s.v, LITTLE_ENDIAN);
        break;
      case "double":
        v.setFloat64(at, s.v, LITTLE_ENDIAN);
        break;
      case "rect":
        v.setUint32(at, s.w >>> 0, LITTLE_ENDIAN);
        v.setUint32(at + 4, s.h >>> 0, LITTLE_ENDIAN);
        break;
      case "frac":
        v.setUint32(at, s.num >>> 0, LITTLE_ENDIAN);
        v.setUint32(at + 4, s.denom >>> 0, LITTLE_ENDIAN);
        break;
    }
  }

  arrayBody(at: number, a: PodArrayValue): void {
    const cs = SCALAR_CHILD_SIZE.get(a.childType) ?? 0;
    this.u32(at, cs);
    this.u32(at + 4, a.childType);
    let o = at + 8;
    for (const e of a.values) {
      this.scalar(o, e);
      o += cs;
    }
  }

  /** Writes `p` at `at`; returns the offset after its padding. */
  write(at: number, p: Pod): number {
    const size = podBodySize(p);
    const body = at + 8;
    this.u32(at, size);
    switch (p.t) {
      case "none":
        this.u32(at + 4, PodType.None);
        break;
      case "string":
        this.u32(at + 4, PodType.String);
        // encodeInto writes exactly size-1 bytes; the NUL and padding are already zero.
        utf8.encodeInto(p.v, this.bytes.subarray(body, body + size - 1));
        break;
      case "bytes":
      case "bitmap":
        this.u32(at + 4, p.t === "bytes" ? PodType.Bytes : PodType.Bitmap);
        this.bytes.set(p.v, body);
        break;
      case "array":
        this.u32(at + 4, PodType.Array);
        this.arrayBody(body, p);
        break;
      case "struct": {
        this.u32(at + 4, PodType.Struct);
        let o = body;
        for (const f of p.fields) o = this.write(o, f);
        break;
      }
      case "object": {
        this.u32(at + 4, PodType.Object);
        this.u32(body, p.objectType);
        this.u32(body + 4, p.objectId);
        let o = body + 8;
        for (const pr of p.props) {
          this.u32(o, pr.key);
          this.u32(o + 4, pr.flags);
          o = this.write(o + 8, pr.value);
        }
        break;
      }
      case "sequence": {
        this.u32(at + 4, PodType.Sequence);
        this.u32(body, p.unit);
        let o = body + 8;
        for (const c of p.controls) {
          this.u32(o, c.offset);
          this.u32(o + 4, c.type);
          o = this.write(o + 8, c.value);
        }
        break;
      }
      case "pointer":
        this.u32(at + 4, PodType.Pointer);
        this.u32(body, p.pointerType);
        this.view.setBigUint64(body + 8, p.value, LITTLE_ENDIAN);
        break;
      case "fd":
        this.u32(at + 4, PodType.Fd);
        this.view.setBigInt64(body, p.v, LITTLE_ENDIAN);
        break;
      case "choice": {
        this.u32(at + 4, PodType.Choice);
        this.u32(body, p.choiceType);
        this.u32(body + 4, p.flags);
        this.u32(body + 12, p.childType);
        let o = body + 16;
        if (p.childType === PodType.Array) {
          const cs = p.values.length === 0 ? 0 : arrayBodySize(p.values[0] as PodArrayValue);
          this.u32(body + 8, cs);
          for (const v of p.values) {
            this.arrayBody(o, v as PodArrayValue);
            o += cs;
          }
        } else {
          const cs = SCALAR_CHILD_SIZE.get(p.childType) ?? 0;
          this.u32(body + 8, cs);
          for (const v of p.values) {
            this.scalar(o, v as PodScalar);
            o += cs;
          }
        }
        break;
      }
      default:
        this.u32(at + 4, scalarType(p));
        this.scalar(body, p);
    }
    return at + round8(8 + size);
  }
}

/** Writes `p` into `out` at `offset` (the region must be zeroed); returns the offset after the POD's padding. */
export function writePod(out: Uint8Array, offset: number, p: Pod): number {
  return new PodWriter(out).write(offset, p);
}

/** Encodes one POD into a new buffer. */
export function encodePod(p: Pod): Uint8Array {
  const out = new Uint8Array(podSize(p));
  writePod(out, 0, p);
  return out;
}
