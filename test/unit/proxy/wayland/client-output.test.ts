// ClientOutput: fds go out at most 28 per sendmsg, each no later than the bytes of the message that carries it.
import { describe, expect, it } from "vitest";
import { AGAIN, native } from "../../../../src/native.ts";
import { ClientOutput } from "../../../../src/proxy/wayland/client-output.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("ClientOutput", () => {
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
      for (const fd of received) native.close(fd);
      native.close(a);
      native.close(b);
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
});
