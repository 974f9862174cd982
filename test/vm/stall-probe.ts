// Run as root in the VM tier's guest, on the real virtio_gpu driver: context A's first RESOURCE_CREATE_BLOB sleeps
// in the kernel (its argument sits on a userfaultfd page that is filled only later, so the DRM ioctl's copy-in
// waits, as a call waits for a slow host), while context B opens its own channel and makes wl_display.sync round
// trips to the host compositor through QEMU. Prints one JSON line: B's round trips, whether A got anywhere meanwhile,
// and A's own round trip once its call was let go.
// usage: node --import tsx test/vm/stall-probe.ts [round trips]
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { type KernelIo, nativeKernelIo, openKernelVirtGpu } from "../../src/crossdomain/kernel-virtgpu.ts";
import { ChannelType, DEFAULT_CONFIG } from "../../src/crossdomain/protocol.ts";
import { Ioctl } from "../../src/crossdomain/structs.ts";
import { getU32, setU32 } from "../../src/wire/bytes.ts";
import { kernelStall } from "../helpers/kernel-stall.ts";

const ROUND_TRIPS = Number(process.argv[2] ?? 20);
const stall = kernelStall();
let armed = true;
let stalledArg: Uint8Array | null = null;

/** The real syscalls, except that A's first RESOURCE_CREATE_BLOB reads its struct from the stall page. */
const stallingIo: KernelIo = {
  ...nativeKernelIo,
  queue(fd) {
    const q = nativeKernelIo.queue(fd);
    return {
      mmap: q.mmap,
      close: q.close,
      ioctl: async (request, arg, offsets, bufs) => {
        if (!armed || request !== Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB)
          return q.ioctl(request, arg, offsets, bufs);
        armed = false;
        stalledArg = arg.slice();
        const onPage = stall.view(arg.length);
        const r = await q.ioctl(request, onPage, offsets, bufs);
        arg.set(onPage);
        return r;
      },
    };
  },
};

function open(io?: KernelIo): Promise<CrossDomainChannel> {
  return CrossDomainChannel.open({
    gpu: openKernelVirtGpu(io ? { io } : {}),
    channelType: ChannelType.WAYLAND,
    probeLayout: "adopt",
    config: DEFAULT_CONFIG,
  });
}

/** wl_display.sync(new id) and the wait for that wl_callback's done event; returns its milliseconds. */
async function syncRoundTrip(ch: CrossDomainChannel, id: number): Promise<number> {
  const t0 = Date.now();
  const done = new Promise<void>((resolve) => {
    let buf = new Uint8Array(0);
    ch.onReceive = (data) => {
      const all = new Uint8Array(buf.length + data.length);
      all.set(buf);
      all.set(data, buf.length);
      let o = 0;
      while (o + 8 <= all.length) {
        const size = getU32(all, o + 4) >>> 16;
        if (size < 8 || o + size > all.length) break;
        if (getU32(all, o) === id && (getU32(all, o + 4) & 0xffff) === 0) resolve();
        o += size;
      }
      buf = all.slice(o);
      return "continue";
    };
  });
  const msg = new Uint8Array(12);
  setU32(msg, 0, 1);
  setU32(msg, 4, (12 << 16) | 0);
  setU32(msg, 8, id);
  ch.send(msg, []);
  await done;
  return Date.now() - t0;
}

const t0 = Date.now();
let aOpened = false;
const openA = open(stallingIo).then((ch) => {
  aOpened = true;
  return ch;
});
await stall.faulted;
const asleepAfterMs = Date.now() - t0;

const b = await open();
const times: number[] = [];
for (let i = 0; i < ROUND_TRIPS; i++) times.push(await syncRoundTrip(b, 2 + i));
const aOpenedDuringB = aOpened;

stall.fill(stalledArg!);
const a = await openA;
const aRoundTripMs = await syncRoundTrip(a, 2);
a.close();
b.close();
stall.dispose();
process.stdout.write(
  `${JSON.stringify({ asleepAfterMs, roundTrips: times.length, maxRoundTripMs: Math.max(...times), aOpenedDuringB, aRoundTripMs })}\n`,
);
