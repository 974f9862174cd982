// FdOutputQueue (and ClientOutput, the guest's use of it): fds go out at most 28 per sendmsg, each no later than the
// bytes of the message that carries it, across partial writes, checked by what the kernel delivers to the peer.
import { describe, expect, it } from "vitest";
import { FdOutputQueue } from "../../../src/fd/fd-output-queue.ts";
import { AGAIN, native } from "../../../src/native.ts";
import { ClientOutput } from "../../../src/proxy/wayland/client-output.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) native.close(fd);
}

describe("FdOutputQueue", () => {
  it("delivers 60 fds over 10 messages in order, each with or before its message", () => {
    const [a, b] = native.socketpair();
    const received: number[] = [];
    try {
      const out = new ClientOutput(a);
      for (let k = 0; k < 10; k++) {
        const fds: number[] = [];
        for (let j = 0; j < 6; j++) {
          const fd = native.memfdCreate(`m${k}-${j}`, 0);
          fds.push(fd);
        }
        out.append(new Uint8Array(8).fill(k), fds);
      }
      expect(out.flush()).toBe("done");
      const buf = new Uint8Array(4096);
      const fdsOut = new Int32Array(29);
      let bytes = 0;
      for (;;) {
        const n = native.recvmsg(b, buf, 0, 8, fdsOut);
        if (n === AGAIN) break;
        const count = fdsOut[0] as number;
        expect(count).toBeLessThanOrEqual(28);
        for (let i = 0; i < count; i++) received.push(fdsOut[1 + i] as number);
        bytes += n;
        // Every message fully received so far has all its fds already.
        expect(received.length).toBeGreaterThanOrEqual(6 * Math.floor(bytes / 8));
      }
      expect(bytes).toBe(80);
      expect(received.map((fd) => native.fdPath(fd))).toEqual(
        Array.from({ length: 60 }, (_, i) => `/memfd:m${Math.floor(i / 6)}-${i % 6} (deleted)`),
      );
    } finally {
      closeAll([...received, a, b]);
    }
  });

  it("closes the fds it still owns when discarded", () => {
    const [a, b] = native.socketpair();
    try {
      const out = new ClientOutput(a);
      const fd = native.memfdCreate("discarded", 0);
      out.append(new Uint8Array(8), [fd]);
      out.discard();
      expect(() => native.fstat(fd)).toThrow(/EBADF/);
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it("survives partial writes on a full socket: 2000 messages with an fd each, every fd with or before its message", () => {
    const [a, b] = native.socketpair();
    const received: number[] = [];
    try {
      const q = new FdOutputQueue(a);
      const MSG = 1000;
      for (let k = 0; k < 2000; k++) {
        const fd = native.eventfd(0, 0);
        q.append(new Uint8Array(MSG).fill(k & 0xff), [fd]);
      }
      const buf = new Uint8Array(1 << 20);
      const fdsOut = new Int32Array(29);
      let bytes = 0;
      let blocked = 0;
      // Alternate: flush until the socket is full, then drain what the peer got, as a slow peer would.
      for (let round = 0; round < 100_000 && bytes < 2000 * MSG; round++) {
        if (q.flush() === "blocked") blocked++;
        for (;;) {
          const n = native.recvmsg(b, buf, 0, 7777, fdsOut);
          if (n === AGAIN) break;
          for (let i = 0; i < (fdsOut[0] as number); i++) received.push(fdsOut[1 + i] as number);
          bytes += n;
          expect(received.length).toBeGreaterThanOrEqual(Math.floor(bytes / MSG));
        }
      }
      expect(bytes).toBe(2000 * MSG);
      expect(received.length).toBe(2000);
      expect(blocked).toBeGreaterThan(0);
      expect(q.pending).toBe(0);
    } finally {
      closeAll([...received, a, b]);
    }
  });

  it("writes a pipe without fds, and refuses fds there or more than 28 for one message, taking none", () => {
    const [r, w] = native.pipe2();
    const memfds = Array.from({ length: 29 }, (_, i) => native.memfdCreate(`x${i}`, 0));
    try {
      const q = new FdOutputQueue(w, "stream");
      q.append(Uint8Array.of(1, 2, 3));
      expect(q.flush()).toBe("done");
      const got = new Uint8Array(8);
      expect(native.read(r, got, 0, 8)).toBe(3);
      expect(() => q.append(Uint8Array.of(1), [memfds[0]!])).toThrow(/1 fds on a stream \(at most 0\)/);
      const s = new FdOutputQueue(w);
      expect(() => s.append(new Uint8Array(8), memfds)).toThrow(/29 fds on a socket \(at most 28\)/);
      expect(() => s.append(new Uint8Array(0), [memfds[0]!])).toThrow(/at least one byte/);
      expect(s.pending).toBe(0);
    } finally {
      closeAll([...memfds, r, w]);
    }
  });

  it("appendRange sends exactly the asked ranges, small (copied by loop) and large (by set), with their fds", () => {
    const [a, b] = native.socketpair();
    const memfd = native.memfdCreate("range", 0); // the queue's once appended: it closes it once sent
    const spare = native.memfdCreate("spare", 0);
    const ino = native.fstat(memfd).ino;
    try {
      const src = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
      const q = new FdOutputQueue(a);
      // Around the 64-byte threshold of copyBytes, at odd offsets, and one range carrying an fd.
      const ranges: [number, number][] = [
        [0, 1],
        [3, 63],
        [7, 64],
        [11, 65],
        [100, 200],
        [299, 1],
      ];
      for (const [off, len] of ranges) q.appendRange(src, off, len, off === 11 ? [memfd] : null);
      expect(q.flush()).toBe("done");
      const want = ranges.flatMap(([off, len]) => [...src.subarray(off, off + len)]);
      const got = new Uint8Array(1024);
      const fdsOut = new Int32Array(29);
      let n = 0;
      const fds: number[] = [];
      while (n < want.length) {
        const r = native.recvmsg(b, got, n, got.length - n, fdsOut);
        expect(r).not.toBe(AGAIN);
        for (let k = 0; k < fdsOut[0]!; k++) fds.push(fdsOut[1 + k]!);
        n += r;
      }
      expect([...got.subarray(0, n)]).toEqual(want);
      expect(fds).toHaveLength(1);
      expect(native.fstat(fds[0]!).ino).toBe(ino);
      closeAll(fds);
      expect(() => q.appendRange(src, 0, 0, [spare])).toThrow(/at least one byte/);
    } finally {
      closeAll([a, b, spare]);
    }
  });

  it("ClientOutput is the queue on a client socket", () => {
    const [a, b] = native.socketpair();
    try {
      expect(new ClientOutput(a)).toBeInstanceOf(FdOutputQueue);
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});
