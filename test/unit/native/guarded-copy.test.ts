// copyGuarded: strided copies from a mapping, and a SIGBUS from a file shrunk under the mapping is absorbed.
import { describe, expect, it } from "vitest";
import { MAP_SHARED, PROT_READ } from "../../../src/fd/constants.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

function memfdWith(size: number): { fd: number; bytes: Uint8Array } {
  const fd = native.memfdCreate("guarded-copy-test", 0);
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 13 + 5) & 0xff;
  native.pwrite(fd, bytes, 0, size, 0);
  return { fd, bytes };
}

describe("native.copyGuarded", () => {
  it("copies rows with different strides exactly", () => {
    const { fd, bytes } = memfdWith(8192);
    const map = native.mmap(fd, 8192, PROT_READ, MAP_SHARED, 0);
    try {
      const dst = new Uint8Array(200);
      expect(native.copyGuarded(map, 100, dst, 10, 16, 4, 64, 40)).toBe(true);
      for (let r = 0; r < 4; r++) {
        expect(dst.subarray(10 + r * 40, 26 + r * 40)).toEqual(bytes.subarray(100 + r * 64, 116 + r * 64));
      }
      expect(dst[9]).toBe(0);
      expect(dst[26]).toBe(0);
    } finally {
      native.munmap(map);
      native.close(fd);
    }
  });

  it("copies a frame-sized range exactly at every alignment, whole and by rows (the streaming stores)", () => {
    // From 1 MiB up the copy stores around the cache, 16-byte aligned in the destination with a head and a tail:
    // every destination misalignment, odd lengths and strided rows must still give exactly the source's bytes,
    // and nothing outside the range may change.
    const size = 3 << 20;
    const { fd, bytes } = memfdWith(size);
    const map = native.mmap(fd, size, PROT_READ, MAP_SHARED, 0);
    try {
      const dst = new Uint8Array(size + 64);
      for (const [from, to, len] of [
        [0, 0, 1 << 20],
        [3, 1, (1 << 20) + 77],
        [64, 15, 2 << 20],
        [17, 33, (2 << 20) + 63],
      ] as const) {
        dst.fill(0xee);
        expect(native.copyGuarded(map, from, dst, to, len, 1, len, len)).toBe(true);
        expect(Buffer.compare(dst.subarray(to, to + len), bytes.subarray(from, from + len))).toBe(0);
        expect(dst[to - 1] ?? 0xee).toBe(0xee);
        expect(dst[to + len]).toBe(0xee);
      }
      // Rows of 7,681 bytes (1080p's 7,680 and one), 300 of them, strides of 7,700 and 7,690: 2.2 MiB in all.
      dst.fill(0xee);
      expect(native.copyGuarded(map, 5, dst, 7, 7681, 300, 7700, 7690)).toBe(true);
      for (let r = 0; r < 300; r++) {
        const got = dst.subarray(7 + r * 7690, 7 + r * 7690 + 7681);
        expect(Buffer.compare(got, bytes.subarray(5 + r * 7700, 5 + r * 7700 + 7681))).toBe(0);
        // The gap between two rows (and after the last) is left as it was.
        expect(dst[7 + r * 7690 + 7681]).toBe(0xee);
      }
    } finally {
      native.munmap(map);
      native.close(fd);
    }
  });

  it("survives a file shrunk under the mapping (SIGBUS) and says so", () => {
    const size = 4096 * 8;
    const { fd } = memfdWith(size);
    const map = native.mmap(fd, size, PROT_READ, MAP_SHARED, 0);
    try {
      native.ftruncate(fd, 4096);
      const dst = new Uint8Array(size);
      expect(native.copyGuarded(map, 0, dst, 0, size, 1, size, size)).toBe(false);
      // Later copies read the zero pages that replaced the mapping, still without a signal.
      expect(native.copyGuarded(map, 4096 * 4, dst, 0, 4096, 1, 4096, 4096)).toBe(true);
      expect(dst.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    } finally {
      native.munmap(map);
      native.close(fd);
    }
  });

  it("refuses ranges outside either buffer", () => {
    const { fd } = memfdWith(4096);
    const map = native.mmap(fd, 4096, PROT_READ, MAP_SHARED, 0);
    try {
      expect(() => native.copyGuarded(map, 4000, new Uint8Array(4096), 0, 200, 1, 200, 200)).toThrow(
        RangeError,
      );
      expect(() => native.copyGuarded(map, 0, new Uint8Array(100), 0, 200, 1, 200, 200)).toThrow(RangeError);
      expect(() => native.copyGuarded(map, 0, new Uint8Array(4096), 0, 64, 2, 32, 64)).toThrow(/bad strides/);
    } finally {
      native.munmap(map);
      native.close(fd);
    }
  });
});
