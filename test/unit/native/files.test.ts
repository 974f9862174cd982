// Native fd calls: eventfd, pipe2, dup, fstat, getFl, fdPath, setNonblockCloexec, flock, ioctl, errors.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  O_ACCMODE,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
} from "../../../src/fd/constants.ts";
import { AGAIN, native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-native-files-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function errorOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("eventfd", () => {
  it("counts writes, reads the sum, then returns AGAIN", () => {
    const fd = native.eventfd(0, 0);
    try {
      const one = new Uint8Array(new BigUint64Array([3n]).buffer);
      native.write(fd, one, 0, 8);
      native.write(fd, one, 0, 8);
      const out = new Uint8Array(8);
      expect(native.read(fd, out, 0, 8)).toBe(8);
      expect(new BigUint64Array(out.buffer)[0]).toBe(6n);
      expect(native.read(fd, out, 0, 8)).toBe(AGAIN);
      expect(native.fdPath(fd)).toBe("anon_inode:[eventfd]");
    } finally {
      native.close(fd);
    }
  });
});

describe("pipe2, dup, getFl", () => {
  it("makes a non-blocking pipe whose ends report their access modes", () => {
    const [r, w] = native.pipe2();
    try {
      expect(native.getFl(r) & O_ACCMODE).toBe(O_RDONLY);
      expect(native.getFl(w) & O_ACCMODE).toBe(O_WRONLY);
      expect(native.getFl(r) & O_NONBLOCK).toBe(O_NONBLOCK);
      expect(native.read(r, new Uint8Array(4), 0, 4)).toBe(AGAIN);
      const d = native.dup(w);
      expect(d).not.toBe(w);
      expect(native.fdPath(d)).toBe(native.fdPath(w));
      native.write(d, new Uint8Array([42]), 0, 1);
      native.close(d);
      const b = new Uint8Array(1);
      expect(native.read(r, b, 0, 1)).toBe(1);
      expect(b[0]).toBe(42);
    } finally {
      native.close(r);
      native.close(w);
    }
  });

  it("setNonblockCloexec makes an inherited-style fd non-blocking and close-on-exec", () => {
    const fd = openSync(join(scratch, "f"), "w");
    try {
      expect(native.getFl(fd) & O_NONBLOCK).toBe(0);
      native.setNonblockCloexec(fd);
      expect(native.getFl(fd) & O_NONBLOCK).toBe(O_NONBLOCK);
      const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
      expect(Number.parseInt(flags?.[1] ?? "0", 8) & 0o2000000).not.toBe(0);
    } finally {
      closeSync(fd);
    }
  });
});

describe("fstat", () => {
  it("reports the size and mode of a memfd", () => {
    const fd = native.memfdCreate("crossway-stat", 0);
    try {
      native.ftruncate(fd, 12345);
      const st = native.fstat(fd);
      expect(st.size).toBe(12345);
      expect(st.mode & 0o170000).toBe(0o100000);
      expect(native.fdPath(fd)).toMatch(/^\/memfd:crossway-stat/);
    } finally {
      native.close(fd);
    }
  });
});

describe("flock", () => {
  it("takes an exclusive lock once; a second open file description gets false, not an exception", () => {
    const path = join(scratch, "lock");
    const a = openSync(path, "a+");
    const b = openSync(path, "a+");
    try {
      expect(native.flock(a, LOCK_EX | LOCK_NB)).toBe(true);
      expect(native.flock(b, LOCK_EX | LOCK_NB)).toBe(false);
      native.flock(a, LOCK_UN);
      expect(native.flock(b, LOCK_EX | LOCK_NB)).toBe(true);
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });
});

describe("ioctl", () => {
  it("FIONREAD on a socket reports the queued bytes through the argument buffer", () => {
    const FIONREAD = 0x541b;
    const [a, b] = native.socketpair();
    try {
      native.write(a, new Uint8Array(7), 0, 7);
      const arg = new Uint8Array(4);
      expect(native.ioctl(b, FIONREAD, arg)).toBe(0);
      expect(new Int32Array(arg.buffer)[0]).toBe(7);
      expect(errorOf(() => native.ioctl(b, 0xdead, null))).toMatchObject({
        code: "ENOTTY",
        syscall: "ioctl",
      });
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});

describe("ioctlPointers", () => {
  it("writes each buffer's address into the struct before the call, and checks offsets", () => {
    const [a, b] = native.socketpair();
    try {
      const arg = new Uint8Array(24);
      const x = new Uint8Array(16);
      const y = new Uint8Array(new ArrayBuffer(64), 8, 16);
      // ENOTTY (a socket has no such ioctl) comes after the patching, which is therefore visible in `arg`.
      expect(errorOf(() => native.ioctlPointers(a, 0xdead, arg, [0, 16], [x, y]))).toMatchObject({
        code: "ENOTTY",
        syscall: "ioctl",
      });
      const words = new BigUint64Array(arg.buffer);
      expect(words[0]).not.toBe(0n);
      expect(words[1]).toBe(0n);
      expect(words[2]).not.toBe(0n);
      expect(words[2]).not.toBe(words[0]);
      expect(() => native.ioctlPointers(a, 0xdead, arg, [17], [x])).toThrow(RangeError);
      expect(() => native.ioctlPointers(a, 0xdead, arg, [0, 8], [x])).toThrow(/differ in length/);
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});

describe("errors", () => {
  it("look like Node's SystemError: code, errno, syscall and a message naming them", () => {
    const fd = native.eventfd(0, 0);
    native.close(fd);
    const err = errorOf(() => native.close(fd)) as Error & Record<string, unknown>;
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: "EBADF", errno: -9, syscall: "close" });
    expect(err.message).toBe("EBADF: Bad file descriptor, close");
    expect(errorOf(() => native.fstat(fd))).toMatchObject({ code: "EBADF", syscall: "fstat" });
    expect(errorOf(() => native.getFl(fd))).toMatchObject({ code: "EBADF", syscall: "fcntl(F_GETFL)" });
    expect(errorOf(() => native.fdPath(fd))).toMatchObject({ code: "ENOENT", syscall: "readlink" });
  });

  it("reject bad arguments with TypeError before any syscall", () => {
    expect(() => native.close(-1)).toThrow(TypeError);
    expect(() => native.close(1.5)).toThrow(TypeError);
    expect(() => native.close(Number.NaN)).toThrow(TypeError);
    expect(() => native.ftruncate(0, Number.POSITIVE_INFINITY)).toThrow(/safe integer/);
    expect(() => native.ftruncate(0, 1e300)).toThrow(/safe integer/);
    expect(() => native.ftruncate(0, Number.NaN)).toThrow(/safe integer/);
    expect(() => native.sendmsg(0, new Uint8Array(1), 0, 1, [Number.NaN])).toThrow(/invalid fd/);
    expect(() => native.read(0, new Uint16Array(2) as unknown as Uint8Array, 0, 2)).toThrow(TypeError);
  });
});
