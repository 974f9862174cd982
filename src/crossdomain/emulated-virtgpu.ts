// The emulated VirtGpu backend: a client of `crossway device` over a Unix socket, standing in for the guest kernel.
// Guest memory blobs are memfds this backend creates and lends to the device (the VMM sees guest RAM); host blobs are
// memfds the device lends back (host-visible memory). Nothing else crosses: no fd of a guest client ever does.
import { CrosswayError } from "../errors.ts";
import {
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  PROT_READ,
  PROT_WRITE,
} from "../fd/constants.ts";
import { componentLogger } from "../log.ts";
import { native } from "../native.ts";
import { getU32 } from "../wire/bytes.ts";
import {
  buildFrame,
  encodeFrame,
  FrameType,
  field,
  field64,
  frameSize,
  u64Fields,
} from "./device-protocol.ts";
import { FastState, newFastState } from "./fast-state.ts";
import { FramedSocket } from "./framed-socket.ts";
import { BlobMem } from "./structs.ts";
import type {
  BlobHandle,
  BlobMapping,
  BlobRequest,
  BlobWindow,
  ContextInitParams,
  EmulatedFastPathSupport,
  ExecbufferOptions,
  ExportedBlob,
  VirtGpu,
  VirtGpuParams,
} from "./virtgpu.ts";

const log = componentLogger("virtgpu-emulated");

/** Blob windows start and end on 64 KiB: a multiple of every guest and host page size (4, 16 or 64 KiB, P17). */
const WINDOW_ALIGN = 64 * 1024;

/** The BOs of an EXECBUFFER without any. */
const NO_BOS: readonly number[] = Object.freeze([]);

interface LocalBlob {
  readonly handle: BlobHandle;
  /** Local fd of the blob memory (guest memfd, or the host memory the device lent). */
  readonly fd: number;
  readonly writable: boolean;
}

interface Waiter {
  resolve(payload: Uint8Array, fds: readonly number[]): void;
  reject(err: Error): void;
  readonly what: string;
}

/** Connects to `crossway device` at `path`; throws CW_DEVICE_UNAVAILABLE with the path and errno when it cannot. */
export function openEmulatedVirtGpu(path: string): VirtGpu {
  let fd: number;
  try {
    fd = native.unixConnect(path);
  } catch (err) {
    throw new CrosswayError(
      "CW_DEVICE_UNAVAILABLE",
      `emulated virtio-gpu: cannot connect to crossway device at ${path}: ${(err as Error).message}`,
      { value: path },
      { cause: err },
    );
  }
  return new EmulatedVirtGpu(fd, path);
}

class EmulatedVirtGpu implements VirtGpu {
  readonly description: string;
  onFence: () => void = () => {};
  onDrain: () => void = () => {};
  onHostError: (message: string) => void = () => {};
  private readonly socket: FramedSocket;
  private serial = 0;
  private readonly waiters = new Map<number, Waiter>();
  private readonly blobs = new Map<number, LocalBlob>();
  /** Blobs exported at least once, by (dev, ino) of their memory, so a PRIME re-import finds them (kernel: GEM). */
  private readonly exported = new Map<string, { resourceId: number; size: number; writable: boolean }>();
  /** Resource ids of {@link exported}, for closeBlob's check without scanning the map. */
  private readonly exportedIds = new Set<number>();
  private nextBo = 1;
  readonly fastState: Float64Array = newFastState();
  /** Kept in {@link fastState}: a native fast path submits POLLs too (fast_path.cc). */
  private get nextFence(): number {
    return this.fastState[FastState.NEXT_FENCE] as number;
  }
  private set nextFence(v: number) {
    this.fastState[FastState.NEXT_FENCE] = v;
  }
  private numRings = 0;
  private pollMask = 0;
  private readonly fenceBos = new Map<number, readonly number[]>();
  /**
   * Fences of submissions on a polled ring, not signalled yet: the first {@link polledCount} entries, one or two at
   * a time (the channel's POLL). Not a Set, which shrank its table on the delete that emptied it and grew it again
   * on the next add, once per round trip; not a plain array emptied by `length`, which gave up its backing store.
   */
  private polledFences = new Float64Array(8);
  private get polledCount(): number {
    return this.fastState[FastState.POLLED_COUNT] as number;
  }
  private set polledCount(v: number) {
    this.fastState[FastState.POLLED_COUNT] = v;
  }
  private onPolledGrow: ((fences: Float64Array) => void) | null = null;
  private readonly busy = new Map<number, number>();
  private readonly boWaiters = new Map<number, Array<() => void>>();
  private closed = false;
  /** Where {@link execbuffer} builds its SUBMIT frames. */
  private submitBuf = new Uint8Array(4096);
  /** SUBMIT's fields (flags, ring, fence), rewritten for each EXECBUFFER. */
  private readonly submitFields = [0, 0, 0];

