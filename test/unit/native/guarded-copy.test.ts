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
