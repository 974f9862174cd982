// A hostile guest kernel's malformed frames against a real `crossway device`: each gets a worded answer (a REPLY with
// an errno for a request, a HOST_ERROR line otherwise), every fd they carried is closed exactly once, nothing is
// logged as an internal failure, and the connection goes on.
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildFrame, FrameType, u64Fields } from "../../src/crossdomain/device-protocol.ts";
import { BlobMem } from "../../src/crossdomain/structs.ts";
import { native } from "../../src/native.ts";
import { getU32 } from "../../src/wire/bytes.ts";
import { nextDeviceFrame, useDeviceAndHost, within, writeAll } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

const env = useDeviceAndHost("crossway-device-frames-");

const deviceFds = (): number => readdirSync(`/proc/${env.device.pid}/fd`).length;

/** The device's fd count once it is back at `n` (closing is synchronous, the frame's arrival is not). */
async function settleFds(n: number): Promise<number> {
  const deadline = Date.now() + 5000;
  while (deviceFds() > n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return deviceFds();
}

describe("crossway device and malformed frames", () => {
  it("answers each with its error, closes the fds they carried once, and keeps the connection", async () => {
    const dev = native.unixConnect(env.device.socket);
    const inbuf = { data: new Uint8Array(1 << 16), len: 0 };
    const text = (p: Uint8Array, from: number): string => new TextDecoder().decode(p.subarray(from));
    /** Frames up to the REPLY to `serial`: its status and message, and the HOST_ERROR lines before it. */
    const answer = async (serial: number) => {
      const hostErrors: string[] = [];
      for (;;) {
        const f = await within(nextDeviceFrame(dev, inbuf), `the answer to frame ${serial}`);
        if (f.type === FrameType.HOST_ERROR) hostErrors.push(text(f.payload, 0));
        else if (f.type === FrameType.REPLY) {
          return { status: getU32(f.payload, 0), message: text(f.payload, 4), hostErrors };
        }
      }
    };
    try {
      await writeAll(dev, buildFrame(FrameType.GET_PARAMS, 1, [], null, 0));
      expect((await answer(1)).status).toBe(0);
      const base = deviceFds();

      // CREATE_BLOB is 24 bytes of fields; 20 with two memfds: refused with the sizes, both fds closed.
      const a = native.memfdCreate("frames-a", 0);
      const b = native.memfdCreate("frames-b", 0);
      try {
        const short = buildFrame(
          FrameType.CREATE_BLOB,
          2,
          [BlobMem.GUEST, 0, ...u64Fields(4096), 0],
          null,
          2,
        );
        await writeAll(dev, short, [a, b]);
      } finally {
        native.close(a);
        native.close(b);
      }
      const r2 = await answer(2);
      expect(r2.status).toBe(5);
      expect(r2.message).toBe("EIO: frame type 4: a payload of 20 bytes, short of its 24");
      expect(r2.hostErrors).toEqual(["device: frame type 4: a payload of 20 bytes, short of its 24"]);
      expect(await settleFds(base), "the short CREATE_BLOB's fds").toBe(base);

      // An unknown frame type with a pipe: a host error (no reply: it is no request), the pipe closed once.
      const [pr, pw] = native.pipe2();
      try {
        await writeAll(dev, buildFrame(77, 3, [], null, 1), [pw]);
      } finally {
        native.close(pw);
      }
      // GET_CAPS with no fields at all: a request, so a REPLY with the error.
      await writeAll(dev, buildFrame(FrameType.GET_CAPS, 4, [], null, 0));
      const r4 = await answer(4);
      expect(r4.hostErrors[0]).toBe("device: unknown frame type 77");
      expect(r4.status).toBe(5);
      expect(r4.message).toBe("EIO: frame type 2: a payload of 0 bytes, short of its 12");
      // The device holds no copy of the pipe's write end: reading it gives EOF once ours is closed.
      const got = native.read(pr, new Uint8Array(1), 0, 1);
      native.close(pr);
      expect(got, "EOF on the pipe: the device closed its copy").toBe(0);
      expect(await settleFds(base), "the unknown frame's fd").toBe(base);

      // The connection goes on, and nothing was an internal failure.
      await writeAll(dev, buildFrame(FrameType.GET_PARAMS, 5, [], null, 0));
      expect((await answer(5)).status).toBe(0);
      // The log is another pipe than the socket: a REPLY can reach us before the log line written ahead of it.
      await waitFor("the device's log line for the refused frames", () =>
        /device frame refused/.test(env.device.stderr()) ? true : undefined,
      );
      expect(env.device.stderr()).not.toMatch(/"level":50/);
    } finally {
      native.close(dev);
    }
  });
});
