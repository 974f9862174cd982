// Tests that host memory handed to clients is an exact, fully sealed, mappable private copy.
import { describe, expect, it } from "vitest";
import {
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../../../../src/fd/constants.ts";
import { native } from "../../../../src/native.ts";
import { sealedCopy } from "../../../../src/proxy/wayland/sealed-copy.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("sealedCopy", () => {
  it("holds the bytes, refuses writes and resizes, and maps read-only both ways", () => {
    const text = new TextEncoder().encode('xkb_keymap { xkb_keycodes "test" { }; };\0');
    const fd = sealedCopy("keymap", text);
    try {
      expect(native.getSeals(fd)).toBe(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
      expect(native.fstat(fd).size).toBe(text.byteLength);
      expect(() => native.ftruncate(fd, 1)).toThrow(/EPERM/);
      expect(() => native.pwrite(fd, new Uint8Array([1]), 0, 1, 0)).toThrow(/EPERM/);
      expect(() => native.mmap(fd, text.byteLength, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toThrow(/EPERM/);
      for (const flags of [MAP_PRIVATE, MAP_SHARED]) {
        const ab = native.mmap(fd, text.byteLength, PROT_READ, flags, 0);
        expect(new Uint8Array(ab)).toEqual(text);
        native.munmap(ab);
      }
    } finally {
      native.close(fd);
    }
  });
});
