// Copies damaged rectangles of a client's wl_shm buffer into the host blob that mirrors its pool.
import type { BlobMapping } from "../../crossdomain/virtgpu.ts";
import { native } from "../../native.ts";
import type { Rect } from "./damage.ts";

/** Where a wl_buffer lives in its pool (wl_shm_pool.create_buffer's arguments). */
export interface ShmBufferLayout {
  readonly offset: number;
  readonly width: number;
  readonly height: number;
  readonly stride: number;
  /** Bytes per pixel, or 0 for formats we do not know: then damage is copied as whole rows, always correct. */
  readonly bpp: number;
}

/** The client's side of a pool: its fd, and a read-only mapping of it when the fd could be mapped. */
export interface ShmSource {
  readonly fd: number;
  /**
   * The pool mapped read-only, copied from only by native.copyGuarded (a client that shrinks its file makes the
   * copy report failure instead of killing us with SIGBUS). Null when the fd cannot be mapped: then pread.
   */
  readonly mapping: ArrayBuffer | null;
  /** The pool offset where `mapping` starts (a window of the pool); 0 without a mapping. */
  readonly base: number;
}

/** Outcome of a copy: bytes copied, or how far the client's file fell short (it shrank its pool). */
export type CopyResult =
  | { readonly ok: true; readonly bytes: number }
  | { readonly ok: false; readonly at: number };

/**
 * Copies `rects` (buffer pixels, already clamped to the buffer) from the client pool into `dst`, a window of the
 * host blob that mirrors the pool byte for byte (same offsets and strides, because create_buffer is forwarded
 * unchanged): pool offset o is dst.bytes[o - dst.base].
 * Mapped pools are copied by native.copyGuarded (one call per rectangle, the row loop in C); unmappable ones are
 * read with pread, one call per row, which returns short instead of SIGBUS when the client shrank its file.
 */
export function copyRects(
  src: ShmSource,
  dstWindow: Pick<BlobMapping, "bytes" | "base">,
  layout: ShmBufferLayout,
  rects: readonly Rect[],
): CopyResult {
  const dst = dstWindow.bytes;
  const dstBase = dstWindow.base;
  let bytes = 0;
  const { offset, stride } = layout;
  for (const r of rects) {
    if (r.width <= 0 || r.height <= 0) continue;
    // Column span in bytes; unknown formats copy the whole row.
    const x0 = layout.bpp > 0 ? r.x * layout.bpp : 0;
    const span = layout.bpp > 0 ? Math.min(r.width * layout.bpp, stride - x0) : stride;
    const first = offset + r.y * stride + x0;
    const to = first - dstBase;
    if (first < 0 || to < 0 || to + (r.height - 1) * stride + span > dst.byteLength)
      return { ok: false, at: first };
    if (src.mapping !== null) {
      const from = first - src.base;
      if (from < 0 || from + (r.height - 1) * stride + span > src.mapping.byteLength)
        return { ok: false, at: first };
      if (!native.copyGuarded(src.mapping, from, dst, to, span, r.height, stride, stride)) {
        return { ok: false, at: first };
      }
      bytes += span * r.height;
      continue;
    }
    if (span === stride) {
      // Whole rows are one contiguous block: one read for all of them.
      const len = r.height * stride;
      const res = readInto(src, dst, dstBase, first, len);
      if (res !== len) return { ok: false, at: first + res };
      bytes += len;
      continue;
    }
    for (let row = 0; row < r.height; row++) {
      const at = first + row * stride;
      const res = readInto(src, dst, dstBase, at, span);
      if (res !== span) return { ok: false, at: at + res };
      bytes += span;
    }
  }
  return { ok: true, bytes };
}

/** Reads pool bytes [at, at + len) into the window `dst` (which starts at pool offset `dstBase`). */
function readInto(src: ShmSource, dst: Uint8Array, dstBase: number, at: number, len: number): number {
  let done = 0;
  while (done < len) {
    const n = native.pread(src.fd, dst, at - dstBase + done, len - done, at + done);
    if (n <= 0) break; // 0 = end of file: the client shrank the pool under its own buffer
    done += n;
  }
  return done;
}

/** A DRM fourcc code from its four characters (drm_fourcc.h's fourcc_code, little-endian packing). */
function fourcc(code: string): number {
  return (
    (code.charCodeAt(0) |
      (code.charCodeAt(1) << 8) |
      (code.charCodeAt(2) << 16) |
      (code.charCodeAt(3) << 24)) >>>
    0
  );
}

/**
 * Bytes per pixel of single-plane wl_shm formats (wayland.xml wl_shm.format: 0 and 1 are ARGB8888/XRGB8888,
 * every other value is the DRM fourcc). Multi-planar YUV formats are absent on purpose: they copy whole rows.
 */
const BPP = new Map<number, number>([
  [0, 4],
  [1, 4],
  ...[
    "AB24",
    "XB24",
    "RA24",
    "RX24",
    "BA24",
    "BX24",
    "AR30",
    "XR30",
    "AB30",
    "XB30",
    "RA30",
    "RX30",
    "BA30",
    "BX30",
  ].map((c): [number, number] => [fourcc(c), 4]),
  ...["RG24", "BG24"].map((c): [number, number] => [fourcc(c), 3]),
  ...["RG16", "BG16", "AR12", "XR12", "AB12", "XB12", "AR15", "XR15", "AB15", "XB15", "GR88"].map(
    (c): [number, number] => [fourcc(c), 2],
  ),
  ...["R8  ", "RGB8", "BGR8"].map((c): [number, number] => [fourcc(c), 1]),
  ...["AB4H", "XB4H", "AB48", "XB48"].map((c): [number, number] => [fourcc(c), 8]),
]);

/** Bytes per pixel of a wl_shm format, or 0 when unknown (then damage is copied as whole rows). */
export function shmFormatBpp(format: number): number {
  return BPP.get(format >>> 0) ?? 0;
}
