// Mapping: bytes view over mmap, unmap() detaches and is idempotent, never left to the GC.
import { describe, expect, it } from "vitest";
import { Mapping } from "../../../src/fd/mapping.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("Mapping", () => {
  it("maps a memfd read-write, and unmap() detaches every view taken from it", () => {
    const fd = native.memfdCreate("crossway-mapping", 0);
    native.ftruncate(fd, 8192);
    const live = native.liveMappings();
    const m = Mapping.map(fd, 8192, { writable: true });
    try {
      expect(m.length).toBe(8192);
      expect(native.liveMappings()).toBe(live + 1);
      const view = m.bytes;
      view[100] = 9;
      const b = new Uint8Array(1);
      native.pread(fd, b, 0, 1, 100);
      expect(b[0]).toBe(9);
      m.unmap();
      expect(m.mapped).toBe(false);
      expect(view.length).toBe(0);
      expect(() => m.bytes).toThrow(/unmapped/);
      m.unmap();
      expect(native.liveMappings()).toBe(live);
    } finally {
      m.unmap();
      native.close(fd);
    }
  });

  it("maps PROT_READ by default (checked in /proc/self/maps)", async () => {
    const { readFileSync } = await import("node:fs");
    const fd = native.memfdCreate("crossway-mapping-ro", 0);
    native.ftruncate(fd, 4096);
    const m = Mapping.map(fd, 4096);
    try {
      const line = readFileSync("/proc/self/maps", "utf8")
        .split("\n")
        .find((l) => l.includes("crossway-mapping-ro"));
      expect(line).toMatch(/ r--s /);
    } finally {
      m.unmap();
      native.close(fd);
    }
  });

  it("throws a SystemError-shaped error when mmap fails", () => {
    const [r, w] = native.pipe2();
    try {
      expect(() => Mapping.map(r, 4096)).toThrow(
        expect.objectContaining({ code: "ENODEV", syscall: "mmap" }),
      );
    } finally {
      native.close(r);
      native.close(w);
    }
  });
});
