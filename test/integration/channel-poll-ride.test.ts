// The POLL that rides on the next SEND (channel.ts, issue 15): against a real `crossway device` and a real host
// socket, a round trip costs one EXECBUFFER carrying SEND and POLL, while a host that speaks unasked, and a RECEIVE
// that filled the host's buffer, are followed by a POLL at once.
import { describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { CHANNEL_RING, ChannelType, CrossDomainCmd } from "../../src/crossdomain/protocol.ts";
import type { ExecbufferOptions, VirtGpu } from "../../src/crossdomain/virtgpu.ts";
import { native } from "../../src/native.ts";
import { pattern, useDeviceAndHost, within, writeAll } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

const env = useDeviceAndHost("crossway-ride-");

/** What one EXECBUFFER carried: its commands (by id, in order) and its ring. */
interface Submitted {
  readonly cmds: number[];
  readonly ring: number | undefined;
  /** performance.now() at submission. */
  readonly at: number;
}

/** The real emulated backend, recording every EXECBUFFER's command ids (walked by their cmd_size) and ring. */
function recordingGpu(): { gpu: VirtGpu; log: Submitted[] } {
  const real = openEmulatedVirtGpu(env.device.socket);
  const log: Submitted[] = [];
  const gpu = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "execbuffer") {
        return (cmd: Uint8Array, opts?: ExecbufferOptions) => {
          const cmds: number[] = [];
          for (let off = 0; off + 4 <= cmd.length; ) {
            const size = cmd[off + 2]! | (cmd[off + 3]! << 8);
            cmds.push(cmd[off]!);
            if (size === 0) break;
            off += size;
          }
          log.push({ cmds, ring: opts?.ring, at: performance.now() });
          return target.execbuffer(cmd, opts);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { gpu, log };
}

/** Resolves with the next `bytes` bytes the guest side receives. */
function receive(ch: CrossDomainChannel, bytes: number): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const data = new Uint8Array(bytes);
    let got = 0;
    ch.onReceive = (d) => {
      data.set(d, got);
      got += d.length;
      if (got >= bytes) resolve(data);
      return "continue";
    };
  });
}

/** Reads exactly `n` bytes from the host peer (blocking reads of a nonblocking socket, retried). */
async function hostRead(fd: number, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  const deadline = Date.now() + 15_000;
  while (got < n) {
    const r = native.read(fd, out, got, n - got);
    if (r > 0) got += r;
    else if (Date.now() > deadline) throw new Error(`host read ${got} of ${n} bytes`);
    else await new Promise((res) => setTimeout(res, 1));
  }
  return out;
}

const SEND = CrossDomainCmd.SEND;
const POLL = CrossDomainCmd.POLL;

