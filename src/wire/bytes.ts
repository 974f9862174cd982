// Little-endian integer fields on a Uint8Array at any alignment, without a DataView per call (pure; cross-domain
// commands, the device socket frames and the virtgpu ioctl structs are all little-endian).

/** Reads a little-endian u32 at `off`. */
export function getU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/** Writes a little-endian u32 at `off`. */
export function setU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** Reads a little-endian i32 at `off`. */
export function getI32(b: Uint8Array, off: number): number {
  return getU32(b, off) | 0;
}

/** Reads a little-endian u64 at `off` as a bigint. */
export function getU64(b: Uint8Array, off: number): bigint {
  return BigInt(getU32(b, off)) | (BigInt(getU32(b, off + 4)) << 32n);
}

/** Writes a little-endian u64 at `off`. */
export function setU64(b: Uint8Array, off: number, v: bigint): void {
  setU32(b, off, Number(v & 0xffffffffn));
  setU32(b, off + 4, Number((v >> 32n) & 0xffffffffn));
}

/** Reads a little-endian u64 that must fit in a JS number (sizes, offsets). */
export function getU64Number(b: Uint8Array, off: number): number {
  return getU32(b, off) + getU32(b, off + 4) * 0x100000000;
}

/** Writes a non-negative integer < 2^53 as a little-endian u64. */
export function setU64Number(b: Uint8Array, off: number, v: number): void {
  setU32(b, off, v >>> 0);
  setU32(b, off + 4, Math.floor(v / 0x100000000) >>> 0);
}

/** Below this many bytes a plain loop beats subarray + set (a typed-array allocation and a builtin call). */
const SMALL_COPY = 64;

/** Copies `src[srcOff, srcOff + len)` to `dst` at `dstOff` (distinct buffers); small copies allocate nothing. */
export function copyBytes(
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  if (len <= SMALL_COPY) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
    return;
  }
  dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}