  constructor(fd: number, path: string) {
    this.description = `emulated:${path}`;
    this.nextFence = 1;
    this.socket = new FramedSocket(
      fd,
      (type, serial, payload, fds) => this.onFrame(type, serial, payload, fds),
      (err) => this.onLost(err),
    );
    this.socket.onDrain = () => this.onDrain();
  }

  fastPathSupport(): EmulatedFastPathSupport | null {
    if (this.closed) return null;
    return {
      deviceFd: this.socket.fd,
      setFastPath: (fast) => {
        // The socket says whether it is idle only while a fast path may act on it.
        this.socket.publishIdle(fast === null ? null : this.fastState, FastState.SOCKET_IDLE);
        this.socket.setFastPath(fast);
      },
      polledFences: (onGrow) => {
        this.onPolledGrow = onGrow;
        return this.polledFences;
      },
      queueFrameRemainder: (bytes) => {
        this.socket.send(bytes);
        return this.socket.pendingBytes > 0;
      },
      received: (bytes, fds) => this.socket.received(bytes, fds),
    };
  }

  private request(type: number, fields: number[], tail: Uint8Array | null, fds: number[], what: string) {
    if (this.closed) {
      for (const fd of fds) native.close(fd);
      return Promise.reject(
        new CrosswayError("CW_CROSSDOMAIN_CLOSED", `${what}: virtio-gpu context is closed`),
      );
    }
    const serial = ++this.serial;
    return new Promise<{ payload: Uint8Array; fds: readonly number[] }>((resolve, reject) => {
      this.waiters.set(serial, { resolve: (payload, rfds) => resolve({ payload, fds: rfds }), reject, what });
      this.socket.send(buildFrame(type, serial, fields, tail, fds.length), fds);
    });
  }

  private onFrame(type: number, serial: number, payload: Uint8Array, fds: readonly number[]): void {
    switch (type) {
      case FrameType.REPLY: {
        const w = this.waiters.get(serial);
        if (w === undefined) {
          for (const fd of fds) native.close(fd);
          this.onLost(new CrosswayError("CW_DEVICE_PROTOCOL", `reply to unknown request ${serial}`));
          return;
        }
        this.waiters.delete(serial);
        const status = getU32(payload, 0);
        if (status !== 0) {
          for (const fd of fds) native.close(fd);
          const msg = new TextDecoder().decode(payload.subarray(4));
          w.reject(new CrosswayError("CW_VIRTGPU_IOCTL", `${w.what}: ${msg}`, { value: status }));
          return;
        }
        w.resolve(payload.slice(4), fds);
        return;
      }
      case FrameType.FENCE:
        this.signalled(field(payload, 0));
        break;
      case FrameType.HOST_ERROR: {
        const msg = new TextDecoder().decode(payload);
        // Debug only: the channel decides what a host error means (the layout probe's rejected SEND is expected) and
        // logs a failure itself.
        log.debug({ detail: msg }, "host reported an error");
        this.onHostError(msg);
        break;
      }
      default:
        this.onLost(new CrosswayError("CW_DEVICE_PROTOCOL", `unexpected frame type ${type} from the device`));
    }
    for (let i = 0; i < fds.length; i++) native.close(fds[i] as number);
  }

