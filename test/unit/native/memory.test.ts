// Native memfd, seals, mmap/munmap and pread: seals refuse a shrink, a shrunk memfd reads short, unmap detaches.
import { readdirSync, readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import {
  F_SEAL_GROW,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  PROT_READ,
  PROT_WRITE,
} from "../../../src/fd/constants.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";
import { waitFor } from "../../helpers/processes.ts";

useFdLeakCheck();

function mapsMentioning(name: string): number {
  return readFileSync("/proc/self/maps", "utf8")
    .split("\n")
    .filter((l) => l.includes(name)).length;
}

describe("memfd and seals", () => {
  it("F_SEAL_SHRINK refuses a shrink with EPERM but allows growth", () => {
    const fd = native.memfdCreate("crossway-seal", MFD_ALLOW_SEALING);
    try {
      native.ftruncate(fd, 8192);
      native.addSeals(fd, F_SEAL_SHRINK);
      expect(native.getSeals(fd) & F_SEAL_SHRINK).toBe(F_SEAL_SHRINK);
      let err: unknown;
      try {
        native.ftruncate(fd, 4096);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: "EPERM", errno: -1, syscall: "ftruncate" });
      expect(native.fstat(fd).size).toBe(8192);
      native.ftruncate(fd, 16384);
      expect(native.fstat(fd).size).toBe(16384);
      native.addSeals(fd, F_SEAL_GROW);
      expect(() => native.ftruncate(fd, 32768)).toThrow(/EPERM/);
    } finally {
      native.close(fd);
    }
  });

  it("a memfd without MFD_ALLOW_SEALING refuses seals", () => {
    const fd = native.memfdCreate("crossway-noseal", 0);
    try {
      expect(() => native.addSeals(fd, F_SEAL_SHRINK)).toThrow(expect.objectContaining({ code: "EPERM" }));
    } finally {
      native.close(fd);
    }
  });
});