describe("the POLL after a RECEIVE", () => {
  it("goes alone within the millisecond when an answered client sends nothing: the host is heard again", async () => {
    const { gpu, log } = recordingGpu();
    const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });
    const peer = await env.host.next();
    native.setNonblockCloexec(peer);
    try {
      ch.send(pattern(12, 1));
      ch.expectAnswer();
      await within(hostRead(peer, 12), "the question");
      const answer = receive(ch, 16);
      await writeAll(peer, pattern(16, 2));
      await within(answer, "the answer");
      // The guest says nothing more; the host speaks again and is heard (the riding POLL went alone).
      const later = receive(ch, 16);
      await writeAll(peer, pattern(16, 3));
      expect(await within(later, "the host's next message")).toEqual(pattern(16, 3));
      expect(log.filter((s) => s.cmds.length === 1 && s.cmds[0] === POLL).length).toBeGreaterThanOrEqual(2);
    } finally {
      ch.close();
      native.close(peer);
    }
  });

  it("waits out the ride of a second answer that began while the first ride's timer ran, then goes alone", async () => {
    const { gpu, log } = recordingGpu();
    // A long ride, so that the second ride surely begins before the timer the first one armed has fired.
    const rideMs = 1000;
    const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND, pollRideMs: rideMs });
    const peer = await env.host.next();
    native.setNonblockCloexec(peer);
    try {
      const answeredAt: number[] = [];
      for (let i = 0; i < 2; i++) {
        // Some time between the rides, so a POLL sent when the first ride's timer fires would be clearly early.
        if (i === 1) await new Promise((r) => setTimeout(r, 30));
        ch.send(pattern(12, 10 + i));
        ch.expectAnswer();
        await within(hostRead(peer, 12), `question ${i}`);
        const answer = receive(ch, 16);
        await writeAll(peer, pattern(16, 20 + i));
        await within(answer, `answer ${i}`);
        answeredAt.push(performance.now());
      }
      const [first, second] = answeredAt as [number, number];
      // The first answer's POLL rode on the second question's SEND; the second one waits for a ride of its own.
      expect(log.some((s) => s.cmds.length === 2 && s.cmds[0] === SEND && s.cmds[1] === POLL)).toBe(true);
      expect(second - first, "the second ride began before the first ride's timer fired").toBeLessThan(
        rideMs / 2,
      );
      const before = log.length;
      const later = receive(ch, 16);
      await writeAll(peer, pattern(16, 30));
      expect(await within(later, "the host's next message")).toEqual(pattern(16, 30));
      // Heard through a POLL that went alone, and not before the second ride's time was up: the first ride's timer
      // fired while this ride had most of its time left (timers never fire early, so this bound cannot flake).
      const alone = log.slice(before).find((s) => s.cmds.length === 1 && s.cmds[0] === POLL);
      expect(alone).toBeDefined();
      expect((alone as Submitted).at - second).toBeGreaterThanOrEqual(rideMs - 1);
    } finally {
      ch.close();
      native.close(peer);
    }
  });

  it("rides on the next SEND of a round trip: one EXECBUFFER with SEND then POLL on the channel ring", async () => {
    const { gpu, log } = recordingGpu();
    const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });
    const peer = await env.host.next();
    native.setNonblockCloexec(peer);
    try {
      for (let i = 0; i < 20; i++) {
        const question = pattern(24, i + 1);
        const before = log.length;
        ch.send(question);
        // What the Wayland session says for a wl_display request (sync, get_registry): the client waits on this.
        ch.expectAnswer();
        expect(await within(hostRead(peer, 24), `question ${i}`)).toEqual(question);
        const answer = pattern(32, 100 + i);
        const got = receive(ch, 32);
        await writeAll(peer, answer);
        expect(await within(got, `answer ${i}`)).toEqual(answer);
        const sent = log.slice(before);
        if (i > 0) {
          // The POLL after the previous short answer waited for this SEND and went with it (no POLL alone before).
          expect(sent[0]).toMatchObject({ cmds: [SEND, POLL], ring: CHANNEL_RING });
        }
      }
      const alone = log.filter((s) => s.cmds.length === 1 && s.cmds[0] === POLL).length;
      // The first POLL at open, and at most the few whose millisecond ran out on a loaded machine.
      expect(alone).toBeLessThan(5);
    } finally {
      ch.close();
      native.close(peer);
    }
  });

  it("never rides after a host message nobody asked for (input, frame callbacks): the POLL goes at once", async () => {
    const { gpu, log } = recordingGpu();
    const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });
    const peer = await env.host.next();
    native.setNonblockCloexec(peer);
    try {
      for (let i = 0; i < 5; i++) {
        const msg = pattern(40, 7 + i);
        // Lone POLLs submitted by the end of the loop turn that delivered the message: before any timer can run.
        const polledThisTurn = new Promise<number>((resolve) => {
          ch.onReceive = (d) => {
            expect(d).toEqual(msg);
            setImmediate(() => resolve(log.filter((s) => s.cmds.length === 1 && s.cmds[0] === POLL).length));
            return "continue";
          };
        });
        const lone = log.filter((s) => s.cmds.length === 1 && s.cmds[0] === POLL).length;
        await writeAll(peer, msg);
        expect(await within(polledThisTurn, `host message ${i}`)).toBe(lone + 1);
      }
      expect(log.filter((s) => s.cmds.includes(SEND)).length).toBe(0);
    } finally {
      ch.close();
      native.close(peer);
    }
  });

  it("follows a RECEIVE that filled the host's buffer at once: a 20 KB host burst arrives whole, no guest SEND", async () => {
    const { gpu, log } = recordingGpu();
    const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });
    const peer = await env.host.next();
    native.setNonblockCloexec(peer);
    try {
      const burst = pattern(20_000, 3);
      const got = receive(ch, burst.length);
      await writeAll(peer, burst);
      expect(await within(got, "the burst")).toEqual(burst);
      expect(log.filter((s) => s.cmds.includes(SEND)).length).toBe(0);
    } finally {
      ch.close();
      native.close(peer);
    }
  });
});
