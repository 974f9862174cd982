// Native Unix sockets and SCM_RIGHTS: 28 fds intact, 29 refused, truncated control data closed, EAGAIN as a value.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AGAIN, MAX_FDS_PER_MSG, native } from "../../../src/native.ts";
import { openFds, useFdLeakCheck } from "../../helpers/fd-leak.ts";
import { requireCommand } from "../../helpers/processes.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-native-sock-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A memfd holding `text`, so a received fd can be identified by what it contains. */
function memfdWith(text: string): number {
  const fd = native.memfdCreate("crossway-test", 0);
  const b = enc.encode(text);
  expect(native.pwrite(fd, b, 0, b.length, 0)).toBe(b.length);
  return fd;
}

function contentOf(fd: number): string {
  const buf = new Uint8Array(64);
  const n = native.pread(fd, buf, 0, buf.length, 0);
  return dec.decode(buf.subarray(0, n));
}

function isCloexec(fd: number): boolean {
  const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  return flags !== null && (Number.parseInt(flags[1] as string, 8) & 0o2000000) !== 0;
}

function closeAll(fds: Iterable<number>): void {
  for (const fd of fds) native.close(fd);
}

describe("socketpair + sendmsg/recvmsg", () => {
  it("carries 28 fds in one sendmsg; each arrives intact, distinct and close-on-exec", () => {
    const [a, b] = native.socketpair();
    const sent = Array.from({ length: MAX_FDS_PER_MSG }, (_, i) => memfdWith(`payload-${i}`));
    try {
      const msg = enc.encode("hello");
      expect(native.sendmsg(a, msg, 0, msg.length, sent)).toBe(5);
      const buf = new Uint8Array(16);
      const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
      expect(native.recvmsg(b, buf, 0, buf.length, fdsOut)).toBe(5);
      expect(dec.decode(buf.subarray(0, 5))).toBe("hello");
      expect(fdsOut[0]).toBe(MAX_FDS_PER_MSG);
      const got = Array.from(fdsOut.subarray(1, 1 + MAX_FDS_PER_MSG));
      try {
        expect(new Set(got).size).toBe(MAX_FDS_PER_MSG);
        for (const fd of got) expect(sent).not.toContain(fd);
        // By content, in order: fd i carries "payload-i".
        expect(got.map(contentOf)).toEqual(sent.map((_, i) => `payload-${i}`));
        for (const fd of got) expect(isCloexec(fd), `fd ${fd} O_CLOEXEC`).toBe(true);
      } finally {
        closeAll(got);
      }
    } finally {
      closeAll([a, b, ...sent]);
    }
  });

  it("refuses 29 fds without sending anything", () => {
    const [a, b] = native.socketpair();
    const sent = Array.from({ length: MAX_FDS_PER_MSG + 1 }, (_, i) => memfdWith(`x${i}`));
    try {
      const msg = enc.encode("x");
      expect(() => native.sendmsg(a, msg, 0, 1, sent)).toThrow(/at most 28 fds, got 29/);
      const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
      expect(native.recvmsg(b, new Uint8Array(4), 0, 4, fdsOut)).toBe(AGAIN);
    } finally {
      closeAll([a, b, ...sent]);
    }
  });

  it("returns AGAIN (not an exception) on an empty non-blocking socket, and 0 at EOF", () => {
    const [a, b] = native.socketpair();
    const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
    expect(native.recvmsg(b, new Uint8Array(8), 0, 8, fdsOut)).toBe(AGAIN);
    expect(AGAIN).toBe(-1);
    expect(fdsOut[0]).toBe(0);
    native.close(a);
    expect(native.recvmsg(b, new Uint8Array(8), 0, 8, fdsOut)).toBe(0);
    native.close(b);
  });

  it("returns AGAIN from sendmsg when the socket buffer is full", () => {
    const [a, b] = native.socketpair();
    const chunk = new Uint8Array(65536);
    let total = 0;
    let r = 0;
    for (let i = 0; i < 10_000 && r !== AGAIN; i++) {
      r = native.sendmsg(a, chunk, 0, chunk.length, null);
      if (r > 0) total += r;
    }
    expect(r).toBe(AGAIN);
    expect(total).toBeGreaterThan(0);
    closeAll([a, b]);
  });

  it("refuses fds without a data byte (a stream socket would drop them)", () => {
    const [a, b] = native.socketpair();
    const m = memfdWith("x");
    expect(() => native.sendmsg(a, new Uint8Array(1), 0, 0, [m])).toThrow(/at least one byte/);
    closeAll([a, b, m]);
  });

  it("checks byte ranges and argument types", () => {
    const [a, b] = native.socketpair();
    expect(() => native.sendmsg(a, new Uint8Array(4), 2, 4, null)).toThrow(RangeError);
    expect(() => native.recvmsg(b, new Uint8Array(4), 0, 4, new Int32Array(3))).toThrow(/at least 29/);
    closeAll([a, b]);
  });

  // A sender beyond our limits: Python's socket.send_fds is independent of our addon, so the receive side is tested
  // against a real other implementation.
  async function pythonSends(count: number): Promise<{ fd: number; done: Promise<number | null> }> {
    requireCommand("python3", "python3");
    const [a, b] = native.socketpair();
    const script = [
      "import os, socket",
      "s = socket.socket(fileno=3)",
      `fds = [os.memfd_create('py%d' % i) for i in range(${count})]`,
      "socket.send_fds(s, [b'Z'], fds)",
      "s.close()",
    ].join("\n");
    const child = spawn("python3", ["-c", script], { stdio: ["ignore", "ignore", "inherit", a] });
    const done = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    native.close(a);
    expect(await done).toBe(0);
    return { fd: b, done };
  }

  it("closes whatever arrived and throws EMSGSIZE when the control data is truncated (MSG_CTRUNC)", async () => {
    const { fd } = await pythonSends(60);
    const before = openFds().size;
    const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
    let caught: unknown;
    try {
      native.recvmsg(fd, new Uint8Array(8), 0, 8, fdsOut);
    } catch (err) {
      caught = err;
    } finally {
      native.close(fd);
    }
    expect(caught).toMatchObject({ code: "EMSGSIZE", syscall: "recvmsg" });
    expect(String((caught as Error).message)).toMatch(/MSG_CTRUNC/);
    expect(fdsOut[0]).toBe(0);
    expect(openFds().size).toBe(before - 1);
  });

  it("closes all fds and throws EMSGSIZE when a sender passes more than 28 (but the control data fits)", async () => {
    const { fd } = await pythonSends(40);
    const before = openFds().size;
    const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
    try {
      expect(() => native.recvmsg(fd, new Uint8Array(8), 0, 8, fdsOut)).toThrow(/more than 28 fds/);
    } finally {
      native.close(fd);
    }
    expect(fdsOut[0]).toBe(0);
    expect(openFds().size).toBe(before - 1);
  });
});

