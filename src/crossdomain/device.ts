// `crossway device`: the host side of cross-domain with rutabaga/libkrun semantics, serving emulated VirtGpu clients.
// One client connection = one virtio-gpu context (a guest DRM fd). Blobs are memfds. Behaviour follows
// crossdomain.md §3–§4: item ids from 2, read-pipe ids from 0x80000001, one ring message per POLL fence, RECEIVE of
// at most 3744 bytes and 28 fds, zero-length RECEIVE on host EOF, unclassifiable fds halting the worker.

import { openSync } from "node:fs";
import { CrosswayError } from "../errors.ts";
import {
  F_SEAL_FUTURE_WRITE,
  F_SEAL_WRITE,
  MAP_SHARED,
  O_ACCMODE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from "../fd/constants.ts";
import { componentLogger, type Logger } from "../log.ts";
import { AGAIN, native, POLL_READABLE } from "../native.ts";
import { setU32 } from "../wire/bytes.ts";
import { type CrossDomainMessage, decodeCommand } from "./codec.ts";
import { CrossDomainContext, type Resource } from "./crossdomain-context.ts";
import { addDeviceFastCounters, type DeviceFastCounters, DeviceFastLink } from "./device-fast-path.ts";
import { DeviceFastState } from "./device-fast-state.ts";
import { buildFrame, FRAME_HEADER_SIZE, FrameType, field, field64 } from "./device-protocol.ts";
import { fastPathWanted } from "./fast-state.ts";
import { FramedSocket } from "./framed-socket.ts";
import { HOST_PAGE, roundUp } from "./gralloc-layout.ts";
import { CAPSET_CROSS_DOMAIN, ChannelType, type CrossDomainConfig } from "./protocol.ts";
import { BlobMem } from "./structs.ts";

/** Configuration of the emulated host. */
export interface DeviceOptions {
  /** Unix socket path the device listens on (the guest side connects here). */
  readonly listen: string;
  /** Host Wayland socket (channel type 1). */
  readonly wayland?: string;
  /** Host PipeWire socket (channel type 0x10). */
  readonly pipewire?: string;
  readonly config: CrossDomainConfig;
  /**
   * Whether host EOF reaches the guest as a zero-length RECEIVE (default true, libkrun b87c37e9 / upstream 6293879f);
   * false plays rutabaga <= 0.1.2 (QEMU 10's), which writes nothing and never answers that POLL.
   */
  readonly eofReceive?: boolean;
  /**
   * Play QEMU's rutabaga device (hw/display/virtio-gpu-rutabaga.c, virtio_gpu_rutabaga_aio_cb): when any fence is
   * signalled it also completes the other pending commands on the ring, whichever context they belong to, so a
   * context's POLL can complete before its host wrote anything, and the host's real signal for it later completes
   * nothing. Here: every fence also completes every other context's waiting POLL early, and that POLL's own
   * signal is then swallowed.
   */
  readonly foreignPollCompletion?: boolean;
  /** The guest page size this device plays (GET_PARAMS): 4096 (default) or 16384, as on 16 KiB-page guests. */
  readonly pageSize?: number;
  /** Whether contexts use the native fast path (device_fast_path.cc); default: unless CROSSWAY_FAST_PATH=0. */
  readonly fastPath?: boolean;
  readonly logger?: Logger;
}

/** A running device. */
export interface Device {
  readonly listenPath: string;
  /** Number of live contexts (client connections). */
  readonly contexts: number;
  /** What the contexts' native fast paths carried so far, ended contexts included. */
  fastPathCounters(): DeviceFastCounters;
  close(): void;
}

/** Starts the device: listens on `options.listen` and serves each connection as one virtio-gpu context. */
export function startDevice(options: DeviceOptions): Device {
  const log = options.logger ?? componentLogger("device");
  const listenFd = native.unixListen(options.listen, 16);
  const contexts = new Set<DeviceContext>();
  const ended: DeviceFastCounters = { submits: 0, sendBytes: 0, receives: 0, fences: 0 };
  const ids = { nextResource: 1, contexts, ended };
  const watcher = native.createWatcher(listenFd, () => {
    for (;;) {
      let fd: number;
      try {
        fd = native.unixAccept(listenFd);
      } catch (err) {
        log.error({ err }, "accept failed");
        return;
      }
      if (fd === AGAIN) return;
      const ctx = new DeviceContext(fd, options, ids, log.child({ ctx: fd }), () => contexts.delete(ctx));
      contexts.add(ctx);
    }
  });
  watcher.start(POLL_READABLE);
  log.info(
    { listen: options.listen, wayland: options.wayland, pipewire: options.pipewire },
    "device listening",
  );
  return {
    listenPath: options.listen,
    get contexts() {
      return contexts.size;
    },
    fastPathCounters() {
      const sum = { ...ended };
      for (const c of contexts) c.addFastCounters(sum);
      return sum;
    },
    close() {
      watcher.stop();
      watcher.close();
      native.close(listenFd);
      for (const c of [...contexts]) c.destroy();
    },
  };
}

/** Frames the guest side awaits a REPLY to. */
const REPLIED: ReadonlySet<number> = new Set([
  FrameType.GET_PARAMS,
  FrameType.GET_CAPS,
  FrameType.CONTEXT_INIT,
  FrameType.CREATE_BLOB,
]);

/** The fixed fields each request frame must carry (a short one would read zeros past its end). */
const PAYLOAD_SIZES: ReadonlyMap<number, number> = new Map([
  [FrameType.GET_CAPS, 12],
  [FrameType.CONTEXT_INIT, 12],
  [FrameType.CREATE_BLOB, 24],
  [FrameType.CLOSE_RESOURCE, 4],
  [FrameType.SUBMIT, 12],
]);

class DeviceContext {
  private readonly socket: FramedSocket;
  private readonly resources = new Map<number, Resource>();
  /** The cross-domain context and its worker (crossdomain-context.ts): items, rings, the host socket, POLLs. */
  private readonly cd: CrossDomainContext;
  private contextInit: { numRings: number; pollMask: number } | null = null;
  private implicitContext = false;
  private destroyed = false;
  /** POLL fences completed early by the QEMU quirk: the host's own later signal for them is swallowed. */
  private readonly completedEarly = new Set<number>();
  /** FENCE {fenceId}: the header is fixed, signal() writes the id. */
  private readonly fenceFrame = buildFrame(FrameType.FENCE, 0, [0], null, 0);
  private readonly config: CrossDomainConfig;
  /** The native fast path, once the channel is connected (and unless CROSSWAY_FAST_PATH=0). */
  private fast: DeviceFastLink | null = null;

  constructor(
    fd: number,
    private readonly options: DeviceOptions,
    private readonly ids: {
      nextResource: number;
      contexts: ReadonlySet<DeviceContext>;
      ended: DeviceFastCounters;
    },
    private readonly log: Logger,
    private readonly onGone: () => void,
  ) {
    this.config = options.config;
    this.cd = new CrossDomainContext(options, log, {
      resource: (id) => this.resources.get(id),
      signal: (fenceId) => this.signal(fenceId),
      hostError: (message) => this.hostError(message),
      backPressure: (on) => (on ? this.socket.pauseReading() : this.socket.resumeReading()),
    });
    this.socket = new FramedSocket(
      fd,
      (type, serial, payload, fds) => this.onFrame(type, serial, payload, fds),
      (err) => {
        if (err !== null) log.warn({ err: err.message }, "guest connection failed");
        this.destroy();
      },
    );
  }

  // ------------------------------------------------------------------------------------------------------------
  // Frames from the guest side

  private reply(serial: number, fields: number[], tail: Uint8Array | null = null, fds: number[] = []): void {
    this.socket.send(buildFrame(FrameType.REPLY, serial, [0, ...fields], tail, fds.length), fds);
  }

  private replyError(serial: number, errno: number, message: string): void {
    this.socket.send(buildFrame(FrameType.REPLY, serial, [errno], new TextEncoder().encode(message), 0));
  }

  /**
   * Attaches the native fast path once the channel is connected, and tells it whether the context is in the state it
   * may assume (device-fast-state.ts CONTEXT_READY). After every frame, halt and QEMU-quirk completion.
   */
  private publishFast(): void {
    const st = this.cd.fastState;
    if (
      this.fast === null &&
      !this.destroyed &&
      this.cd.fastReady &&
      (this.options.fastPath ?? fastPathWanted())
    ) {
      this.attachFast();
    }
    st[DeviceFastState.CONTEXT_READY] =
      this.fast !== null &&
      !this.destroyed &&
      this.contextInit !== null &&
      this.options.foreignPollCompletion !== true &&
      this.completedEarly.size === 0 &&
      this.cd.fastReady
        ? 1
        : 0;
  }

  private attachFast(): void {
    this.fast = new DeviceFastLink(this.socket, this.cd, this.contextInit?.pollMask ?? 0, () =>
      this.publishFast(),
    );
  }

  /** Adds what this context's fast path carried to `sum`. */
  addFastCounters(sum: DeviceFastCounters): void {
    addDeviceFastCounters(this.cd.fastState, sum);
  }

  private detachFast(): void {
    this.fast?.detach();
    this.fast = null;
  }

  /** What a real guest kernel logs as "*ERROR* response 0x1200 (command 0x207)"; here also sent to the guest side. */
  private hostError(message: string): void {
    // A halting worker says so here: the fast path must stop before anything else reaches it.
    this.publishFast();
    this.log.warn({ detail: message }, "host error");
    if (!this.destroyed)
      this.socket.send(buildFrame(FrameType.HOST_ERROR, 0, [], new TextEncoder().encode(message), 0));
  }

  /**
   * Handles one frame. Its fds are ours from here: CREATE_BLOB takes them (createBlob closes what it does not keep,
   * on every path); for any other frame they are closed before the frame is looked at, so no error path can close
   * one twice or leak one.
   */
  private onFrame(type: number, serial: number, payload: Uint8Array, fds: readonly number[]): void {
    try {
      this.handleOrRefuse(type, serial, payload, fds);
    } finally {
      // Every change a frame makes that the fast path depends on (CONTEXT_INIT, INIT, a ring released, a halt).
      this.publishFast();
    }
  }

  private handleOrRefuse(type: number, serial: number, payload: Uint8Array, fds: readonly number[]): void {
    try {
      const need = PAYLOAD_SIZES.get(type) ?? 0;
      if (payload.length < need) {
        for (const fd of fds) native.close(fd);
        throw new CrosswayError(
          "CW_DEVICE_PROTOCOL",
          `frame type ${type}: a payload of ${payload.length} bytes, short of its ${need}`,
        );
      }
      if (type === FrameType.CREATE_BLOB) {
        this.createBlob(serial, payload, fds);
        return;
      }
      for (const fd of fds) native.close(fd);
      this.handleFrame(type, serial, payload);
    } catch (err) {
      // A refusal the device words (CrosswayError) is the guest's fault; anything else is a bug here.
      if (err instanceof CrosswayError) this.log.warn({ err: err.message }, "device frame refused");
      else this.log.error({ err }, "device frame failed");
      this.hostError(`device: ${(err as Error).message}`);
      // A request still gets its answer, as a failed ioctl returns one: the guest side never waits forever.
      if (REPLIED.has(type)) this.replyError(serial, 5, `EIO: ${(err as Error).message}`);
    }
  }

  private handleFrame(type: number, serial: number, payload: Uint8Array): void {
    switch (type) {
      case FrameType.GET_PARAMS:
        this.reply(serial, [1, 1, 1, 1, 1 << CAPSET_CROSS_DOMAIN, this.options.pageSize ?? HOST_PAGE]);
        return;
      case FrameType.GET_CAPS: {
        if (field(payload, 0) !== CAPSET_CROSS_DOMAIN || field(payload, 2) === 0) {
          this.replyError(serial, 22, "EINVAL: unknown capset or size 0");
          return;
        }
        let channels = 0;
        if (this.options.wayland !== undefined) channels |= 1 << ChannelType.WAYLAND;
        if (this.options.pipewire !== undefined) channels |= 1 << ChannelType.PIPEWIRE;
        // version 1 ("all commands up to WRITE"), supported_channels, supports_dmabuf 0 (memfd gralloc), no external memory.
        const caps = new Uint8Array(16);
        setU32(caps, 0, 1);
        setU32(caps, 4, channels);
        this.reply(serial, [], caps.subarray(0, Math.min(16, field(payload, 2))));
        return;
      }
      case FrameType.CONTEXT_INIT: {
        const capset = field(payload, 0);
        const numRings = field(payload, 1);
        const pollMask = field(payload, 2);
        // [LX] virtio_gpu_context_init_ioctl checks.
        if (this.contextInit !== null || this.implicitContext) {
          this.replyError(
            serial,
            17,
            "EEXIST: the context already exists (CONTEXT_INIT must come first, P21)",
          );
        } else if (capset !== CAPSET_CROSS_DOMAIN) {
          this.replyError(serial, 22, `EINVAL: capset ${capset} is not supported`);
        } else if (numRings > 64 || pollMask >>> numRings !== 0) {
          this.replyError(serial, 22, `EINVAL: num_rings ${numRings} / poll_rings_mask ${pollMask}`);
        } else {
          this.contextInit = { numRings, pollMask };
          this.reply(serial, []);
        }
        return;
      }
      case FrameType.CLOSE_RESOURCE: {
        const r = this.resources.get(field(payload, 0));
        if (r !== undefined) {
          this.resources.delete(r.id);
          if (r.fd >= 0) native.close(r.fd);
        }
        return;
      }
      case FrameType.SUBMIT:
        this.submit(field(payload, 0), field(payload, 1), field(payload, 2), payload.subarray(12));
        return;
      default:
        throw new CrosswayError("CW_DEVICE_PROTOCOL", `unknown frame type ${type}`);
    }
  }

  private createBlob(serial: number, payload: Uint8Array, fds: readonly number[]): void {
    this.implicitContext = true;
    const blobMem = field(payload, 0);
    const size = field64(payload, 2);
    const blobId = field64(payload, 4);
    if (blobMem === BlobMem.GUEST) {
      const fd = fds[0];
      for (const extra of fds.slice(1)) native.close(extra);
      if (fd === undefined || blobId !== 0) {
        if (fd !== undefined) native.close(fd);
        this.replyError(serial, 22, "EINVAL: a GUEST blob needs its memory and blob_id 0");
        return;
      }
      const r: Resource = { id: this.ids.nextResource++, fd, size, guest: true, writable: true };
      this.resources.set(r.id, r);
      this.reply(serial, [r.id, size, 0, 1]);
      return;
    }
    for (const fd of fds) native.close(fd);
    if (blobMem !== BlobMem.HOST3D) {
      this.replyError(serial, 22, `EINVAL: blob_mem ${blobMem} is not supported`);
      return;
    }
    // The kernel page-aligns HOST3D sizes before the host sees them (virtio_gpu_vram_create).
    const alignedSize = roundUp(size, HOST_PAGE);
    const item = this.cd.blobItem(blobId);
    let fd: number;
    let writable: boolean;
    let itemSize = alignedSize;
    if (item?.kind === "reqs") {
      // [RG] context_create_blob: the template stays; each creation allocates new memory of exactly reqs.size.
      if (alignedSize !== item.reqs.size) {
        this.replyError(
          serial,
          22,
          `EINVAL: blob size mismatch: ${alignedSize} != requirements ${item.reqs.size}`,
        );
        this.hostError(`RESOURCE_CREATE_BLOB blob_id ${blobId}: blob size mismatch`);
        return;
      }
      fd = native.memfdCreate("crossway-host-blob", 0);
      try {
        native.ftruncate(fd, alignedSize);
      } catch (err) {
        native.close(fd);
        this.replyError(serial, 12, `ENOMEM: a host blob of ${alignedSize} bytes: ${(err as Error).message}`);
        return;
      }
      writable = true;
    } else if (item?.kind === "blob") {
      // One-shot: a received fd becomes exactly one blob (§4.5); blobItem() took it.
      fd = item.fd;
      itemSize = item.size;
      writable = this.mapAccessWritable(fd);
    } else {
      this.replyError(serial, 22, `EINVAL: blob_id ${blobId} is not a blob or image-requirements item`);
      this.hostError(`RESOURCE_CREATE_BLOB: InvalidCrossDomainItemId ${blobId}`);
      return;
    }
    // MAP_BLOB: map with the host's access; if that fails, creation still succeeds and mmap later fails (§5.4).
    let mapOk = true;
    try {
      if (itemSize > 0) {
        const prot = PROT_READ | (writable ? PROT_WRITE : 0);
        // Probed in C: a 512 MiB ArrayBuffer would cost the device a full GC per blob (V8 external memory).
        native.mmapProbe(fd, roundUp(itemSize, HOST_PAGE), prot, MAP_SHARED, 0);
      }
    } catch (err) {
      mapOk = false;
      this.hostError(`MAP_BLOB (command 0x208) failed: ${(err as Error).message}`);
    }
    const r: Resource = { id: this.ids.nextResource++, fd, size: alignedSize, guest: false, writable };
    this.resources.set(r.id, r);
    const out: number[] = [];
    try {
      if (mapOk) out.push(writable ? native.dup(fd) : this.reopenReadOnly(fd));
    } catch (err) {
      // As a failed map: the blob exists, mapping it will fail.
      this.hostError(`MAP_BLOB (command 0x208) failed: ${(err as Error).message}`);
    }
    this.reply(serial, [r.id, alignedSize, 0, writable ? 1 : 0], null, out);
  }

  /**
   * Host map access of a received fd: O_ACCMODE, minus write when write-sealed. crosvm (upstream
   * determine_map_access_mode, a4b891f9) also honours F_SEAL_FUTURE_WRITE; libkrun (PR #558) does not (§7.3).
   */
  private mapAccessWritable(fd: number): boolean {
    if ((native.getFl(fd) & O_ACCMODE) !== O_RDWR) return false;
    let seals = 0;
    try {
      seals = native.getSeals(fd);
    } catch {
      // Not a memfd: no seals.
    }
    const mask = this.config.flavor === "crosvm" ? F_SEAL_WRITE | F_SEAL_FUTURE_WRITE : F_SEAL_WRITE;
    return (seals & mask) === 0;
  }

  /** A new read-only open file description of the same memory, so the guest side cannot map it writable. */
  private reopenReadOnly(fd: number): number {
    return openSync(`/proc/self/fd/${fd}`, "r");
  }

  // ------------------------------------------------------------------------------------------------------------
  // Command processing (context.rs submit_cmd)

  private submit(flags: number, ringIdx: number, fenceId: number, cmds: Uint8Array): void {
    this.implicitContext = true;
    if (this.contextInit === null) {
      this.hostError("response 0x1200 (command 0x207): no cross-domain context (CONTEXT_INIT missing)");
    } else {
      for (let off = 0; off < cmds.length; ) {
        let m: CrossDomainMessage;
        try {
          m = decodeCommand(cmds, off, cmds.length, this.config);
          this.cd.command(m);
        } catch (err) {
          // submit_cmd returns Err: the rest of the buffer is skipped, the fence is still created ([KR] worker.rs).
          this.hostError(`response 0x1200 (command 0x207): ${(err as Error).message}`);
          break;
        }
        off += m.size;
      }
      this.cd.endSubmit();
    }
    if (fenceId === 0) return;
    const ringFlag = (flags & 4) !== 0;
    const polled =
      ringFlag && this.contextInit !== null && ((this.contextInit.pollMask >>> ringIdx) & 1) === 1;
    if (!polled || ringIdx === 0) {
      // Query-ring and global fences signal at once (context_create_fence / component create_fence).
      this.signal(fenceId);
      return;
    }
    this.cd.poll(fenceId);
  }

  private signal(fenceId: number): void {
    if (this.destroyed) return;
    if (this.completedEarly.delete(fenceId)) {
      // QEMU found nothing left to complete for it
      this.publishFast();
      return;
    }
    // One reused frame (the socket's queue copies it): a fence per ring message allocates nothing.
    setU32(this.fenceFrame, FRAME_HEADER_SIZE, fenceId);
    this.socket.send(this.fenceFrame);
    if (this.options.foreignPollCompletion === true) {
      for (const other of this.ids.contexts) if (other !== this) other.completePollEarly();
    }
  }

  /** The QEMU quirk's victim side: this context's waiting POLL completes with nothing written to its ring. */
  completePollEarly(): void {
    const fence = this.cd.pendingPoll;
    if (this.destroyed || fence === undefined || this.completedEarly.has(fence)) return;
    this.completedEarly.add(fence);
    this.publishFast();
    this.log.debug({ fence }, "POLL completed early by another context's fence (QEMU quirk)");
    this.socket.send(buildFrame(FrameType.FENCE, 0, [fence], null, 0));
  }

  /** The guest closed its DRM fd: drop everything, which closes the host socket (§6.9). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.detachFast();
    this.addFastCounters(this.ids.ended);
    this.cd.destroy();
    this.socket.close();
    for (const r of this.resources.values()) if (r.fd >= 0) native.close(r.fd);
    this.resources.clear();
    this.onGone();
  }
}