  private signalled(fenceId: number): void {
    const bos = this.fenceBos.get(fenceId);
    if (bos !== undefined) {
      this.fenceBos.delete(fenceId);
      this.fastState[FastState.FENCES_WITH_BOS] = this.fenceBos.size;
      for (const bo of bos) {
        const left = (this.busy.get(bo) ?? 1) - 1;
        if (left > 0) {
          this.busy.set(bo, left);
          continue;
        }
        this.busy.delete(bo);
        const ws = this.boWaiters.get(bo);
        this.boWaiters.delete(bo);
        if (ws !== undefined) for (const w of ws) w();
      }
    }
    for (let i = 0; i < this.polledCount; i++) {
      if (this.polledFences[i] !== fenceId) continue;
      // Order does not matter: the last entry fills the hole.
      this.polledFences[i] = this.polledFences[--this.polledCount] as number;
      this.onFence();
      return;
    }
  }

  private onLost(err: Error | null): void {
    if (this.closed) return;
    const message = `crossway device connection lost${err !== null ? `: ${err.message}` : ""}`;
    this.shutdown(message);
    this.onHostError(message);
  }

  async getParams(): Promise<VirtGpuParams> {
    const { payload } = await this.request(FrameType.GET_PARAMS, [], null, [], "GETPARAM");
    return {
      features3d: field(payload, 0) === 1,
      resourceBlob: field(payload, 1) === 1,
      hostVisible: field(payload, 2) === 1,
      contextInit: field(payload, 3) === 1,
      capsetMask: field(payload, 4),
      // The page size the device plays the guest's (`crossway device --page-size`); older devices: 4 KiB.
      pageSize: payload.length >= 24 ? field(payload, 5) : 4096,
    };
  }

  async getCaps(capsetId: number, version: number, size: number): Promise<Uint8Array> {
    const { payload } = await this.request(
      FrameType.GET_CAPS,
      [capsetId, version, size],
      null,
      [],
      "GET_CAPS",
    );
    return payload;
  }

  async initContext(p: ContextInitParams): Promise<void> {
    await this.request(
      FrameType.CONTEXT_INIT,
      [p.capsetId, p.numRings, p.pollRingsMask],
      null,
      [],
      "CONTEXT_INIT",
    );
    this.numRings = p.numRings;
    this.pollMask = p.pollRingsMask;
  }

