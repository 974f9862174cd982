// The emulated device holds back a context's submissions while its host socket is full, as a real VMM's blocking
// write does (crossdomain.md P26): memory stays bounded, and every byte still arrives in order once the peer reads.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType } from "../../src/crossdomain/protocol.ts";
import { native } from "../../src/native.ts";
import { pattern, readPeer, sameBytes, useDeviceAndHost } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

const env = useDeviceAndHost("crossway-bp-");

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

describe("back-pressure from the host socket to the guest", () => {
  it("stops taking SENDs while the host peer reads nothing, then delivers every byte in order", async () => {
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(env.device.socket),
      channelType: ChannelType.WAYLAND,
    });
    const peer = await env.host.next();
    native.setNonblockCloexec(peer);
    const closed = new Promise((resolve) => {
      ch.onClose = resolve;
    });
    try {
      await pushAgainstSilentPeer(ch, peer);
    } finally {
      ch.close();
      await closed;
      native.close(peer);
    }
  }, 120_000);
});

async function pushAgainstSilentPeer(ch: CrossDomainChannel, peer: number): Promise<void> {
  const total = 24 << 20;
  const chunk = 64 << 10;
  const data = pattern(total, 11);
  const rssBefore = deviceRssKiB();

  // Send as the guest's sessions do: stop at "buffered", go on at the drain. With the peer not reading, a drain
  // must stop coming once the kernel's socket buffers, the device's bounded queue and the guest's queue are full.
  let sent = 0;
  let stalledAt = -1;
  while (sent < total) {
    const r = ch.send(data.subarray(sent, sent + chunk));
    sent += chunk;
    if (r === "buffered" && !(await drained(ch, 3000))) {
      stalledAt = sent;
      break;
    }
  }
  expect(stalledAt, "every byte was taken while the host peer read nothing").toBeGreaterThan(0);
  expect(stalledAt).toBeLessThan(16 << 20);
  // Without the stall the device would hold what the peer did not read (tens of MiB); with it, a few hundred KiB.
  const grownKiB = deviceRssKiB() - rssBefore;
  expect(grownKiB, `device grew by ${grownKiB} KiB`).toBeLessThan(12 << 10);

  // The peer reads now: the rest goes out at each drain, and the bytes arrive whole and in order.
  const atPeer = readPeer(peer, total);
  while (sent < total) {
    const r = ch.send(data.subarray(sent, sent + chunk));
    sent += chunk;
    if (r === "buffered") expect(await drained(ch, 30_000)).toBe(true);
  }
  expect(sameBytes((await atPeer).data, data)).toBe("equal");
}
