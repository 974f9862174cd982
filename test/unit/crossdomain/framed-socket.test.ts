// FramedSocket's hold on reading: frames stop after the one being handled, resume in order, and a handler that
// resumes reading while it runs is not entered again from inside itself.
import { describe, expect, it } from "vitest";
import { buildFrame, FrameType } from "../../../src/crossdomain/device-protocol.ts";
import { FramedSocket } from "../../../src/crossdomain/framed-socket.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

/** Writes frames with serials `from`..`to` (FENCE frames, one field) to `fd` in one write. */
function writeFrames(fd: number, from: number, to: number): void {
  const frames: Uint8Array[] = [];
  for (let s = from; s <= to; s++) frames.push(buildFrame(FrameType.FENCE, s, [s], null, 0));
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    all.set(f, at);
    at += f.length;
  }
  expect(native.write(fd, all, 0, all.length)).toBe(all.length);
}

/** Resolves once `cond` holds, checking on each turn of the event loop (deadline: 5 s). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe("FramedSocket reading hold", () => {
  it("holds frames back while paused and hands them over in order on resume", async () => {
    const [a, b] = native.socketpair();
    const seen: number[] = [];
    let sock: FramedSocket | null = null;
    sock = new FramedSocket(
      a,
      (_type, serial) => {
        seen.push(serial);
        if (serial === 2) sock?.pauseReading();
      },
      () => {},
    );
    try {
      writeFrames(b, 1, 5);
      await until(() => seen.length >= 2, "the first two frames");
      // Frames 3-5 were read with the first two but must wait; more written now must wait too.
      writeFrames(b, 6, 7);
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(seen).toEqual([1, 2]);
      sock.resumeReading();
      await until(() => seen.length >= 7, "every frame");
      expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      sock.close();
      native.close(b);
    }
  });

  it("does not enter a handler from inside itself when it resumes reading", async () => {
    const [a, b] = native.socketpair();
    const seen: number[] = [];
    let inside = false;
    let nested = false;
    let sock: FramedSocket | null = null;
    sock = new FramedSocket(
      a,
      (_type, serial) => {
        if (inside) nested = true;
        inside = true;
        seen.push(serial);
        // What the device does when a held-back host socket fails mid-frame: the hold is released at once.
        if (serial === 1) {
          sock?.pauseReading();
          sock?.resumeReading();
        }
        inside = false;
      },
      () => {},
    );
    try {
      writeFrames(b, 1, 4);
      await until(() => seen.length >= 4, "every frame");
      expect(nested, "a frame was handled inside another's handler").toBe(false);
      expect(seen).toEqual([1, 2, 3, 4]);
    } finally {
      sock.close();
      native.close(b);
    }
  });
});