  async createBlob(req: BlobRequest): Promise<BlobHandle> {
    const fds: number[] = [];
    let guestFd = -1;
    if (req.blobMem === BlobMem.GUEST) {
      // Guest RAM backing a guest blob: created here, never taken from a caller.
      guestFd = native.memfdCreate("crossway-guest-blob", MFD_ALLOW_SEALING);
      native.ftruncate(guestFd, req.size);
      // Guest RAM never changes size: sealed so, the device may map it (crossdomain-context.ts mapSealedRing).
      native.addSeals(guestFd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
      fds.push(native.dup(guestFd));
    }
    let reply: { payload: Uint8Array; fds: readonly number[] };
    try {
      reply = await this.request(
        FrameType.CREATE_BLOB,
        [req.blobMem, req.blobFlags, ...u64Fields(req.size), ...u64Fields(req.blobId)],
        null,
        fds,
        `RESOURCE_CREATE_BLOB(blob_mem=${req.blobMem}, size=${req.size}, blob_id=${req.blobId})`,
      );
    } catch (err) {
      if (guestFd >= 0) native.close(guestFd);
      throw err;
    }
    const resourceId = field(reply.payload, 0);
    const size = field64(reply.payload, 1);
    const writable = field(reply.payload, 3) === 1;
    const fd = guestFd >= 0 ? guestFd : (reply.fds[0] ?? -1);
    for (const extra of reply.fds.slice(guestFd >= 0 ? 0 : 1)) native.close(extra);
    const handle: BlobHandle = { bo: this.nextBo++, resourceId, size };
    this.blobs.set(handle.bo, { handle, fd, writable: guestFd >= 0 || writable });
    log.debug({ resourceId, size, blobMem: req.blobMem }, "blob created");
    return handle;
  }

  private local(blob: BlobHandle, what: string): LocalBlob {
    const b = this.blobs.get(blob.bo);
    if (b === undefined)
      throw new CrosswayError("CW_VIRTGPU_IOCTL", `${what}: unknown GEM handle ${blob.bo}`);
    if (b.fd < 0) {
      // The host could not map the memory (e.g. a write-sealed memfd mapped RW): MAP_BLOB failed, mmap gets EINVAL.
      throw new CrosswayError(
        "CW_VIRTGPU_IOCTL",
        `${what}: EINVAL: the host could not map resource ${blob.resourceId}`,
      );
    }
    return b;
  }

  async mapBlob(blob: BlobHandle, window?: BlobWindow): Promise<BlobMapping> {
    const b = this.local(blob, "mmap");
    // A window maps only what the caller uses: V8 counts a mapping's whole length as external memory, and a client's
    // 512 MiB pool mapped whole made it stop for a full GC (7 ms measured under foot's first frame).
    let lo = 0;
    let hi = blob.size;
    if (window !== undefined) {
      lo = Math.max(0, Math.floor(window.offset / WINDOW_ALIGN) * WINDOW_ALIGN);
      hi = Math.min(blob.size, Math.ceil((window.offset + window.length) / WINDOW_ALIGN) * WINDOW_ALIGN);
      if (hi <= lo)
        throw new CrosswayError(
          "CW_VIRTGPU_IOCTL",
          `mmap window ${window.offset}+${window.length} outside blob of ${blob.size} bytes`,
        );
    }
    const ab = native.mmap(b.fd, hi - lo, b.writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, lo);
    let mapped = true;
    return {
      bytes: new Uint8Array(ab),
      base: lo,
      writable: b.writable,
      unmap: () => {
        if (mapped) native.munmap(ab);
        mapped = false;
      },
    };
  }

  /** The memfd the device lent for the blob (host-visible memory), when it may be written. */
  fileFd(blob: BlobHandle): number | null {
    const b = this.blobs.get(blob.bo);
    return b?.writable ? b.fd : null;
  }

  async exportBlob(blob: BlobHandle): Promise<ExportedBlob> {
    const b = this.local(blob, "PRIME_HANDLE_TO_FD");
    const st = native.fstat(b.fd);
    this.exportedIds.add(blob.resourceId);
    this.exported.set(`${st.dev}:${st.ino}`, {
      resourceId: blob.resourceId,
      size: blob.size,
      writable: b.writable,
    });
    return { fd: native.dup(b.fd), access: b.writable ? "read-write" : "read-only" };
  }

  async importBlob(fd: number): Promise<BlobHandle> {
    const st = native.fstat(fd);
    const key = `${st.dev}:${st.ino}`;
    for (const b of this.blobs.values()) {
      const s = native.fstat(b.fd);
      if (`${s.dev}:${s.ino}` === key) return b.handle;
    }
    const e = this.exported.get(key);
    if (e === undefined) {
      throw new CrosswayError(
        "CW_VIRTGPU_IOCTL",
        `PRIME_FD_TO_HANDLE: fd ${fd} is not a virtio-gpu blob of this device (${native.fdPath(fd)})`,
      );
    }
    const handle: BlobHandle = { bo: this.nextBo++, resourceId: e.resourceId, size: e.size };
    this.blobs.set(handle.bo, { handle, fd: native.dup(fd), writable: e.writable });
    return handle;
  }

  closeBlob(blob: BlobHandle): void {
    const b = this.blobs.get(blob.bo);
    if (b === undefined) return;
    this.blobs.delete(blob.bo);
    if (b.fd >= 0) native.close(b.fd);
    for (const other of this.blobs.values()) if (other.handle.resourceId === blob.resourceId) return;
    // The last handle: the device frees its side. A kernel keeps the GEM object while an exported dmabuf lives, but
    // here an export is a dup of the memfd, which keeps the memory alive by itself, and this process cannot see when
    // a client closes it: keeping the resource would hold one device fd per keymap forever (issue 12, defect 3).
    // So a released export can no longer be re-imported (PRIME_FD_TO_HANDLE then fails as for a foreign fd).
    if (this.exportedIds.delete(blob.resourceId)) {
      for (const [key, e] of this.exported) if (e.resourceId === blob.resourceId) this.exported.delete(key);
    }
    if (!this.closed) this.socket.send(buildFrame(FrameType.CLOSE_RESOURCE, 0, [blob.resourceId], null, 0));
  }

  execbuffer(cmd: Uint8Array, opts: ExecbufferOptions = {}): boolean {
    if (this.closed)
      throw new CrosswayError("CW_CROSSDOMAIN_CLOSED", "EXECBUFFER: virtio-gpu context is closed");
    const ring = opts.ring;
    if (ring !== undefined && ring >= this.numRings) {
      throw new CrosswayError(
        "CW_VIRTGPU_IOCTL",
        `EXECBUFFER: EINVAL: ring_idx ${ring} >= num_rings ${this.numRings}`,
      );
    }
    const bos = opts.boHandles ?? NO_BOS;
    const polled = ring !== undefined && ((this.pollMask >>> ring) & 1) === 1;
    let fenceId = 0;
    if (polled || bos.length > 0) {
      fenceId = this.nextFence++;
      if (polled) {
        if (this.polledCount === this.polledFences.length) {
          const grown = new Float64Array(2 * this.polledFences.length);
          grown.set(this.polledFences);
          this.polledFences = grown;
          this.onPolledGrow?.(grown);
        }
        this.polledFences[this.polledCount++] = fenceId;
      }
      if (bos.length > 0) {
        this.fenceBos.set(fenceId, [...bos]);
        this.fastState[FastState.FENCES_WITH_BOS] = this.fenceBos.size;
        for (const bo of bos) this.busy.set(bo, (this.busy.get(bo) ?? 0) + 1);
      }
    }
    const flags = ring !== undefined ? 4 : 0;
    // Built in one reused buffer (the socket's queue copies it): no frame is allocated per SEND and POLL.
    const fields = this.submitFields;
    fields[0] = flags;
    fields[1] = ring ?? 0;
    fields[2] = fenceId;
    const size = frameSize(fields, cmd);
    if (this.submitBuf.length < size)
      this.submitBuf = new Uint8Array(Math.max(2 * this.submitBuf.length, size));
    encodeFrame(this.submitBuf, FrameType.SUBMIT, 0, fields, cmd, 0);
    return this.socket.send(this.submitBuf.subarray(0, size));
  }

  wait(blob: BlobHandle): Promise<void> {
    if (!this.busy.has(blob.bo)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.boWaiters.get(blob.bo) ?? [];
      list.push(resolve);
      this.boWaiters.set(blob.bo, list);
    });
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.fastState[FastState.CHANNEL_OPEN] = 0;
    this.fastState[FastState.ENABLED] = 0;
    this.socket.close();
    for (const b of this.blobs.values()) if (b.fd >= 0) native.close(b.fd);
    this.blobs.clear();
    for (const w of this.waiters.values())
      w.reject(new CrosswayError("CW_CROSSDOMAIN_CLOSED", `${w.what}: ${reason}`));
    this.waiters.clear();
    // Nothing will signal any more: release waiters so nobody hangs on a dead context.
    for (const ws of this.boWaiters.values()) for (const w of ws) w();
    this.boWaiters.clear();
  }

  close(): void {
    this.shutdown("virtio-gpu context closed");
  }
}
