// A real compositor behind the emulated device: raw Wayland through a cross-domain channel to headless weston,
// including a wl_shm pool backed by a host blob that weston maps.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType, DrmFormat } from "../../src/crossdomain/protocol.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type DeviceProcess, startDeviceProcess, tempDir } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

let tmp: ReturnType<typeof tempDir>;
let weston: Compositor | undefined;
let device: DeviceProcess | undefined;

beforeAll(async () => {
  tmp = tempDir("crossway-weston-");
  // The harness's weston is ready when it answers a round trip, not when its socket exists.
  weston = await startWeston({ width: 320, height: 240 });
  device = await startDeviceProcess(tmp.dir, ["--wayland", weston.socketPath]);
});

afterAll(async () => {
  await device?.stop();
  await weston?.stop();
  tmp?.remove();
});

/** Builds one Wayland message (native-endian = little-endian here) from u32 args and strings. */
function msg(object: number, opcode: number, args: Array<number | string>): Uint8Array {
  const parts: number[] = [];
  const bytes: Uint8Array[] = [];
  let size = 8;
  for (const a of args) {
    if (typeof a === "number") {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, a >>> 0, true);
      bytes.push(b);
      size += 4;
    } else {
      const s = new TextEncoder().encode(a);
      const padded = Math.ceil((s.length + 1) / 4) * 4;
      const b = new Uint8Array(4 + padded);
      new DataView(b.buffer).setUint32(0, s.length + 1, true);
      b.set(s, 4);
      bytes.push(b);
      size += b.length;
    }
  }
  parts.push(object, (size << 16) | opcode);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, parts[0]!, true);
  v.setUint32(4, parts[1]!, true);
  let o = 8;
  for (const b of bytes) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

interface Event {
  object: number;
  opcode: number;
  body: Uint8Array;
}

/** Collects events until wl_callback.done on `callbackId`. */
function untilDone(ch: CrossDomainChannel, callbackId: number): Promise<Event[]> {
  return new Promise((resolve) => {
    let buf = new Uint8Array(0);
    const events: Event[] = [];
    ch.onReceive = (data) => {
      const joined = new Uint8Array(buf.length + data.length);
      joined.set(buf);
      joined.set(data, buf.length);
      let o = 0;
      const v = new DataView(joined.buffer);
      while (joined.length - o >= 8) {
        const size = v.getUint32(o + 4, true) >>> 16;
        if (joined.length - o < size) break;
        const ev = {
          object: v.getUint32(o, true),
          opcode: v.getUint32(o + 4, true) & 0xffff,
          body: joined.slice(o + 8, o + size),
        };
        events.push(ev);
        o += size;
        if (ev.object === callbackId && ev.opcode === 0) resolve(events);
      }
      buf = joined.slice(o);
      return "continue";
    };
  });
}

function str(body: Uint8Array, off: number): string {
  const len = new DataView(body.buffer, body.byteOffset).getUint32(off, true);
  return new TextDecoder().decode(body.subarray(off + 4, off + 4 + len - 1));
}

describe("headless weston behind the emulated device", () => {
  it("lists globals and accepts a wl_shm pool backed by a host blob", async () => {
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(device!.socket),
      channelType: ChannelType.WAYLAND,
    });
    const closed = new Promise((r) => {
      ch.onClose = r;
    });
    // wl_display.get_registry(2); wl_display.sync(3)
    let done = untilDone(ch, 3);
    ch.send(new Uint8Array([...msg(1, 1, [2]), ...msg(1, 0, [3])]));
    const globals = (await done)
      .filter((e) => e.object === 2 && e.opcode === 0)
      .map((e) => ({ name: new DataView(e.body.buffer).getUint32(0, true), iface: str(e.body, 4) }));
    expect(globals.map((g) => g.iface)).toContain("wl_compositor");
    const shm = globals.find((g) => g.iface === "wl_shm")!;

    // wl_registry.bind(shm, "wl_shm", 1, 4); wl_shm.create_pool(5, fd, 4096); wl_display.sync(6)
    const reqs = await ch.imageRequirements(4096, 1, DrmFormat.R8);
    const pool = await ch.createHostBlob(reqs);
    done = untilDone(ch, 6);
    ch.send(
      new Uint8Array([...msg(2, 0, [shm.name, "wl_shm", 1, 4]), ...msg(4, 0, [5, 4096]), ...msg(1, 0, [6])]),
      [{ kind: "blob", resourceId: pool.resourceId }],
    );
    const events = await done;
    // No wl_display.error: weston mapped the host blob it received as the pool's fd.
    expect(events.filter((e) => e.object === 1 && e.opcode === 0)).toEqual([]);
    expect(events.some((e) => e.object === 4 && e.opcode === 0)).toBe(true); // wl_shm.format
    pool.close();
    ch.close();
    await closed;
  });
});
