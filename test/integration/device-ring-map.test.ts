// The device writes a sealed channel ring through a mapping (as a VMM stores into guest memory) and an unsealed one
// with pwrite (which fails instead of SIGBUS if the memory shrank): both against a real `crossway device`, the
// mapping read from the device's own /proc/<pid>/maps.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { encodeInit, encodePoll } from "../../src/crossdomain/codec.ts";
import { buildFrame, FrameType, u64Fields } from "../../src/crossdomain/device-protocol.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import {
  CAPSET_CROSS_DOMAIN,
  CHANNEL_RING,
  ChannelType,
  CrossDomainCmd,
} from "../../src/crossdomain/protocol.ts";
import { BlobFlags, BlobMem } from "../../src/crossdomain/structs.ts";
import { MAP_SHARED, PROT_READ } from "../../src/fd/constants.ts";
import { native } from "../../src/native.ts";
import { getU32 } from "../../src/wire/bytes.ts";
import { nextDeviceFrame, pattern, useDeviceAndHost, within, writeAll } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

const env = useDeviceAndHost("crossway-ringmap-");

/** The device's mappings whose path names `name` (memfds show as "/memfd:<name> (deleted)"). */
function deviceMappings(name: string): number {
  return readFileSync(`/proc/${env.device.pid}/maps`, "utf8")
    .split("\n")
    .filter((l) => l.includes(`memfd:${name}`)).length;
}

describe("the device's channel-ring writes", () => {
  it("go through a mapping when the guest memory is sealed against shrinking (the emulated guest's rings)", async () => {
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(env.device.socket),
      channelType: ChannelType.WAYLAND,
    });
    const peer = await env.host.next();
    try {
      const msg = pattern(100, 5);
      const got = new Promise<Uint8Array>((resolve) => {
        ch.onReceive = (d) => {
          resolve(d.slice());
          return "continue";
        };
      });
      await writeAll(peer, msg);
      expect(await within(got, "the host's message")).toEqual(msg);
      expect(deviceMappings("crossway-guest-blob")).toBeGreaterThanOrEqual(1);
    } finally {
      ch.close();
      native.close(peer);
    }
  });

  it("go through pwrite when it is not sealed (a guest that made its own memfds): the message still arrives", async () => {
    const dev = native.unixConnect(env.device.socket);
    native.setNonblockCloexec(dev);
    const rings: number[] = [];
    const inbuf = { data: new Uint8Array(65536), len: 0 };
    let peer = -1;
    let view: ArrayBuffer | null = null;
    try {
      const ctx = buildFrame(FrameType.CONTEXT_INIT, 1, [CAPSET_CROSS_DOMAIN, 2, 1 << CHANNEL_RING], null, 0);
      expect(native.write(dev, ctx, 0, ctx.length)).toBe(ctx.length);
      expect((await nextDeviceFrame(dev, inbuf)).type).toBe(FrameType.REPLY);
      const ids: number[] = [];
      for (let i = 0; i < 2; i++) {
        const mem = native.memfdCreate("unsealed-ring", 0);
        native.ftruncate(mem, 4096);
        rings.push(mem);
        const f = buildFrame(
          FrameType.CREATE_BLOB,
          2 + i,
          [BlobMem.GUEST, BlobFlags.USE_MAPPABLE, ...u64Fields(4096), ...u64Fields(0)],
          null,
          1,
        );
        expect(native.sendmsg(dev, f, 0, f.length, [mem])).toBe(f.length);
        const r = await nextDeviceFrame(dev, inbuf);
        expect(getU32(r.payload, 0)).toBe(0);
        ids.push(getU32(r.payload, 4));
      }
      const init = new Uint8Array(20);
      encodeInit(init, 0, {
        form: "v1",
        queryRingId: ids[0]!,
        channelRingId: ids[1]!,
        channelType: ChannelType.WAYLAND,
      });
      const submitInit = buildFrame(FrameType.SUBMIT, 0, [0, 0, 0], init, 0);
      native.write(dev, submitInit, 0, submitInit.length);
      peer = await env.host.next();
      const poll = new Uint8Array(16);
      encodePoll(poll, 0);
      const submitPoll = buildFrame(FrameType.SUBMIT, 0, [4, CHANNEL_RING, 7], poll, 0);
      native.write(dev, submitPoll, 0, submitPoll.length);
      const msg = pattern(80, 9);
      await writeAll(peer, msg);
      const fence = await within(nextDeviceFrame(dev, inbuf), "the POLL's fence");
      expect(fence.type).toBe(FrameType.FENCE);
      expect(getU32(fence.payload, 0)).toBe(7);
      view = native.mmap(rings[1]!, 4096, PROT_READ, MAP_SHARED, 0);
      const ring = new Uint8Array(view);
      expect(ring[0]).toBe(CrossDomainCmd.RECEIVE);
      expect(getU32(ring, 12)).toBe(80);
      expect(ring.subarray(16 + 12 * 28, 16 + 12 * 28 + 80)).toEqual(msg);
      expect(deviceMappings("unsealed-ring")).toBe(0);
    } finally {
      if (view !== null) native.munmap(view);
      if (peer >= 0) native.close(peer);
      for (const r of rings) native.close(r);
      native.close(dev);
    }
  });
});
