// Kernel VirtGpu backend: device discovery by driver name, and the exact ioctl sequence of a channel's life,
// recorded through an injected KernelIo that plays a minimal cross-domain host.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { CrossDomainChannel, closeItems, type ReceivedItem } from "../../../src/crossdomain/channel.ts";
import {
  encodeImageRequirements,
  encodeSendReceive,
  newIdentifierList,
} from "../../../src/crossdomain/codec.ts";
import {
  findVirtioGpuNode,
  type KernelIo,
  type KernelQueue,
  openKernelVirtGpu,
  systemPageSize,
} from "../../../src/crossdomain/kernel-virtgpu.ts";
import { ChannelType, CrossDomainCmd, IdentifierType } from "../../../src/crossdomain/protocol.ts";
import {
  DRM_GEM_CLOSE,
  DRM_PRIME_HANDLE,
  DRM_VIRTGPU_3D_WAIT,
  DRM_VIRTGPU_CONTEXT_INIT,
  DRM_VIRTGPU_EXECBUFFER,
  DRM_VIRTGPU_GET_CAPS,
  DRM_VIRTGPU_GETPARAM,
  DRM_VIRTGPU_MAP,
  DRM_VIRTGPU_RESOURCE_CREATE_BLOB,
  DRM_VIRTGPU_RESOURCE_INFO,
  Ioctl,
  type StructLayout,
} from "../../../src/crossdomain/structs.ts";
import { CrosswayError } from "../../../src/errors.ts";
import { native } from "../../../src/native.ts";
import { getU32, getU64Number, setU32 } from "../../../src/wire/bytes.ts";
import { tempDir } from "../../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";
import { type KernelStall, kernelStall } from "../../helpers/kernel-stall.ts";

useFdLeakCheck();

const tmp = tempDir("crossway-sysfs-");
afterAll(() => tmp.remove());