describe("mmap / munmap / pread", () => {
  it("shares bytes between a mapping and pread/pwrite", () => {
    const fd = native.memfdCreate("crossway-map", 0);
    native.ftruncate(fd, 4096);
    const ab = native.mmap(fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    try {
      const v = new Uint8Array(ab);
      v[10] = 0xab;
      const buf = new Uint8Array(1);
      expect(native.pread(fd, buf, 0, 1, 10)).toBe(1);
      expect(buf[0]).toBe(0xab);
      buf[0] = 0xcd;
      native.pwrite(fd, buf, 0, 1, 11);
      expect(v[11]).toBe(0xcd);
    } finally {
      native.munmap(ab);
      native.close(fd);
    }
  });

  it("reads a memfd shrunk under its mapping with pread: a short read, no SIGBUS", () => {
    const fd = native.memfdCreate("crossway-shrink", 0);
    native.ftruncate(fd, 3 * 4096);
    const ab = native.mmap(fd, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    try {
      new Uint8Array(ab).fill(7);
      // The peer shrinks its pool: touching the mapping past 4096 would now raise SIGBUS and kill the process.
      native.ftruncate(fd, 4096);
      const buf = new Uint8Array(3 * 4096);
      expect(native.pread(fd, buf, 0, buf.length, 0)).toBe(4096);
      expect(buf[4095]).toBe(7);
      expect(buf[4096]).toBe(0);
      expect(native.pread(fd, buf, 0, 100, 8192)).toBe(0);
      // The first page is still backed, so the mapping stays readable there.
      expect(new Uint8Array(ab)[0]).toBe(7);
    } finally {
      native.munmap(ab);
      native.close(fd);
    }
  });

  it("munmap detaches the ArrayBuffer and every view; a second munmap throws", () => {
    const fd = native.memfdCreate("crossway-detach-probe", 0);
    native.ftruncate(fd, 4096);
    const live = native.liveMappings();
    const ab = native.mmap(fd, 4096, PROT_READ, MAP_SHARED, 0);
    const view = new Uint8Array(ab);
    expect(native.liveMappings()).toBe(live + 1);
    expect(mapsMentioning("crossway-detach-probe")).toBe(1);
    native.munmap(ab);
    expect(ab.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(view[0]).toBeUndefined();
    expect(native.liveMappings()).toBe(live);
    expect(mapsMentioning("crossway-detach-probe")).toBe(0);
    expect(() => native.munmap(ab)).toThrow(/not a live mapping/);
    expect(() => native.munmap(new ArrayBuffer(8))).toThrow(/not a live mapping/);
    native.close(fd);
  });

  it("reports mmap errors with code/errno/syscall", () => {
    const fd = native.memfdCreate("crossway-bad-map", 0);
    try {
      expect(() => native.mmap(fd, 0, PROT_READ, MAP_SHARED, 0)).toThrow(
        expect.objectContaining({ code: "EINVAL", errno: -22, syscall: "mmap" }),
      );
    } finally {
      native.close(fd);
    }
  });
});

describe("mmapProbe", () => {
  it("says whether a mapping would succeed, with mmap's own error, and leaves nothing mapped", () => {
    const fd = native.memfdCreate("crossway-probe", MFD_ALLOW_SEALING);
    native.ftruncate(fd, 64 * 1024 * 1024);
    const live = native.liveMappings();
    try {
      native.mmapProbe(fd, 64 * 1024 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      expect(mapsMentioning("crossway-probe")).toBe(0);
      expect(native.liveMappings()).toBe(live);
      // A write-sealed memfd refuses a shared writable mapping (EPERM), exactly as mmap would say.
      native.addSeals(fd, F_SEAL_WRITE);
      expect(() => native.mmapProbe(fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toThrow(
        expect.objectContaining({ code: "EPERM", syscall: "mmap" }),
      );
      native.mmapProbe(fd, 4096, PROT_READ, MAP_SHARED, 0);
      expect(mapsMentioning("crossway-probe")).toBe(0);
    } finally {
      native.close(fd);
    }
  });
});

describe("mapping lifetime", () => {
  // Regression: the ArrayBuffer finalizer of an unmapped buffer runs later (Node defers it to an immediate) and used
  // to munmap by address, which by then belonged to a new mapping: the next access to it crashed with SIGSEGV.
  it("the finalizer of an unmapped buffer leaves a new mapping at the same address alone", async () => {
    const fd = native.memfdCreate("crossway-reuse", 0);
    native.ftruncate(fd, 4096);
    const live = native.liveMappings();
    const first = native.mmap(fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    native.munmap(first);
    const second = native.mmap(fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    try {
      new Uint8Array(second)[0] = 5;
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      expect(native.liveMappings()).toBe(live + 1);
      expect(mapsMentioning("crossway-reuse")).toBe(1);
      expect(new Uint8Array(second)[0]).toBe(5);
    } finally {
      native.munmap(second);
      native.close(fd);
    }
  });

  it("a mapping JS forgot to unmap is released when its ArrayBuffer is collected (safety net only)", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const fd = native.memfdCreate("crossway-forgotten", 0);
    native.ftruncate(fd, 4096);
    const live = native.liveMappings();
    (() => {
      native.mmap(fd, 4096, PROT_READ, MAP_SHARED, 0);
    })();
    expect(native.liveMappings()).toBe(live + 1);
    await waitFor("the forgotten mapping to be collected", async () => {
      gc();
      await new Promise((r) => setImmediate(r));
      return native.liveMappings() === live ? true : undefined;
    });
    expect(mapsMentioning("crossway-forgotten")).toBe(0);
    native.close(fd);
  });
});

describe("10 000 open/close cycles", () => {
  it("leak no fd and no mapping", () => {
    const liveBefore = native.liveMappings();
    const start = fdCount();
    const buf = new Uint8Array(8);
    for (let i = 0; i < 10_000; i++) {
      const m = native.memfdCreate("crossway-cycle", MFD_ALLOW_SEALING);
      native.ftruncate(m, 4096);
      const ab = native.mmap(m, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      new Uint8Array(ab)[0] = i & 0xff;
      native.munmap(ab);
      const e = native.eventfd(1, 0);
      native.read(e, buf, 0, 8);
      const [r, w] = native.pipe2();
      const [a, b] = native.socketpair();
      const d = native.dup(m);
      for (const fd of [m, e, r, w, a, b, d]) native.close(fd);
    }
    expect(fdCount()).toBe(start);
    expect(native.liveMappings()).toBe(liveBefore);
    expect(mapsMentioning("crossway-cycle")).toBe(0);
  });
});

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}
