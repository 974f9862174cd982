// Tests for damage-limited shm copies from real memfds: exact bytes, whole-row fallback, shrunk pools.
import { describe, expect, it } from "vitest";
import { native } from "../../../../src/native.ts";
import { copyRects, shmFormatBpp } from "../../../../src/proxy/wayland/shm-copy.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

function pool(size: number): { fd: number; bytes: Uint8Array } {
  const fd = native.memfdCreate("shm-copy-test", 0);
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + 3) & 0xff;
  native.pwrite(fd, bytes, 0, size, 0);
  return { fd, bytes };
}

/** A destination that is the whole blob (a window at base 0). */
function whole(bytes: Uint8Array): { bytes: Uint8Array; base: number } {
  return { bytes, base: 0 };
}

describe("copyRects", () => {
  const layout = { offset: 64, width: 16, height: 8, stride: 80, bpp: 4 };
  const size = 64 + 8 * 80;

  it("copies exactly the damaged pixels and nothing else", () => {
    const p = pool(size);
    try {
      const dst = new Uint8Array(size);
      const res = copyRects({ fd: p.fd, mapping: null, base: 0 }, whole(dst), layout, [
        { x: 2, y: 3, width: 4, height: 2 },
      ]);
      expect(res).toEqual({ ok: true, bytes: 2 * 16 });
      for (let i = 0; i < size; i++) {
        const rel = i - 64;
        const row = Math.floor(rel / 80);
        const col = rel % 80;
        const inside = rel >= 0 && row >= 3 && row < 5 && col >= 8 && col < 24;
        expect(dst[i], `byte ${i}`).toBe(inside ? p.bytes[i] : 0);
      }
    } finally {
      native.close(p.fd);
    }
  });

  it("copies whole rows for unknown formats", () => {
    const p = pool(size);
    try {
      const dst = new Uint8Array(size);
      const res = copyRects({ fd: p.fd, mapping: null, base: 0 }, whole(dst), { ...layout, bpp: 0 }, [
        { x: 5, y: 1, width: 1, height: 1 },
      ]);
      expect(res).toEqual({ ok: true, bytes: 80 });
      expect(dst.subarray(144, 224)).toEqual(p.bytes.subarray(144, 224));
    } finally {
      native.close(p.fd);
    }
  });

  it("reports a short read when the client shrank its pool, without SIGBUS", () => {
    const p = pool(size);
    try {
      native.ftruncate(p.fd, 100);
      const dst = new Uint8Array(size);
      const res = copyRects({ fd: p.fd, mapping: null, base: 0 }, whole(dst), layout, [
        { x: 0, y: 0, width: 16, height: 8 },
      ]);
      expect(res.ok).toBe(false);
    } finally {
      native.close(p.fd);
    }
  });

  it("refuses rectangles outside the mirror instead of writing past it", () => {
    const p = pool(size);
    try {
      const dst = new Uint8Array(size);
      const res = copyRects({ fd: p.fd, mapping: null, base: 0 }, whole(dst), { ...layout, height: 100 }, [
        { x: 0, y: 90, width: 16, height: 10 },
      ]);
      expect(res.ok).toBe(false);
    } finally {
      native.close(p.fd);
    }
  });

  it("copies from a mapping with the same result, and reports a pool shrunk under it", () => {
    const p = pool(size);
    const map = native.mmap(p.fd, size, 1, 1, 0);
    try {
      const viaPread = new Uint8Array(size);
      const viaMap = new Uint8Array(size);
      const rects = [
        { x: 2, y: 3, width: 4, height: 2 },
        { x: 0, y: 6, width: 16, height: 2 },
      ];
      expect(copyRects({ fd: p.fd, mapping: null, base: 0 }, whole(viaPread), layout, rects)).toEqual({
        ok: true,
        bytes: 2 * 16 + 2 * 64,
      });
      expect(copyRects({ fd: p.fd, mapping: map, base: 0 }, whole(viaMap), layout, rects)).toEqual({
        ok: true,
        bytes: 2 * 16 + 2 * 64,
      });
      expect(viaMap).toEqual(viaPread);
      // Whole pages past the new end fault (bytes past the end inside a page that remains read as zeros, as for
      // any compositor): truncate to 0 so the pool's only page goes.
      native.ftruncate(p.fd, 0);
      expect(
        copyRects({ fd: p.fd, mapping: map, base: 0 }, whole(viaMap), layout, [
          { x: 0, y: 0, width: 16, height: 8 },
        ]).ok,
      ).toBe(false);
    } finally {
      native.munmap(map);
      native.close(p.fd);
    }
  });

  it("copies from a window of the pool mapped at a base offset, and refuses rows outside the window", () => {
    // A 4 MiB pool with its buffer at 3 MiB + 128 bytes: the window starts at 3 MiB (64 KiB aligned), as ShmPool maps.
    const big = 4 * 1024 * 1024;
    const at = 3 * 1024 * 1024 + 128;
    const p = pool(big);
    const deep = { ...layout, offset: at };
    const rows = new Uint8Array(deep.stride * deep.height);
    for (let i = 0; i < rows.length; i++) rows[i] = (i * 7 + 3) & 0xff;
    expect(native.pwrite(p.fd, rows, 0, rows.length, at)).toBe(rows.length);
    const base = 3 * 1024 * 1024;
    const map = native.mmap(p.fd, 64 * 1024, 1, 1, base);
    try {
      const viaPread = new Uint8Array(big);
      const viaMap = new Uint8Array(big);
      const rects = [{ x: 1, y: 2, width: 5, height: 3 }];
      expect(copyRects({ fd: p.fd, mapping: null, base: 0 }, whole(viaPread), deep, rects)).toEqual({
        ok: true,
        bytes: 3 * 20,
      });
      expect(copyRects({ fd: p.fd, mapping: map, base }, whole(viaMap), deep, rects)).toEqual({
        ok: true,
        bytes: 3 * 20,
      });
      expect(viaMap).toEqual(viaPread);
      expect(viaMap.subarray(at + 2 * deep.stride + 4, at + 2 * deep.stride + 24)).toEqual(
        rows.subarray(2 * deep.stride + 4, 2 * deep.stride + 24),
      );
      // A buffer below the window's base is refused, never read from another offset.
      expect(
        copyRects({ fd: p.fd, mapping: map, base }, whole(viaMap), { ...layout, offset: base - 4096 }, rects)
          .ok,
      ).toBe(false);
    } finally {
      native.munmap(map);
      native.close(p.fd);
    }
  });

  it("copies into a window of the host blob at a base offset, and refuses rows outside it", () => {
    // The blob window starts at 3 MiB, as PoolBlob maps it for a buffer at 3 MiB + 128: pool offset o is
    // window byte o - 3 MiB, by pread and by mapping alike.
    const big = 4 * 1024 * 1024;
    const at = 3 * 1024 * 1024 + 128;
    const base = 3 * 1024 * 1024;
    const p = pool(big);
    const deep = { ...layout, offset: at };
    const rows = new Uint8Array(deep.stride * deep.height);
    for (let i = 0; i < rows.length; i++) rows[i] = (i * 5 + 1) & 0xff;
    expect(native.pwrite(p.fd, rows, 0, rows.length, at)).toBe(rows.length);
    const map = native.mmap(p.fd, big, 1, 1, 0);
    try {
      const rects = [{ x: 1, y: 2, width: 5, height: 3 }];
      const viaPread = new Uint8Array(64 * 1024);
      const viaMap = new Uint8Array(64 * 1024);
      expect(copyRects({ fd: p.fd, mapping: null, base: 0 }, { bytes: viaPread, base }, deep, rects)).toEqual(
        {
          ok: true,
          bytes: 3 * 20,
        },
      );
      expect(copyRects({ fd: p.fd, mapping: map, base: 0 }, { bytes: viaMap, base }, deep, rects)).toEqual({
        ok: true,
        bytes: 3 * 20,
      });
      expect(viaMap).toEqual(viaPread);
      const row2 = at - base + 2 * deep.stride;
      expect(viaMap.subarray(row2 + 4, row2 + 24)).toEqual(
        rows.subarray(2 * deep.stride + 4, 2 * deep.stride + 24),
      );
      expect(viaMap.subarray(0, row2 + 4).every((b) => b === 0)).toBe(true);
      // A buffer that starts below the window, or runs past its end, is refused: nothing is written.
      const below = { ...layout, offset: base - 16 * layout.stride };
      expect(copyRects({ fd: p.fd, mapping: map, base: 0 }, { bytes: viaMap, base }, below, rects).ok).toBe(
        false,
      );
      const past = { ...layout, offset: base + 64 * 1024 - 2 * layout.stride };
      expect(copyRects({ fd: p.fd, mapping: null, base: 0 }, { bytes: viaPread, base }, past, rects).ok).toBe(
        false,
      );
      expect(viaMap).toEqual(viaPread);
    } finally {
      native.munmap(map);
      native.close(p.fd);
    }
  });

  it("knows the common formats' pixel sizes", () => {
    expect(shmFormatBpp(0)).toBe(4);
    expect(shmFormatBpp(1)).toBe(4);
    expect(shmFormatBpp(0x34324152)).toBe(4); // RGBA8888 'RA24'
    expect(shmFormatBpp(0x36314752)).toBe(2); // RGB565
    expect(shmFormatBpp(0x3231564e)).toBe(0); // NV12: planar, whole rows
  });
});
