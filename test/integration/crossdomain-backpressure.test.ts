// The emulated device holds back a context's submissions while its host socket is full, as a real VMM's blocking
// write does (crossdomain.md P26): memory stays bounded, and every byte still arrives in order once the peer reads.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { encodeSendReceive, newIdentifierList } from "../../src/crossdomain/codec.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import {
  ChannelType,
  CrossDomainCmd,
  DEFAULT_CONFIG,
  MAX_SEND_RECV_SIZE,
  sendReceiveHeaderSize,
} from "../../src/crossdomain/protocol.ts";
import type { VirtGpu } from "../../src/crossdomain/virtgpu.ts";
import { native, POLL_DISCONNECT } from "../../src/native.ts";
import { pattern, readPeer, sameBytes, useDeviceAndHost, within } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

const env = useDeviceAndHost("crossway-bp-");

/** What the guest pushes, and in what pieces (a guest session's flushes are smaller; the size does not matter). */
const TOTAL = 24 << 20;
const CHUNK = 64 << 10;

function deviceRssKiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${env.device.pid}/status`, "utf8"));
  if (m === null) throw new Error("no VmRSS for the device");
  return Number(m[1]);
}

/** Resolves true on the channel's next drain, false if none comes within `ms` (nobody is reading). */
function drained(ch: CrossDomainChannel, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    ch.onDrain = () => {
      clearTimeout(timer);
      resolve(true);
    };
  });
}

/** Resolves true when the other end of `fd` hangs up, false if it does not within `ms` (nothing is read from `fd`). */
function hangUp(fd: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const w = native.createWatcher(fd, (status, events) => {
      if (status < 0 || (events & POLL_DISCONNECT) !== 0) done(true);
    });
    const timer = setTimeout(() => done(false), ms);
    function done(v: boolean): void {
      clearTimeout(timer);
      w.stop();
      w.close();
      resolve(v);
    }
    w.start(POLL_DISCONNECT);
  });
}

/** Opens a channel and its host peer connection, runs `body`, then closes both. */
async function withChannel(
  body: (ch: CrossDomainChannel, peer: number, gpu: VirtGpu) => Promise<void>,
): Promise<void> {
  const gpu = openEmulatedVirtGpu(env.device.socket);
  const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });
  const peer = await env.host.next();
  native.setNonblockCloexec(peer);
  const closed = new Promise((resolve) => {
    ch.onClose = resolve;
  });
  try {
    await body(ch, peer, gpu);
  } finally {
    ch.close();
    await closed;
    native.close(peer);
  }
}

/**
 * Sends `data` from `from` on as the guest's sessions do, stopping at "buffered" and going on at the drain, until
 * no drain comes for 3 s: with the host peer not reading, that happens once the kernel's socket buffers, the
 * device's bounded queue and the guest's queue are full. Returns where it stopped (data.length: nothing held back).
 */
async function sendUntilStalled(ch: CrossDomainChannel, data: Uint8Array): Promise<number> {
  let sent = 0;
  while (sent < data.length) {
    const r = ch.send(data.subarray(sent, sent + CHUNK));
    sent += CHUNK;
    if (r === "buffered" && !(await drained(ch, 3000))) break;
  }
  return sent;
}

describe("back-pressure from the host socket to the guest", () => {
  it("stops taking SENDs while the host peer reads nothing, then delivers every byte in order", async () => {
    await withChannel(async (ch, peer) => {
      const data = pattern(TOTAL, 11);
      const rssBefore = deviceRssKiB();
      let sent = await sendUntilStalled(ch, data);
      expect(sent, "every byte was taken while the host peer read nothing").toBeLessThan(16 << 20);
      // Without the stall the device would hold what the peer did not read (tens of MiB); with it, a few hundred KiB.
      const grownKiB = deviceRssKiB() - rssBefore;
      expect(grownKiB, `device grew by ${grownKiB} KiB`).toBeLessThan(12 << 10);

      // The peer reads now: the rest goes out at each drain, and the bytes arrive whole and in order.
      const atPeer = readPeer(peer, TOTAL);
      while (sent < TOTAL) {
        const r = ch.send(data.subarray(sent, sent + CHUNK));
        sent += CHUNK;
        if (r === "buffered") expect(await drained(ch, 30_000)).toBe(true);
      }
      expect(sameBytes((await atPeer).data, data)).toBe("equal");
    });
  }, 120_000);

  it("takes submissions again after one SUBMIT alone went over the mark and the host read it all", async () => {
    await withChannel(async (ch, peer, gpu) => {
      // Another guest may put many SENDs in one EXECBUFFER (crossway's own puts at most 4): 24 of the largest, 88 KiB,
      // more than the device's mark, but all of it fits in the kernel's socket buffer, so nothing ever blocks.
      const n = 24;
      const hdr = sendReceiveHeaderSize(DEFAULT_CONFIG.maxIdentifiers);
      const data = pattern(n * MAX_SEND_RECV_SIZE, 3);
      const cmds = new Uint8Array(n * (hdr + MAX_SEND_RECV_SIZE));
      const noIds = newIdentifierList(DEFAULT_CONFIG.maxIdentifiers);
      let at = 0;
      for (let i = 0; i < n; i++) {
        const piece = data.subarray(i * MAX_SEND_RECV_SIZE, (i + 1) * MAX_SEND_RECV_SIZE);
        at += encodeSendReceive(cmds, at, CrossDomainCmd.SEND, noIds, piece, DEFAULT_CONFIG.maxIdentifiers);
      }
      gpu.execbuffer(cmds.subarray(0, at));
      // The next SEND goes behind it: the device must still be taking this context's frames.
      const after = pattern(1000, 4);
      ch.send(after);
      const got = await within(
        readPeer(peer, data.length + after.length),
        "the bytes after the large SUBMIT",
      );
      expect(sameBytes(got.data.subarray(0, data.length), data)).toBe("equal");
      expect(sameBytes(got.data.subarray(data.length), after)).toBe("equal");
    });
  }, 60_000);

  it("still notices a guest that goes away while its SENDs are held back", async () => {
    await withChannel(async (ch, peer) => {
      expect(await sendUntilStalled(ch, pattern(TOTAL, 5))).toBeLessThan(16 << 20);
      const gone = hangUp(peer, 10_000);
      ch.close();
      // The device must end the context, closing the host socket, though nothing ever drains its queue.
      expect(await gone, "the device kept the context of a guest that went away").toBe(true);
      expect(env.device.child.exitCode, `the device exited: ${env.device.stderr()}`).toBeNull();
    });
  }, 120_000);
});
