// The kernel VirtGpu backend: virtgpu DRM ioctls on a virtio_gpu render node, found by driver name in sysfs.
// Struct layouts come from structs.ts; every ioctl goes through an injectable KernelIo so that tests can record the
// exact call sequence (no virtio-gpu with cross-domain exists on the development machines, see environment.md).
// Every ioctl and mmap runs in order on the context's own native queue thread, never on the event loop: virtio_gpu
// sleeps in the caller until the host answers, and one slow answer must not stop every other client.
import { closeSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { basename, join } from "node:path";
import { CrosswayError } from "../errors.ts";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../fd/constants.ts";
import { native, POLL_READABLE } from "../native.ts";
import { getU32, getU64Number, setU32, setU64Number } from "../wire/bytes.ts";
import {
  ContextParam,
  DRM_EVENT,
  DRM_GEM_CLOSE,
  DRM_PRIME_HANDLE,
  DRM_VIRTGPU_3D_WAIT,
  DRM_VIRTGPU_CONTEXT_INIT,
  DRM_VIRTGPU_CONTEXT_SET_PARAM,
  DRM_VIRTGPU_EXECBUFFER,
  DRM_VIRTGPU_GET_CAPS,
  DRM_VIRTGPU_GETPARAM,
  DRM_VIRTGPU_MAP,
  DRM_VIRTGPU_RESOURCE_CREATE_BLOB,
  DRM_VIRTGPU_RESOURCE_INFO,
  ExecbufFlags,
  Ioctl,
  PRIME_FLAGS_CLOEXEC_RDWR,
  type StructLayout,
  VIRTGPU_EVENT_FENCE_SIGNALED,
  VirtgpuParam,
} from "./structs.ts";
import type {
  BlobHandle,
  BlobMapping,
  BlobRequest,
  BlobWindow,
  ContextInitParams,
  ExecbufferOptions,
  ExportedBlob,
  VirtGpu,
  VirtGpuParams,
} from "./virtgpu.ts";

/** The syscalls the kernel backend makes; {@link nativeKernelIo} is the real one, tests inject recorders. */
export interface KernelIo {
  open(path: string): number;
  /** The context's ordered call queue on `fd`, which it owns from then on (closed by {@link KernelQueue.close}). */
  queue(fd: number): KernelQueue;
  munmap(ab: ArrayBuffer): void;
  read(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /** Calls `onReadable` whenever `fd` is readable, until the returned handle is closed. */
  watch(fd: number, onReadable: () => void): { close(): void };
}

/**
 * One context's calls that may sleep until the host answers, run off the event loop in submission order (a WAIT
 * must see the EXECBUFFER before it; a GEM_CLOSE must not overtake the calls using its handle).
 */
export interface KernelQueue {
  /** ioctl with `arg`; the address of `ptrBuffers[i]` is stored as a u64 at `arg[ptrOffsets[i]]` first. */
  ioctl(
    request: number,
    arg: Uint8Array,
    ptrOffsets: readonly number[],
    ptrBuffers: readonly Uint8Array[],
  ): Promise<number>;
  mmap(length: number, prot: number, flags: number, offset: number): Promise<ArrayBuffer>;
  /** Closes the fd once every call queued before has returned. */
  close(): void;
}

/** The real syscalls, through the native addon; the queue is a thread per context (native/src/ioctl_queue.cc). */
export const nativeKernelIo: KernelIo = {
  open: (path) => openSync(path, "r+"),
  queue: (fd) => {
    const q = new native.IoctlQueue(fd);
    return {
      ioctl: (request, arg, offsets, buffers) => q.ioctl(request, arg, offsets, buffers),
      mmap: (length, prot, flags, offset) => q.mmap(length, prot, flags, offset),
      // close(2) of a DRM fd reports nothing useful: the context is gone either way.
      close: () => void q.close().catch(() => {}),
    };
  },
  munmap: (ab) => native.munmap(ab),
  read: (fd, buf, offset, length) => native.read(fd, buf, offset, length),
  watch: (fd, onReadable) => {
    const w = native.createWatcher(fd, () => onReadable());
    w.start(POLL_READABLE);
    return {
      close: () => {
        w.stop();
        w.close();
      },
    };
  },
};

/** Options of {@link openKernelVirtGpu}. */
export interface KernelVirtGpuOptions {
  /** A DRM node path; by default the first virtio_gpu render node found in sysfs. */
  readonly node?: string;
  /** sysfs DRM class directory (tests point it at a fake tree). */
  readonly sysfsDrm?: string;
  /** Device directory of the nodes. */
  readonly devDri?: string;
  readonly io?: KernelIo;
  /** The guest page size (ring size); default: the kernel's, from /proc/self/smaps. */
  readonly pageSize?: number;
  /**
   * How long a query may stay unanswered, or any ioctl or mmap may take, before the client is ended
   * (CW_CROSSDOMAIN_HOST_TIMEOUT); default 10 s.
   */
  readonly hostTimeoutMs?: number;
}

/**
 * Finds a virtio_gpu DRM node by driver name (`/sys/class/drm/<node>/device/driver` → …/virtio_gpu), preferring
 * render nodes, never assuming renderD128 (P25: libkrun's GPU is on virtio-mmio, so PCI ids are no guide either).
 * Throws CW_VIRTGPU_NO_DEVICE "no virtio_gpu device" naming what it looked at.
 */
export function findVirtioGpuNode(sysfsDrm = "/sys/class/drm", devDri = "/dev/dri"): string {
  let entries: string[];
  try {
    entries = readdirSync(sysfsDrm);
  } catch (err) {
    throw new CrosswayError(
      "CW_VIRTGPU_NO_DEVICE",
      `no virtio_gpu device: cannot list ${sysfsDrm} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; a kernel without DRM, or not a VM guest)`,
      { value: sysfsDrm },
    );
  }
  const seen: string[] = [];
  const nodes = entries.filter((e) => /^(renderD|card)\d+$/.test(e)).sort((a, b) => rank(a) - rank(b));
  for (const name of nodes) {
    const drivers = nodeDrivers(join(sysfsDrm, name, "device"));
    seen.push(`${name}: ${drivers.join(" > ")}`);
    if (drivers.some((d) => d.endsWith("virtio_gpu"))) return join(devDri, name);
  }
  throw new CrosswayError(
    "CW_VIRTGPU_NO_DEVICE",
    `no virtio_gpu device: looked at ${sysfsDrm} (${seen.length > 0 ? seen.join(", ") : `no card/renderD nodes among ${entries.length} entries`})`,
    { value: sysfsDrm },
  );
}

/**
 * The drivers bound along a DRM node's device: its own (`device/driver`) and those of its virtio children
 * (`device/virtio*\/driver`). In a real VM the DRM device is the virtio transport's (driver `virtio-pci`, or
 * `virtio-mmio` under libkrun) and virtio_gpu is bound one level down, on `virtioN` (seen in QEMU with rutabaga).
 */
function nodeDrivers(device: string): string[] {
  const driverOf = (dir: string): string => {
    try {
      return basename(readlinkSync(join(dir, "driver")));
    } catch {
      return "no driver link";
    }
  };
  const out = [driverOf(device)];
  let children: string[] = [];
  try {
    children = readdirSync(device).filter((e) => /^virtio\d+$/.test(e));
  } catch {
    // no device directory: the node's own entry already says "no driver link"
  }
  for (const c of children.sort()) out.push(`${c}: ${driverOf(join(device, c))}`);
  return out;
}

/**
 * The kernel's page size, as /proc/self/smaps reports it for this process's first mapping ("KernelPageSize: 4 kB";
 * 16 kB on 16 KiB-page arm64 guests). Node.js has no sysconf(_SC_PAGESIZE); 4096 when smaps is unreadable.
 */
export function systemPageSize(smaps = "/proc/self/smaps"): number {
  let text = "";
  try {
    const fd = openSync(smaps, "r");
    try {
      const buf = Buffer.alloc(8192);
      text = buf.subarray(0, readSync(fd, buf, 0, buf.length, null)).toString("latin1");
    } finally {
      closeSync(fd);
    }
  } catch {
    return 4096;
  }
  const m = /^KernelPageSize:\s+(\d+) kB$/m.exec(text);
  return m ? Number(m[1]) * 1024 : 4096;
}

function rank(name: string): number {
  return (name.startsWith("renderD") ? 0 : 1000) + Number(name.replace(/\D+/g, ""));
}

/** Opens a virtio_gpu node (found by driver name unless `node` is given) as a VirtGpu. */
export function openKernelVirtGpu(options: KernelVirtGpuOptions = {}): VirtGpu {
  const node = options.node ?? findVirtioGpuNode(options.sysfsDrm, options.devDri);
  const io = options.io ?? nativeKernelIo;
  let fd: number;
  try {
    fd = io.open(node);
  } catch (err) {
    throw new CrosswayError(
      "CW_VIRTGPU_NO_DEVICE",
      `cannot open ${node}: ${(err as Error).message}`,
      { value: node },
      {
        cause: err,
      },
    );
  }
  return new KernelVirtGpu(
    fd,
    node,
    io,
    options.hostTimeoutMs ?? DEFAULT_HOST_TIMEOUT_MS,
    options.pageSize ?? systemPageSize(),
  );
}

const PAGE = 4096;
/** `VIRTGPU_WAIT_NOWAIT` (virtgpu_drm.h): return EBUSY instead of sleeping while the BO's fences are unsignalled. */
const VIRTGPU_WAIT_NOWAIT = 1;
/** A query ring answers in microseconds on a live host: 10 s of silence means it is stuck or gone. */
const DEFAULT_HOST_TIMEOUT_MS = 10_000;

function struct(layout: StructLayout): Uint8Array {
  return new Uint8Array(layout.size);
}

function put32(b: Uint8Array, layout: StructLayout, field: string, v: number): void {
  setU32(b, layout.fields[field]!.offset, v);
}

function put64(b: Uint8Array, layout: StructLayout, field: string, v: number): void {
  setU64Number(b, layout.fields[field]!.offset, v);
}

function get32(b: Uint8Array, layout: StructLayout, field: string): number {
  return getU32(b, layout.fields[field]!.offset);
}

function off(layout: StructLayout, field: string): number {
  return layout.fields[field]!.offset;
}

/** EXECBUFFERs queued but not returned above which execbuffer() asks for back-pressure (then onDrain at the low mark). */
const EXECBUF_HIGH_WATER = 64;
const EXECBUF_LOW_WATER = 16;

class KernelVirtGpu implements VirtGpu {
  readonly description: string;
  onFence: () => void = () => {};
  onDrain: () => void = () => {};
  onHostError: (message: string) => void = () => {};
  private readonly watch: { close(): void };
  private readonly queue: KernelQueue;
  private readonly events = new Uint8Array(1024);
  private closed = false;
  /** EXECBUFFERs submitted to the queue and not returned yet. */
  private execInFlight = 0;
  private drainWanted = false;

  constructor(
    private readonly fd: number,
    node: string,
    private readonly io: KernelIo,
    private readonly hostTimeoutMs: number,
    private readonly pageSize: number,
  ) {
    this.description = `kernel:${node}`;
    this.queue = io.queue(fd);
    this.watch = io.watch(fd, () => this.readEvents());
  }

  /**
   * `p`, or CW_CROSSDOMAIN_HOST_TIMEOUT once it has taken hostTimeoutMs: the kernel sleeps in some calls until the
   * host answers (an mmap of a host blob until RESOURCE_MAP_BLOB's response, with no bound of its own).
   */
  private bounded<T>(p: Promise<T>, name: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new CrosswayError(
              "CW_CROSSDOMAIN_HOST_TIMEOUT",
              `${this.description}: ${name} did not return within ${this.hostTimeoutMs} ms (the host is not answering)`,
              { value: this.hostTimeoutMs },
            ),
          ),
        this.hostTimeoutMs,
      );
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  private checkOpen(name: string): void {
    if (this.closed)
      throw new CrosswayError("CW_CROSSDOMAIN_CLOSED", `${name}: ${this.description} is closed`);
  }

  private ioctlError(name: string, err: unknown): unknown {
    if (err instanceof CrosswayError) return err;
    return new CrosswayError(
      "CW_VIRTGPU_IOCTL",
      `${this.description}: ${name}: ${(err as Error).message}`,
      {},
      { cause: err },
    );
  }

  private async call(
    name: string,
    request: number,
    arg: Uint8Array,
    offsets: number[] = [],
    bufs: Uint8Array[] = [],
  ): Promise<number> {
    this.checkOpen(name);
    try {
      return await this.bounded(this.queue.ioctl(request, arg, offsets, bufs), name);
    } catch (err) {
      throw this.ioctlError(name, err);
    }
  }

  /** Queues a call whose result nobody awaits (EXECBUFFER, GEM_CLOSE): a failure ends the context's channel. */
  private fireAndReport(
    name: string,
    request: number,
    arg: Uint8Array,
    offsets: number[],
    bufs: Uint8Array[],
  ): Promise<void> {
    return this.bounded(this.queue.ioctl(request, arg, offsets, bufs), name).then(
      () => {},
      (err: unknown) => {
        if (!this.closed) this.onHostError((this.ioctlError(name, err) as Error).message);
      },
    );
  }

  private async param(param: number): Promise<number> {
    const arg = struct(DRM_VIRTGPU_GETPARAM);
    put64(arg, DRM_VIRTGPU_GETPARAM, "param", param);
    // The kernel writes sizeof(int) bytes (P22): a zeroed u64 reads right either way.
    const value = new Uint8Array(8);
    try {
      await this.call("GETPARAM", Ioctl.VIRTGPU_GETPARAM, arg, [off(DRM_VIRTGPU_GETPARAM, "value")], [value]);
    } catch (err) {
      if ((err as CrosswayError).code !== "CW_VIRTGPU_IOCTL") throw err;
      return 0; // unknown params are EINVAL: not supported
    }
    return getU32(value, 0);
  }

  async getParams(): Promise<VirtGpuParams> {
    // Queued together: the queue runs them in this order, one hop through the event loop for all five.
    const [features3d, resourceBlob, hostVisible, contextInit, capsetMask] = await Promise.all(
      [
        VirtgpuParam.FEATURES_3D,
        VirtgpuParam.RESOURCE_BLOB,
        VirtgpuParam.HOST_VISIBLE,
        VirtgpuParam.CONTEXT_INIT,
        VirtgpuParam.SUPPORTED_CAPSET_IDS,
      ].map((p) => this.param(p)),
    );
    return {
      features3d: features3d === 1,
      resourceBlob: resourceBlob === 1,
      hostVisible: hostVisible === 1,
      contextInit: contextInit === 1,
      capsetMask: capsetMask!,
      pageSize: this.pageSize,
    };
  }

  async getCaps(capsetId: number, version: number, size: number): Promise<Uint8Array> {
    const L = DRM_VIRTGPU_GET_CAPS;
    const arg = struct(L);
    const out = new Uint8Array(size);
    put32(arg, L, "cap_set_id", capsetId);
    put32(arg, L, "cap_set_ver", version);
    put32(arg, L, "size", size);
    // The first GET_CAPS of a capset asks the host and sleeps until it answers (then the kernel caches it).
    await this.call("GET_CAPS", Ioctl.VIRTGPU_GET_CAPS, arg, [off(L, "addr")], [out]);
    return out;
  }

  async initContext(p: ContextInitParams): Promise<void> {
    const P = DRM_VIRTGPU_CONTEXT_SET_PARAM;
    const params = new Uint8Array(3 * P.size);
    const entries = [
      [ContextParam.CAPSET_ID, p.capsetId],
      [ContextParam.NUM_RINGS, p.numRings],
      [ContextParam.POLL_RINGS_MASK, p.pollRingsMask],
    ] as const;
    entries.forEach(([k, v], i) => {
      setU64Number(params, i * P.size + off(P, "param"), k);
      setU64Number(params, i * P.size + off(P, "value"), v);
    });
    const L = DRM_VIRTGPU_CONTEXT_INIT;
    const arg = struct(L);
    put32(arg, L, "num_params", entries.length);
    await this.call("CONTEXT_INIT", Ioctl.VIRTGPU_CONTEXT_INIT, arg, [off(L, "ctx_set_params")], [params]);
  }

  async createBlob(req: BlobRequest): Promise<BlobHandle> {
    const L = DRM_VIRTGPU_RESOURCE_CREATE_BLOB;
    const arg = struct(L);
    put32(arg, L, "blob_mem", req.blobMem);
    put32(arg, L, "blob_flags", req.blobFlags);
    put64(arg, L, "size", req.size);
    put64(arg, L, "blob_id", req.blobId);
    await this.call(
      `RESOURCE_CREATE_BLOB(blob_mem=${req.blobMem}, size=${req.size}, blob_id=${req.blobId})`,
      Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB,
      arg,
    );
    // The kernel page-aligns the size (virtio_gpu_vram_create); a mapping must cover the whole object (P16).
    return {
      bo: get32(arg, L, "bo_handle"),
      resourceId: get32(arg, L, "res_handle"),
      size: Math.ceil(req.size / PAGE) * PAGE,
    };
  }

  /** Always the whole blob, whatever window is asked for: older kernels reject partial maps (P16). */
  async mapBlob(blob: BlobHandle, _window?: BlobWindow): Promise<BlobMapping> {
    const L = DRM_VIRTGPU_MAP;
    const arg = struct(L);
    put32(arg, L, "handle", blob.bo);
    await this.call("VIRTGPU_MAP", Ioctl.VIRTGPU_MAP, arg);
    const offset = getU64Number(arg, off(L, "offset"));
    // The guest cannot see the host's access mode (P9): map RW like Sommelier; keep host blobs away from writers.
    // The mmap of a host blob sleeps until the host has mapped it (RESOURCE_MAP_BLOB's response): on the queue too.
    const name = `mmap of resource ${blob.resourceId}`;
    this.checkOpen(name);
    let ab: ArrayBuffer;
    try {
      ab = await this.bounded(this.queue.mmap(blob.size, PROT_READ | PROT_WRITE, MAP_SHARED, offset), name);
    } catch (err) {
      throw this.ioctlError(name, err);
    }
    let mapped = true;
    return {
      bytes: new Uint8Array(ab),
      base: 0,
      writable: true,
      unmap: () => {
        if (mapped) this.io.munmap(ab);
        mapped = false;
      },
    };
  }

  /** None: a blob's memory is a GEM object (a dmabuf export takes no copy_file_range or pwrite). */
  fileFd(_blob: BlobHandle): number | null {
    return null;
  }

  async exportBlob(blob: BlobHandle): Promise<ExportedBlob> {
    const L = DRM_PRIME_HANDLE;
    const arg = struct(L);
    put32(arg, L, "handle", blob.bo);
    put32(arg, L, "flags", PRIME_FLAGS_CLOEXEC_RDWR);
    await this.call("PRIME_HANDLE_TO_FD", Ioctl.PRIME_HANDLE_TO_FD, arg);
    return { fd: get32(arg, L, "fd") | 0, access: "unknown" };
  }

  async importBlob(fd: number): Promise<BlobHandle> {
    const P = DRM_PRIME_HANDLE;
    const prime = struct(P);
    put32(prime, P, "fd", fd);
    await this.call("PRIME_FD_TO_HANDLE", Ioctl.PRIME_FD_TO_HANDLE, prime);
    const bo = get32(prime, P, "handle");
    const R = DRM_VIRTGPU_RESOURCE_INFO;
    const info = struct(R);
    put32(info, R, "bo_handle", bo);
    await this.call("RESOURCE_INFO", Ioctl.VIRTGPU_RESOURCE_INFO, info);
    return { bo, resourceId: get32(info, R, "res_handle"), size: get32(info, R, "size") };
  }

  closeBlob(blob: BlobHandle): void {
    if (this.closed) return;
    const arg = struct(DRM_GEM_CLOSE);
    put32(arg, DRM_GEM_CLOSE, "handle", blob.bo);
    // Queued behind the calls using the handle; freeing the object sends the host UNMAP/UNREF.
    void this.fireAndReport("GEM_CLOSE", Ioctl.GEM_CLOSE, arg, [], []);
  }

  execbuffer(cmd: Uint8Array, opts: ExecbufferOptions = {}): boolean {
    this.checkOpen("EXECBUFFER");
    const L = DRM_VIRTGPU_EXECBUFFER;
    const arg = struct(L);
    put32(arg, L, "flags", opts.ring !== undefined ? ExecbufFlags.RING_IDX : 0);
    put32(arg, L, "size", cmd.length);
    put32(arg, L, "ring_idx", opts.ring ?? 0);
    const offsets = [off(L, "command")];
    // A copy: callers reuse their command buffer as soon as this returns, the queue's thread reads it later.
    const bufs = [cmd.slice()];
    const bos = opts.boHandles ?? [];
    if (bos.length > 0) {
      const handles = new Uint8Array(4 * bos.length);
      for (let i = 0; i < bos.length; i++) setU32(handles, 4 * i, bos[i]!);
      offsets.push(off(L, "bo_handles"));
      bufs.push(handles);
      put32(arg, L, "num_bo_handles", bos.length);
    }
    // SUBMIT_3D sleeps while the control virtqueue is full (a host that stopped taking commands): queued.
    this.execInFlight++;
    void this.fireAndReport("EXECBUFFER", Ioctl.VIRTGPU_EXECBUFFER, arg, offsets, bufs).then(() => {
      this.execInFlight--;
      if (this.drainWanted && this.execInFlight <= EXECBUF_LOW_WATER && !this.closed) {
        this.drainWanted = false;
        this.onDrain();
      }
    });
    if (this.execInFlight < EXECBUF_HIGH_WATER) return true;
    this.drainWanted = true;
    return false;
  }

  async wait(blob: BlobHandle): Promise<void> {
    const L = DRM_VIRTGPU_3D_WAIT;
    const arg = struct(L);
    put32(arg, L, "handle", blob.bo);
    // VIRTGPU_WAIT_NOWAIT: a blocking WAIT would hold the queue (and, before the queue, the whole event loop) for
    // as long as the host takes (up to the kernel's 15 s, P23). Poll with back-off instead, bounded by hostTimeoutMs.
    put32(arg, L, "flags", VIRTGPU_WAIT_NOWAIT);
    const deadline = Date.now() + this.hostTimeoutMs;
    const timeout = () =>
      new CrosswayError(
        "CW_CROSSDOMAIN_HOST_TIMEOUT",
        `${this.description}: the host did not answer on the query ring within ${this.hostTimeoutMs} ms (resource ${blob.resourceId} still busy)`,
        { value: this.hostTimeoutMs },
      );
    for (let delay = 0; ; delay = Math.min(Math.max(1, 2 * delay), 50)) {
      try {
        await this.call("VIRTGPU_WAIT", Ioctl.VIRTGPU_WAIT, arg);
        return;
      } catch (err) {
        if ((err as CrosswayError).code === "CW_CROSSDOMAIN_HOST_TIMEOUT") throw timeout();
        if (((err as Error).cause as NodeJS.ErrnoException | undefined)?.code !== "EBUSY") throw err;
      }
      if (Date.now() >= deadline) throw timeout();
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private readEvents(): void {
    if (this.closed) return;
    let n: number;
    try {
      n = this.io.read(this.fd, this.events, 0, this.events.length);
    } catch (err) {
      this.onHostError(`${this.description}: read of DRM events failed: ${(err as Error).message}`);
      return;
    }
    // read() returns whole drm_events (§5.10).
    for (let o = 0; o + DRM_EVENT.size <= n; ) {
      const type = getU32(this.events, o);
      const length = getU32(this.events, o + 4);
      if (type === VIRTGPU_EVENT_FENCE_SIGNALED) this.onFence();
      o += Math.max(length, DRM_EVENT.size);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch.close();
    // Closing the DRM fd destroys the context; the host drops its state and socket (§6.9). The queue closes it
    // after the calls still queued, so none of them can reach a reused fd number.
    this.queue.close();
  }
}