describe("unixListen / unixAccept / unixConnect", () => {
  it("accepts a connection, exchanges bytes, and accept returns AGAIN when nobody waits", () => {
    const path = join(scratch, "s1");
    const l = native.unixListen(path, 4);
    try {
      expect(native.unixAccept(l)).toBe(AGAIN);
      const c = native.unixConnect(path);
      const s = native.unixAccept(l);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(native.getFl(c) & 0o4000).not.toBe(0); // O_NONBLOCK
      expect(native.getFl(s) & 0o4000).not.toBe(0);
      expect(native.write(c, enc.encode("ping"), 0, 4)).toBe(4);
      const buf = new Uint8Array(8);
      expect(native.read(s, buf, 0, 8)).toBe(4);
      expect(dec.decode(buf.subarray(0, 4))).toBe("ping");
      native.shutdown(c, 1);
      expect(native.read(s, buf, 0, 8)).toBe(0);
      closeAll([c, s]);
    } finally {
      native.close(l);
    }
  });

  it("reports errors like Node's SystemError", () => {
    let err: unknown;
    try {
      native.unixConnect(join(scratch, "missing"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: "ENOENT", errno: -2, syscall: "connect" });
    expect(() => native.unixListen(join(scratch, "x".repeat(200)), 1)).toThrow(/ENAMETOOLONG/);
  });
});
