// QEMU's rutabaga device completes other contexts' POLLs early (issue 11, found in the VM as 1 in 240 wayland-info
// clients without globals): the emulated device plays it (--qemu-fence-quirk), and two channels driven turn about
// must each receive exactly the host's bytes, once and in order, with no empty-ring message and no duplicate.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType } from "../../src/crossdomain/protocol.ts";
import { native } from "../../src/native.ts";
import {
  type DeviceProcess,
  HostServer,
  readPeer,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

describe("the emulated device playing QEMU's early POLL completion", () => {
  let tmp: ReturnType<typeof tempDir>;
  let host: HostServer;
  let device: DeviceProcess;
  const logLevel = process.env.CROSSWAY_LOG;
  beforeAll(async () => {
    tmp = tempDir("crossway-qemu-quirk-");
    host = new HostServer(join(tmp.dir, "wayland-host"));
    // debug: the device says each time it completes another context's POLL early.
    process.env.CROSSWAY_LOG = "debug";
    try {
      device = await startDeviceProcess(tmp.dir, ["--wayland", host.path, "--qemu-fence-quirk"]);
    } finally {
      if (logLevel === undefined) delete process.env.CROSSWAY_LOG;
      else process.env.CROSSWAY_LOG = logLevel;
    }
  });
  afterAll(async () => {
    await device?.stop();
    host?.close();
    tmp?.remove();
  });

  const open = async () => {
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(device.socket),
      channelType: ChannelType.WAYLAND,
    });
    const peer = await host.next();
    const got: string[] = [];
    let failure: string | null = null;
    ch.onReceive = (data) => {
      got.push(new TextDecoder().decode(data));
      return "continue";
    };
    const closed = new Promise<void>((resolve) => {
      ch.onClose = (reason) => {
        if (reason.kind === "error") failure = reason.error.message;
        resolve();
      };
    });
    return { ch, peer, got, closed, failure: () => failure };
  };

  /**
   * One round of channel `c`: the guest sends `req`, the host answers `ans` (ending in ";"), and the test waits until
   * `c` has received `answers` answers in all. The answer's fence completes the other channels' POLLs early.
   */
  const round = async (c: Awaited<ReturnType<typeof open>>, req: string, ans: string, answers: number) => {
    c.ch.send(new TextEncoder().encode(req), []);
    const got = await readPeer(c.peer, req.length);
    expect(new TextDecoder().decode(got.data)).toBe(req);
    await writeAll(c.peer, new TextEncoder().encode(ans));
    const deadline = Date.now() + 30_000;
    while (c.got.join("").split(";").length - 1 < answers && Date.now() < deadline && c.failure() === null)
      await new Promise((r) => setTimeout(r, 2));
  };

  it("two channels turn about: each gets every host message exactly once, in order", async () => {
    const a = await open();
    const b = await open();
    const ROUNDS = 60;
    try {
      for (let i = 0; i < ROUNDS; i++) {
        for (const [name, c] of [
          ["a", a],
          ["b", b],
        ] as const) {
          await round(c, `${name}-req-${i}`, `${name}-ans-${i};`, i + 1);
        }
      }
      expect(a.failure()).toBeNull();
      expect(b.failure()).toBeNull();
      const want = (n: string) => Array.from({ length: ROUNDS }, (_, i) => `${n}-ans-${i};`).join("");
      expect(a.got.join("")).toBe(want("a"));
      expect(b.got.join("")).toBe(want("b"));
      const early = device
        .stderr()
        .split("\n")
        .filter((l) => l.includes("POLL completed early")).length;
      console.log(`POLLs completed early by the other channel's fences: ${early} in ${2 * ROUNDS} rounds`);
      // The premise, not the property: the quirk happened often. How often depends on whether the other channel's
      // POLL is already pending when a fence fires, which load changes (exactly 60 once beside a busy loop, where
      // this asked for more than 60); the property is the exact, ordered delivery checked above.
      expect(early, "the device played the quirk").toBeGreaterThanOrEqual(ROUNDS / 2);
    } finally {
      for (const c of [a, b]) {
        c.ch.close();
        native.close(c.peer);
        await c.closed;
      }
    }
  }, 120_000);

  it("a READ (host pipe data) is delivered once when the next POLL completes early", async () => {
    const a = await open();
    const b = await open();
    const [clientR, clientW] = native.pipe2();
    let hostW = -1;
    try {
      // a's client asks for pipe data (wl_data_offer.receive): the host gets the pipe's write end.
      a.ch.send(new TextEncoder().encode("receive"), [{ kind: "read-pipe", fd: clientW }]);
      hostW = (await readPeer(a.peer, "receive".length)).fds[0]!;
      const buf = new Uint8Array(4096);
      let piped = "";
      const ROUNDS = 10;
      for (let i = 0; i < ROUNDS; i++) {
        // The host writes a chunk: a READ on a's ring. Then b makes a round trip, whose fence completes a's next
        // POLL early, with a's ring still holding that READ unless a cleared it.
        await writeAll(hostW, new TextEncoder().encode(`${i};`));
        const want = Array.from({ length: i + 1 }, (_, k) => `${k};`).join("");
        const deadline = Date.now() + 10_000;
        while (piped.length < want.length && Date.now() < deadline) {
          const n = native.read(clientR, buf, 0, buf.length);
          if (n > 0) piped += new TextDecoder().decode(buf.subarray(0, n));
          else await new Promise((r) => setTimeout(r, 2));
        }
        expect(piped).toBe(want);
        await round(b, `b-req-${i}`, `b-ans-${i};`, i + 1);
        // Anything a took from a stale ring is in the pipe by now.
        const n = native.read(clientR, buf, 0, buf.length);
        if (n > 0) piped += new TextDecoder().decode(buf.subarray(0, n));
        expect(piped, `after b's round ${i}`).toBe(want);
      }
      expect(a.failure()).toBeNull();
      expect(b.failure()).toBeNull();
    } finally {
      if (hostW >= 0) native.close(hostW);
      native.close(clientR);
      for (const c of [a, b]) {
        c.ch.close();
        native.close(c.peer);
        await c.closed;
      }
    }
  }, 120_000);
});