describe("finding the device", () => {
  it('reports "no virtio_gpu device" with what it looked at when there is no DRM at all', () => {
    const missing = join(tmp.dir, "no-such-class-drm");
    expect(() => findVirtioGpuNode(missing)).toThrow(
      /^no virtio_gpu device: cannot list .*no-such-class-drm \(ENOENT/,
    );
    // The default path, on this machine (no CONFIG_DRM on the host) or a VM alike, never crashes.
    try {
      const node = findVirtioGpuNode();
      expect(node).toMatch(/^\/dev\/dri\/(renderD|card)\d+$/);
    } catch (err) {
      expect(err).toBeInstanceOf(CrosswayError);
      expect((err as CrosswayError).code).toBe("CW_VIRTGPU_NO_DEVICE");
      expect((err as Error).message).toMatch(/^no virtio_gpu device: .*\/sys\/class\/drm/);
    }
    expect(() => openKernelVirtGpu({ sysfsDrm: missing })).toThrow(/no virtio_gpu device/);
  });

  function fakeSysfs(name: string, nodes: Record<string, string>): string {
    const root = join(tmp.dir, name);
    for (const [node, driver] of Object.entries(nodes)) {
      mkdirSync(join(root, node, "device"), { recursive: true });
      symlinkSync(`../../../bus/drivers/${driver}`, join(root, node, "device", "driver"));
    }
    mkdirSync(join(root, "version-dir"), { recursive: true });
    return root;
  }

  it("lists the nodes and drivers it saw when none is virtio_gpu", () => {
    const root = fakeSysfs("other", { card0: "vgem", renderD128: "bochs-drm" });
    expect(() => findVirtioGpuNode(root)).toThrow(
      `no virtio_gpu device: looked at ${root} (renderD128: bochs-drm, card0: vgem)`,
    );
  });

  it("picks the virtio_gpu render node by driver name, whatever its number", () => {
    const root = fakeSysfs("virtio", {
      card0: "vgem",
      card1: "virtio_gpu",
      renderD128: "vgem",
      renderD129: "virtio_gpu",
    });
    expect(findVirtioGpuNode(root, "/dev/dri")).toBe("/dev/dri/renderD129");
    const cardOnly = fakeSysfs("card-only", { card3: "virtio_gpu" });
    expect(findVirtioGpuNode(cardOnly, "/dev/dri")).toBe("/dev/dri/card3");
  });

  // What the Debian 6.1 guest kernel shows under QEMU 10 + rutabaga (issue 11, first contact): the DRM node's
  // device is the virtio transport's (driver virtio-pci; virtio-mmio under libkrun) and virtio_gpu is bound on its
  // child virtioN. The VM tier (test/vm) checks the same lookup against the real sysfs.
  function transportSysfs(name: string, transport: string): string {
    const root = join(tmp.dir, name);
    for (const node of ["card0", "renderD128"]) {
      mkdirSync(join(root, node, "device", "virtio0"), { recursive: true });
      mkdirSync(join(root, node, "device", "power"), { recursive: true });
      symlinkSync(`../../../bus/drivers/${transport}`, join(root, node, "device", "driver"));
      symlinkSync(
        `../../../../bus/virtio/drivers/virtio_gpu`,
        join(root, node, "device", "virtio0", "driver"),
      );
    }
    return root;
  }

  it("finds virtio_gpu one level down, under a virtio-pci or virtio-mmio transport", () => {
    expect(findVirtioGpuNode(transportSysfs("pci", "virtio-pci"), "/dev/dri")).toBe("/dev/dri/renderD128");
    expect(findVirtioGpuNode(transportSysfs("mmio", "virtio-mmio"), "/dev/dri")).toBe("/dev/dri/renderD128");
    // A transport whose child is another virtio driver is not a GPU, and the message shows both levels.
    const root = join(tmp.dir, "net");
    mkdirSync(join(root, "renderD128", "device", "virtio3"), { recursive: true });
    symlinkSync("../../../bus/drivers/virtio-pci", join(root, "renderD128", "device", "driver"));
    symlinkSync(
      "../../../../bus/virtio/drivers/virtio_net",
      join(root, "renderD128", "device", "virtio3", "driver"),
    );
    expect(() => findVirtioGpuNode(root)).toThrow(
      `no virtio_gpu device: looked at ${root} (renderD128: virtio-pci > virtio3: virtio_net)`,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A recording KernelIo that answers like a virtio-gpu device with a cross-domain host behind it.

/** Calls are recorded as the kernel sees them on entry: outputs (handles, offsets, fds) are not part of them. */
const LAYOUTS = new Map<number, [string, StructLayout]>([
  [Ioctl.VIRTGPU_GETPARAM, ["GETPARAM", DRM_VIRTGPU_GETPARAM]],
  [Ioctl.VIRTGPU_GET_CAPS, ["GET_CAPS", DRM_VIRTGPU_GET_CAPS]],
  [Ioctl.VIRTGPU_CONTEXT_INIT, ["CONTEXT_INIT", DRM_VIRTGPU_CONTEXT_INIT]],
  [Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB, ["RESOURCE_CREATE_BLOB", DRM_VIRTGPU_RESOURCE_CREATE_BLOB]],
  [Ioctl.VIRTGPU_MAP, ["MAP", DRM_VIRTGPU_MAP]],
  [Ioctl.VIRTGPU_EXECBUFFER, ["EXECBUFFER", DRM_VIRTGPU_EXECBUFFER]],
  [Ioctl.VIRTGPU_WAIT, ["WAIT", DRM_VIRTGPU_3D_WAIT]],
  [Ioctl.PRIME_HANDLE_TO_FD, ["PRIME_HANDLE_TO_FD", DRM_PRIME_HANDLE]],
  [Ioctl.PRIME_FD_TO_HANDLE, ["PRIME_FD_TO_HANDLE", DRM_PRIME_HANDLE]],
  [Ioctl.VIRTGPU_RESOURCE_INFO, ["RESOURCE_INFO", DRM_VIRTGPU_RESOURCE_INFO]],
  [Ioctl.GEM_CLOSE, ["GEM_CLOSE", DRM_GEM_CLOSE]],
]);

const POINTERS = new Set([
  "value",
  "addr",
  "ctx_set_params",
  "command",
  "bo_handles",
  "cmd",
  "in_syncobjs",
  "out_syncobjs",
]);

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** Input fields of a struct (non-zero, pointers shown by what they point at). */
function describeCall(
  request: number,
  arg: Uint8Array,
  offsets: readonly number[],
  bufs: readonly Uint8Array[],
) {
  const entry = LAYOUTS.get(request);
  if (entry === undefined) throw new Error(`unexpected ioctl 0x${request.toString(16)}`);
  const [name, layout] = entry;
  const rec: Record<string, unknown> = { ioctl: name };
  for (const [field, f] of Object.entries(layout.fields)) {
    if (POINTERS.has(field)) {
      const i = offsets.indexOf(f.offset);
      if (i >= 0) rec[field] = field === "value" ? "→u64" : hex(bufs[i]!);
      continue;
    }
    const v = f.size === 8 ? getU64Number(arg, f.offset) : getU32(arg, f.offset);
    if (v !== 0) rec[field] = v;
  }
  return rec;
}

class FakeDevice implements KernelIo {
  readonly calls: Array<Record<string, unknown>> = [];
  private nextHandle = 1;
  private readonly maps = new Map<number, ArrayBuffer>();
  private readonly blobs = new Map<number, { res: number; size: number }>();
  /** Imported dmabuf fd → its GEM handle. */
  private readonly imported = new Map<number, number>();
  private onReadable: (() => void) | null = null;
  private pendingEvents = 0;
  readonly exported: number[] = [];
  /** How many VIRTGPU_WAIT calls answer EBUSY (the query fence not signalled yet) before one succeeds. */
  waitBusy = 0;

  open(path: string): number {
    this.calls.push({ open: path });
    return 1000;
  }
  close(fd: number): void {
    this.calls.push({ close: fd });
  }
  ioctl(
    fd: number,
    request: number,
    arg: Uint8Array,
    offsets: readonly number[],
    bufs: readonly Uint8Array[],
  ): number {
    expect(fd).toBe(1000);
    this.calls.push(describeCall(request, arg, offsets, bufs));
    switch (request) {
      case Ioctl.VIRTGPU_GETPARAM: {
        const param = getU64Number(arg, 0);
        // Only sizeof(int) bytes are written (P22).
        setU32(bufs[0]!, 0, param === 7 ? 1 << 5 : 1);
        return 0;
      }
      case Ioctl.VIRTGPU_GET_CAPS:
        setU32(bufs[0]!, 0, 1);
        setU32(bufs[0]!, 4, 1 << ChannelType.WAYLAND);
        return 0;
      case Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB: {
        const h = this.nextHandle++;
        setU32(arg, 8, h);
        setU32(arg, 12, 10 + h);
        this.blobs.set(h, { res: 10 + h, size: getU64Number(arg, 16) });
        return 0;
      }
      case Ioctl.VIRTGPU_MAP:
        setU32(arg, 0, 0x100000 * getU32(arg, 8));
        return 0;
      case Ioctl.VIRTGPU_EXECBUFFER: {
        const cmd = bufs[0]!;
        if (cmd[0] === CrossDomainCmd.GET_IMAGE_REQUIREMENTS) {
          // The host writes the reply into the query ring (handle 1's mapping).
          const ring = new Uint8Array(this.maps.get(1)!);
          encodeImageRequirements(ring, 0, {
            strides: [getU32(cmd, 8), 0, 0, 0],
            offsets: [0, 0, 0, 0],
            modifier: 0n,
            size: 4096,
            blobId: 2,
            mapInfo: 1,
            memoryIdx: -1,
            physicalDeviceIdx: -1,
          });
        }
        return 0;
      }
      case Ioctl.PRIME_FD_TO_HANDLE: {
        // As drm_gem_prime_fd_to_handle: a GEM handle from the file's idr, which starts at 1 (never 0), and the
        // same handle again for a dmabuf this file already imported.
        const fd = getU32(arg, 8);
        let h = this.imported.get(fd);
        if (h === undefined) {
          h = this.nextHandle++;
          this.imported.set(fd, h);
          this.blobs.set(h, { res: 10 + h, size: 8192 });
        }
        setU32(arg, 0, h);
        return 0;
      }
      case Ioctl.VIRTGPU_RESOURCE_INFO: {
        // struct drm_virtgpu_resource_info {bo_handle, res_handle, size, blob_mem}: ENOENT for an unknown handle.
        const b = this.blobs.get(getU32(arg, 0));
        if (b === undefined)
          throw Object.assign(new Error("ioctl: No such file or directory"), { code: "ENOENT" });
        setU32(arg, 4, b.res);
        setU32(arg, 8, b.size);
        return 0;
      }
      case Ioctl.VIRTGPU_WAIT:
        if (this.waitBusy > 0) {
          this.waitBusy--;
          throw Object.assign(new Error("ioctl: Device or resource busy"), { code: "EBUSY", errno: -16 });
        }
        return 0;
      case Ioctl.PRIME_HANDLE_TO_FD: {
        const fd = native.memfdCreate("fake-dmabuf", 0);
        this.exported.push(fd);
        setU32(arg, 8, fd);
        return 0;
      }
      default:
        return 0;
    }
  }
  mmap(fd: number, length: number, prot: number, flags: number, offset: number): ArrayBuffer {
    this.calls.push({ mmap: { fd, length, prot, flags, offset } });
    const ab = new ArrayBuffer(length);
    this.maps.set(offset / 0x100000, ab);
    return ab;
  }
  munmap(ab: ArrayBuffer): void {
    this.calls.push({ munmap: ab.byteLength });
  }
  /** Answers at once, in order: the real queue's thread is the native test's business (ioctl-queue.test.ts). */
  queue(fd: number): KernelQueue {
    const settle = <T>(f: () => T): Promise<T> => {
      try {
        return Promise.resolve(f());
      } catch (err) {
        return Promise.reject(err);
      }
    };
    return {
      ioctl: (request, arg, offsets, bufs) => settle(() => this.ioctl(fd, request, arg, offsets, bufs)),
      mmap: (length, prot, flags, offset) => settle(() => this.mmap(fd, length, prot, flags, offset)),
      close: () => this.close(fd),
    };
  }
  read(fd: number, buf: Uint8Array, offset: number, length: number): number {
    expect(fd).toBe(1000);
    expect(length).toBeGreaterThanOrEqual(8);
    const n = this.pendingEvents;
    this.pendingEvents = 0;
    for (let i = 0; i < n; i++) buf.set([0, 0, 0, 0x90, 8, 0, 0, 0], offset + 8 * i);
    return 8 * n;
  }
  watch(fd: number, onReadable: () => void): { close(): void } {
    expect(fd).toBe(1000);
    this.onReadable = onReadable;
    return { close: () => this.calls.push({ unwatch: fd }) };
  }
  /** The host writes one message into the channel ring (handle 2) and signals the POLL fence. */
  hostWrites(fill: (ring: Uint8Array) => void): void {
    fill(new Uint8Array(this.maps.get(2)!));
    this.pendingEvents = 1;
    this.onReadable!();
  }
  /**
   * What QEMU's rutabaga device does to an idle context when another context's newer POLL fence is signalled: this
   * POLL completes (a fence event) though nothing was written; the host's own signal later finds nothing to complete.
   */
  otherContextCompletes(): void {
    this.pendingEvents = 1;
    this.onReadable!();
  }
  /** The host's write for a POLL that was already completed: no event follows it. */
  hostWritesSilently(fill: (ring: Uint8Array) => void): void {
    fill(new Uint8Array(this.maps.get(2)!));
  }
}

/** The host's RECEIVE of a 100-byte blob item (id 5) with the bytes "keymap", as a keymap event would bring it. */
function writeKeymapBlob(ring: Uint8Array): void {
  const ids = newIdentifierList();
  ids.count = 1;
  ids.ids[0] = 5;
  ids.types[0] = IdentifierType.VIRTGPU_BLOB;
  ids.sizes[0] = 100;
  encodeSendReceive(ring, 0, CrossDomainCmd.RECEIVE, ids, new TextEncoder().encode("keymap"), 28, "zero");
}

describe("ioctl sequences of a channel on the kernel backend", () => {
  it("open, SEND, RECEIVE of a host blob, close", async () => {
    const dev = new FakeDevice();
    const gpu = openKernelVirtGpu({ node: "/dev/dri/renderD130", io: dev });
    expect(gpu.description).toBe("kernel:/dev/dri/renderD130");
    const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });

    const POLL = "0300100000000000" + "0".repeat(16);
    expect(dev.calls).toEqual([
      { open: "/dev/dri/renderD130" },
      { ioctl: "GETPARAM", param: 1, value: "→u64" },
      { ioctl: "GETPARAM", param: 3, value: "→u64" },
      { ioctl: "GETPARAM", param: 4, value: "→u64" },
      { ioctl: "GETPARAM", param: 6, value: "→u64" },
      { ioctl: "GETPARAM", param: 7, value: "→u64" },
      { ioctl: "GET_CAPS", cap_set_id: 5, size: 16, addr: "0".repeat(32) },
      {
        ioctl: "CONTEXT_INIT",
        num_params: 3,
        // {CAPSET_ID 5}, {NUM_RINGS 2}, {POLL_RINGS_MASK 1<<1}
        ctx_set_params:
          "0100000000000000" +
          "0500000000000000" +
          "0200000000000000" +
          "0200000000000000" +
          "0300000000000000" +
          "0200000000000000",
      },
      // Both rings are made, then both mapped (the channel asks for them together, and the context's queue runs
      // the calls in the order they were asked for: both MAPs, then both mmaps).
      { ioctl: "RESOURCE_CREATE_BLOB", blob_mem: 1, blob_flags: 1, size: 4096 },
      { ioctl: "RESOURCE_CREATE_BLOB", blob_mem: 1, blob_flags: 1, size: 4096 },
      { ioctl: "MAP", handle: 1 },
      { ioctl: "MAP", handle: 2 },
      { mmap: { fd: 1000, length: 4096, prot: 3, flags: 1, offset: 0x100000 } },
      { mmap: { fd: 1000, length: 4096, prot: 3, flags: 1, offset: 0x200000 } },
      // INIT alone, 20 bytes: query ring 11, channel ring 12, Wayland.
      { ioctl: "EXECBUFFER", size: 20, command: "0100140000000000" + "0b000000" + "0c000000" + "01000000" },
      // The probe query on ring 0 with the query-ring BO, then WAIT on it.
      {
        ioctl: "EXECBUFFER",
        flags: 4,
        size: 24,
        num_bo_handles: 1,
        command: "0200180000000000" + "01000000" + "01000000" + "52382020" + "11000000",
        bo_handles: "01000000",
      },
      { ioctl: "WAIT", handle: 1, flags: 1 },
      // Exactly one POLL, on ring 1 with RING_IDX.
      { ioctl: "EXECBUFFER", flags: 4, ring_idx: 1, size: 16, command: POLL },
    ]);

    dev.calls.length = 0;
    ch.send(new TextEncoder().encode("request!"), [{ kind: "blob", resourceId: 0x2a }]);
    const send = dev.calls[0] as { ioctl: string; size: number; command: string };
    expect(send).toMatchObject({ ioctl: "EXECBUFFER", size: 360 });
    expect(send.command.slice(0, 32)).toBe("0400680100000000" + "01000000" + "08000000");
    expect(send.command.slice(32, 40)).toBe("2a000000");
    expect(send.command.slice(256, 264)).toBe("01000000");
    expect(send.command.slice(704)).toBe(hex(new TextEncoder().encode("request!")));

    dev.calls.length = 0;
    const received = new Promise<{ text: string; items: readonly ReceivedItem[] }>((resolve) => {
      ch.onReceive = (data, items) => {
        resolve({ text: new TextDecoder().decode(data), items });
        return "continue";
      };
    });
    dev.hostWrites(writeKeymapBlob);
    const r = await received;
    expect(r.text).toBe("keymap");
    expect(r.items).toEqual([{ kind: "blob", fd: dev.exported[0], size: 100, access: "unknown" }]);
    await new Promise((res) => setImmediate(res));
    expect(dev.calls).toEqual([
      // One HOST3D blob per received id, exported, then its GEM handle closed (§6.4).
      { ioctl: "RESOURCE_CREATE_BLOB", blob_mem: 2, blob_flags: 3, size: 100, blob_id: 5 },
      { ioctl: "PRIME_HANDLE_TO_FD", handle: 3, flags: 0o2000002 },
      { ioctl: "GEM_CLOSE", handle: 3 },
      { ioctl: "EXECBUFFER", flags: 4, ring_idx: 1, size: 16, command: POLL },
    ]);
    closeItems(r.items);

    dev.calls.length = 0;
    const closed = new Promise((res) => {
      ch.onClose = res;
    });
    dev.hostWrites((ring) => {
      encodeSendReceive(ring, 0, CrossDomainCmd.RECEIVE, newIdentifierList(), new Uint8Array(0), 28, "zero");
    });
    expect(await closed).toEqual({ kind: "host-hangup" });
    // No POLL after a zero-length RECEIVE (§6.9); the rings are unmapped and the DRM fd closed.
    expect(dev.calls).toEqual([{ munmap: 4096 }, { munmap: 4096 }, { unwatch: 1000 }, { close: 1000 }]);
  });

  it("a PRIME import resolves the resource id with RESOURCE_INFO", async () => {
    const dev = new FakeDevice();
    const gpu = openKernelVirtGpu({ node: "/dev/dri/card0", io: dev });
    const handle = await gpu.importBlob(42);
    expect(handle).toEqual({ bo: 1, resourceId: 11, size: 8192 });
    // The kernel dedups a second import of the same dmabuf into the same GEM handle (P18).
    expect(await gpu.importBlob(42)).toEqual(handle);
    expect(dev.calls.slice(1, 3)).toEqual([
      { ioctl: "PRIME_FD_TO_HANDLE", fd: 42 },
      { ioctl: "RESOURCE_INFO", bo_handle: 1 },
    ]);
    gpu.close();
  });
});

describe("waiting for the query ring (issue 11)", () => {
  it("never blocks the event loop: WAIT is NOWAIT, polled with back-off until the fence signals", async () => {
    const dev = new FakeDevice();
    dev.waitBusy = 5;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const ch = await CrossDomainChannel.open({
        gpu: openKernelVirtGpu({ node: "/dev/dri/renderD128", io: dev }),
        channelType: ChannelType.WAYLAND,
      });
      ch.close();
    } finally {
      clearInterval(timer);
    }
    const waits = dev.calls.filter((c) => c.ioctl === "WAIT");
    expect(waits).toHaveLength(6);
    for (const w of waits) expect(w).toEqual({ ioctl: "WAIT", handle: 1, flags: 1 });
    expect(ticks).toBeGreaterThan(0);
  });

  it("ends the client with CW_CROSSDOMAIN_HOST_TIMEOUT when the host never writes the query ring", async () => {
    const dev = new FakeDevice();
    dev.waitBusy = Number.POSITIVE_INFINITY;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = Date.now();
    let error: unknown;
    try {
      await CrossDomainChannel.open({
        gpu: openKernelVirtGpu({ node: "/dev/dri/renderD128", io: dev, hostTimeoutMs: 300 }),
        channelType: ChannelType.WAYLAND,
      });
    } catch (err) {
      error = err;
    } finally {
      clearInterval(timer);
    }
    const ms = Date.now() - t0;
    expect(error).toMatchObject({ code: "CW_CROSSDOMAIN_INIT_FAILED" });
    expect((error as Error).cause).toMatchObject({
      code: "CW_CROSSDOMAIN_HOST_TIMEOUT",
      message:
        "kernel:/dev/dri/renderD128: the host did not answer on the query ring within 300 ms (resource 11 still busy)",
    });
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(ms, "bounded, not a hang").toBeLessThan(30_000);
    // Other work ran all along: a 5 ms timer kept firing during the 300 ms (a wait blocking the event loop would
    // let it fire at most once; on a loaded machine it fires less often than every 5 ms, hence only > 3).
    expect(ticks).toBeGreaterThan(3);
    expect(dev.calls.at(-1)).toEqual({ close: 1000 });
  });
});

describe("rings sized to the guest's page (issue 11)", () => {
  it("reads the kernel's page size from smaps, 4 KiB when it cannot", () => {
    const f = join(tmp.dir, "smaps16k");
    writeFileSync(
      f,
      "aaaa-bbbb r-xp 00000000 fe:01 1 /usr/bin/node\nSize: 64 kB\nKernelPageSize:       16 kB\nMMUPageSize: 16 kB\n",
    );
    expect(systemPageSize(f)).toBe(16384);
    expect(systemPageSize(join(tmp.dir, "no-smaps"))).toBe(4096);
    expect(systemPageSize()).toBe(4096); // this x86-64 machine
  });

  it("creates and maps 16 KiB rings on a 16 KiB-page guest", async () => {
    const dev = new FakeDevice();
    const ch = await CrossDomainChannel.open({
      gpu: openKernelVirtGpu({ node: "/dev/dri/renderD128", io: dev, pageSize: 16384 }),
      channelType: ChannelType.WAYLAND,
    });
    ch.close();
    expect(dev.calls.filter((c) => c.ioctl === "RESOURCE_CREATE_BLOB")).toEqual([
      { ioctl: "RESOURCE_CREATE_BLOB", blob_mem: 1, blob_flags: 1, size: 16384 },
      { ioctl: "RESOURCE_CREATE_BLOB", blob_mem: 1, blob_flags: 1, size: 16384 },
    ]);
    expect(dev.calls.filter((c) => "mmap" in c).map((c) => (c.mmap as { length: number }).length)).toEqual([
      16384, 16384,
    ]);
  });
});

describe("a host slow to answer one context (issue 11: no blocking ioctl on the event loop)", () => {
  /** FIONREAD on a pipe: a real, instant ioctl that each fake call first makes on a real native queue. */
  const FIONREAD = 0x541b;
  const FIONBIO = 0x5421;

  /**
   * The FakeDevice's answers, each behind a real call on the context's own native.IoctlQueue thread; the call for
   * `stallOn` instead sleeps in the kernel (kernelStall) until the test releases it, as virtio_gpu sleeps until the
   * host answers.
   */
  function gatedIo(
    dev: FakeDevice,
    stallOn: ((request: number, arg: Uint8Array) => boolean) | null,
    stall: KernelStall | null,
  ): KernelIo {
    return {
      open: (path) => dev.open(path),
      munmap: (ab) => dev.munmap(ab),
      read: (fd, buf, offset, length) => dev.read(fd, buf, offset, length),
      watch: (fd, cb) => dev.watch(fd, cb),
      queue: (fd) => {
        const [r, w] = native.pipe2();
        native.close(w);
        const gate = new native.IoctlQueue(r);
        const fake = dev.queue(fd);
        const scratch = new Uint8Array(4);
        const through = (request: number, arg: Uint8Array | null) =>
          stall !== null && arg !== null && stallOn?.(request, arg)
            ? gate.ioctl(FIONBIO, stall.arg, [], [])
            : gate.ioctl(FIONREAD, scratch, [], []);
        return {
          ioctl: (request, arg, offsets, bufs) =>
            through(request, arg).then(() => fake.ioctl(request, arg, offsets, bufs)),
          mmap: (length, prot, flags, offset) =>
            through(0, null).then(() => fake.mmap(length, prot, flags, offset)),
          close: () => {
            void gate.close().then(() => fake.close());
          },
        };
      },
    };
  }

  it("one channel's host-blob creation asleep in the kernel; another channel's round trips keep flowing", async () => {
    const stall = kernelStall();
    const devA = new FakeDevice();
    const devB = new FakeDevice();
    let stallArmed = false;
    const isHostBlob = (request: number, arg: Uint8Array) =>
      stallArmed && request === Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB && getU32(arg, 0) === 2;
    const chA = await CrossDomainChannel.open({
      gpu: openKernelVirtGpu({
        node: "/dev/dri/renderD128",
        io: gatedIo(devA, isHostBlob, stall),
        hostTimeoutMs: 120_000,
      }),
      channelType: ChannelType.WAYLAND,
    });
    const chB = await CrossDomainChannel.open({
      gpu: openKernelVirtGpu({ node: "/dev/dri/renderD128", io: gatedIo(devB, null, null) }),
      channelType: ChannelType.WAYLAND,
    });
    try {
      // A's host sends a keymap-like blob: the guest's RESOURCE_CREATE_BLOB for it sleeps in the kernel.
      stallArmed = true;
      const receivedA = new Promise<readonly ReceivedItem[]>((resolve) => {
        chA.onReceive = (_data, items) => {
          resolve(items);
          return "continue";
        };
      });
      let aDone = false;
      void receivedA.then(() => {
        aDone = true;
      });
      devA.hostWrites(writeKeymapBlob);
      await stall.faulted;

      // B: 30 SEND → RECEIVE round trips while A's call sleeps.
      for (let i = 0; i < 30; i++) {
        const reply = new Promise<string>((resolve) => {
          chB.onReceive = (data) => {
            resolve(new TextDecoder().decode(data));
            return "continue";
          };
        });
        expect(chB.send(new TextEncoder().encode(`ping ${i}`), [])).toBe("sent");
        devB.hostWrites((ring) =>
          encodeSendReceive(
            ring,
            0,
            CrossDomainCmd.RECEIVE,
            newIdentifierList(),
            new TextEncoder().encode(`pong ${i}`),
            28,
            "zero",
          ),
        );
        expect(await reply).toBe(`pong ${i}`);
      }
      expect(aDone, "A's message waits for its blob").toBe(false);
      expect(devA.calls.filter((c) => c.ioctl === "PRIME_HANDLE_TO_FD")).toEqual([]);

      // The host answers: A's blob is created, exported and closed, in order, and its message delivered.
      stall.release();
      const items = await receivedA;
      expect(items).toEqual([{ kind: "blob", fd: devA.exported[0], size: 100, access: "unknown" }]);
      closeItems(items);
      // GEM_CLOSE is queued without anyone awaiting it: it reaches the (fake) kernel right after.
      await vi.waitFor(() => {
        const hostBlob = devA.calls.findIndex((c) => c.ioctl === "RESOURCE_CREATE_BLOB" && c.blob_mem === 2);
        expect(devA.calls.slice(hostBlob, hostBlob + 3).map((c) => c.ioctl)).toEqual([
          "RESOURCE_CREATE_BLOB",
          "PRIME_HANDLE_TO_FD",
          "GEM_CLOSE",
        ]);
      });
    } finally {
      stall.release();
      chA.close();
      chB.close();
      // The queues close their fds after the calls queued before; wait for the fakes to see both closes.
      await vi.waitFor(() => {
        expect(devA.calls.at(-1)).toEqual({ close: 1000 });
        expect(devB.calls.at(-1)).toEqual({ close: 1000 });
      });
      stall.dispose();
    }
  });

  it("a call that never returns ends that channel with CW_CROSSDOMAIN_HOST_TIMEOUT after hostTimeoutMs", async () => {
    const stall = kernelStall();
    const dev = new FakeDevice();
    let armed = false;
    const ch = await CrossDomainChannel.open({
      gpu: openKernelVirtGpu({
        node: "/dev/dri/renderD128",
        io: gatedIo(
          dev,
          (request, arg) => armed && request === Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB && getU32(arg, 0) === 2,
          stall,
        ),
        hostTimeoutMs: 300,
      }),
      channelType: ChannelType.WAYLAND,
    });
    try {
      armed = true;
      const closed = new Promise<unknown>((resolve) => {
        ch.onClose = resolve;
      });
      const t0 = Date.now();
      dev.hostWrites(writeKeymapBlob);
      await stall.faulted;
      const reason = (await closed) as { kind: string; error: Error & { code: string } };
      expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
      expect(reason.kind).toBe("error");
      expect(reason.error).toMatchObject({ code: "CW_CROSSDOMAIN_HOST_TIMEOUT" });
      expect(reason.error.message).toContain(
        "kernel:/dev/dri/renderD128: RESOURCE_CREATE_BLOB(blob_mem=2, size=100, blob_id=5) did not return within 300 ms",
      );
    } finally {
      stall.release();
      ch.close();
      // The queue closes the fd only after the stalled call has returned.
      await vi.waitFor(() => expect(dev.calls.at(-1)).toEqual({ close: 1000 }));
      stall.dispose();
    }
  });
});

describe("QEMU completes a POLL for another context's fence (issue 11: 1 of 20 concurrent clients failed)", () => {
  /** The host's RECEIVE of `text` with no items. */
  const receive = (text: string) => (ring: Uint8Array) =>
    encodeSendReceive(
      ring,
      0,
      CrossDomainCmd.RECEIVE,
      newIdentifierList(),
      new TextEncoder().encode(text),
      28,
      "zero",
    );

  it("a completion without a message is not an error: the ring is watched, the message delivered once, POLLs stay single", async () => {
    const dev = new FakeDevice();
    const ch = await CrossDomainChannel.open({
      gpu: openKernelVirtGpu({ node: "/dev/dri/renderD128", io: dev }),
      channelType: ChannelType.WAYLAND,
    });
    const got: string[] = [];
    let closed: unknown;
    ch.onClose = (r) => {
      closed = r;
    };
    ch.onReceive = (data) => {
      got.push(new TextDecoder().decode(data));
      return "continue";
    };
    const polls = () => dev.calls.filter((c) => c.ioctl === "EXECBUFFER" && c.ring_idx === 1).length;
    try {
      // A first message, as usual; the ring is then marked consumed.
      dev.hostWrites(receive("first"));
      await vi.waitFor(() => expect(got).toEqual(["first"]));
      await vi.waitFor(() => expect(polls()).toBe(2));

      // Completed by another context's fence: nothing written (before the fix: "unexpected message type 0", or the
      // previous message read a second time).
      dev.otherContextCompletes();
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBeUndefined();
      expect(got).toEqual(["first"]);
      expect(polls(), "no second POLL while the host's job for this one is pending").toBe(2);

      // The host's write for that POLL comes without an event; it is delivered, then the next POLL goes out.
      dev.hostWritesSilently(receive("second"));
      await vi.waitFor(() => expect(got).toEqual(["first", "second"]));
      await vi.waitFor(() => expect(polls()).toBe(3));
      dev.hostWrites(receive("third"));
      await vi.waitFor(() => expect(got).toEqual(["first", "second", "third"]));
      expect(closed).toBeUndefined();
    } finally {
      ch.close();
    }
  });
});
