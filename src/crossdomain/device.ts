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
import { createSharedWatcher } from "../fd/shared-watcher.ts";
import { componentLogger, type Logger } from "../log.ts";
import { AGAIN, MAX_FDS_PER_MSG, type NativeWatcher, native, POLL_READABLE } from "../native.ts";
import { setU32 } from "../wire/bytes.ts";
import {
  type CrossDomainMessage,
  decodeCommand,
  encodeImageRequirements,
  encodeReadWrite,
  encodeSendReceive,
  type ImageRequirements,
  newIdentifierList,
} from "./codec.ts";
import { buildFrame, FrameType, field, field64 } from "./device-protocol.ts";
import { FdWriter } from "./fd-writer.ts";
import { FramedSocket } from "./framed-socket.ts";
import { HOST_PAGE, imageLayout, roundUp } from "./gralloc-layout.ts";
import { classifyHostFd } from "./host-fd-kind.ts";
import {
  CAPSET_CROSS_DOMAIN,
  ChannelType,
  CrossDomainCmd,
  type CrossDomainConfig,
  channelTypeName,
  IdentifierType,
  MAX_SEND_RECV_SIZE,
  PIPE_READ_START,
  READ_WRITE_HEADER_SIZE,
  sendReceiveHeaderSize,
} from "./protocol.ts";
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
  /** The guest page size this device plays (GET_PARAMS): 4096 (default) or 16384, as on 16 KiB-page guests. */
  readonly pageSize?: number;
  readonly logger?: Logger;
}

/** A running device. */
export interface Device {
  readonly listenPath: string;
  /** Number of live contexts (client connections). */
  readonly contexts: number;
  close(): void;
}

/** The largest guest page, so the largest ring a guest can declare (one page; 64 KiB pages on arm64/ppc64). */
const MAX_RING_SIZE = 65536;

/** Starts the device: listens on `options.listen` and serves each connection as one virtio-gpu context. */
export function startDevice(options: DeviceOptions): Device {
  const log = options.logger ?? componentLogger("device");
  const listenFd = native.unixListen(options.listen, 16);
  const contexts = new Set<DeviceContext>();
  const ids = { nextResource: 1 };
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
    close() {
      watcher.stop();
      watcher.close();
      native.close(listenFd);
      for (const c of [...contexts]) c.destroy();
    },
  };
}

interface Resource {
  readonly id: number;
  /** -1 when the host could not map it (then it has no usable handle). */
  readonly fd: number;
  readonly size: number;
  /** Guest memory (GUEST blob): has no host handle to send (InvalidRutabagaHandle). */
  readonly guest: boolean;
  readonly writable: boolean;
}

type Item =
  | { readonly kind: "reqs"; readonly reqs: ImageRequirements }
  | { readonly kind: "blob"; readonly fd: number; readonly size: number }
  | { readonly kind: "write-pipe"; readonly out: FdWriter }
  | { readonly kind: "eventfd"; readonly fd: number; readonly out: FdWriter; watcher: NativeWatcher | null }
  | { readonly kind: "socket"; readonly fd: number };

interface ChannelState {
  readonly queryRing: Resource;
  readonly channelRing: Resource;
  readonly channelType: number;
  /** Host socket, or -1 for channel type 0 (query-only). */
  readonly socket: number;
  readonly socketOut: FdWriter | null;
  readonly socketWatcher: NativeWatcher | null;
  /** Usable bytes of the channel ring: its size as the guest created it, at most MAX_RING_SIZE. */
  readonly ringBytes: number;
  halted: boolean;
}

/** A readable host source watched while a POLL fence is outstanding. */
interface Source {
  readonly watcher: NativeWatcher;
}

class DeviceContext {
  private readonly socket: FramedSocket;
  private readonly resources = new Map<number, Resource>();
  private readonly items = new Map<number, Item>();
  /** Host item ids: pre-incremented from 1, so the first is 2 ([RG] common.rs add_item). */
  private itemCounter = 1;
  private readPipeCounter = PIPE_READ_START;
  private readonly readPipes = new Map<number, { fd: number; watcher: NativeWatcher }>();
  private state: ChannelState | null = null;
  private contextInit: { numRings: number; pollMask: number } | null = null;
  private implicitContext = false;
  private initTaken = false;
  /** Outstanding POLL fences; only the head is answered, one ring message per fence (§4.1). */
  private polls: number[] = [];
  private armed = false;
  private destroyed = false;
  /** Ring message staging, sized at INIT to the channel ring (never more than MAX_RING_SIZE). */
  private scratch = new Uint8Array(HOST_PAGE);
  private readonly fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
  private readonly config: CrossDomainConfig;

  constructor(
    fd: number,
    private readonly options: DeviceOptions,
    private readonly ids: { nextResource: number },
    private readonly log: Logger,
    private readonly onGone: () => void,
  ) {
    this.config = options.config;
    this.socket = new FramedSocket(
      fd,
      (h, payload, fds) => this.onFrame(h.type, h.serial, payload, fds),
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

  /** What a real guest kernel logs as "*ERROR* response 0x1200 (command 0x207)"; here also sent to the guest side. */
  private hostError(message: string): void {
    this.log.warn({ detail: message }, "host error");
    if (!this.destroyed)
      this.socket.send(buildFrame(FrameType.HOST_ERROR, 0, [], new TextEncoder().encode(message), 0));
  }

  private onFrame(type: number, serial: number, payload: Uint8Array, fds: number[]): void {
    try {
      this.handleFrame(type, serial, payload, fds);
    } catch (err) {
      for (const fd of fds) native.close(fd);
      this.log.error({ err }, "device frame failed");
      this.hostError(`device: ${(err as Error).message}`);
    }
  }

  private handleFrame(type: number, serial: number, payload: Uint8Array, fds: number[]): void {
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
      case FrameType.CREATE_BLOB:
        this.createBlob(serial, payload, fds);
        return;
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
        for (const fd of fds) native.close(fd);
        throw new CrosswayError("CW_DEVICE_PROTOCOL", `unknown frame type ${type}`);
    }
  }

  private createBlob(serial: number, payload: Uint8Array, fds: number[]): void {
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
    const item = this.items.get(blobId);
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
      native.ftruncate(fd, alignedSize);
      writable = true;
    } else if (item?.kind === "blob") {
      // One-shot: a received fd becomes exactly one blob (§4.5).
      this.items.delete(blobId);
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
        native.munmap(native.mmap(fd, roundUp(itemSize, HOST_PAGE), prot, MAP_SHARED, 0));
      }
    } catch (err) {
      mapOk = false;
      this.hostError(`MAP_BLOB (command 0x208) failed: ${(err as Error).message}`);
    }
    const r: Resource = { id: this.ids.nextResource++, fd, size: alignedSize, guest: false, writable };
    this.resources.set(r.id, r);
    const out: number[] = [];
    if (mapOk) out.push(writable ? native.dup(fd) : this.reopenReadOnly(fd));
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
          this.command(m);
        } catch (err) {
          // submit_cmd returns Err: the rest of the buffer is skipped, the fence is still created ([KR] worker.rs).
          this.hostError(`response 0x1200 (command 0x207): ${(err as Error).message}`);
          break;
        }
        off += m.size;
      }
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
    // A POLL fence: only a context with cross-domain state ever answers it (P5).
    if (this.state === null || this.state.halted) return;
    this.polls.push(fenceId);
    this.arm();
  }

  private command(m: CrossDomainMessage): void {
    switch (m.kind) {
      case "init":
        this.init(m.queryRingId, m.channelRingId, m.channelType);
        return;
      case "get-image-requirements": {
        const st = this.requireState("GET_IMAGE_REQUIREMENTS");
        const layout = imageLayout(m.width, m.height, m.drmFormat);
        if (layout === null || m.width === 0 || m.height === 0) {
          throw new CrosswayError(
            "CW_CROSSDOMAIN_HOST_ERROR",
            `InvalidGrallocDrmFormat 0x${m.drmFormat.toString(16)} ${m.width}x${m.height}`,
          );
        }
        const blobId = ++this.itemCounter;
        const reqs: ImageRequirements = { ...layout, blobId };
        this.items.set(blobId, { kind: "reqs", reqs });
        const b = new Uint8Array(64);
        encodeImageRequirements(b, 0, reqs);
        native.pwrite(this.ringFd(st.queryRing), b, 0, 64, 0);
        return;
      }
      case "poll":
        return;
      case "send":
        this.send(m.ids, m.data);
        return;
      case "write":
        this.write(m.identifier, m.hangUp, m.data);
        return;
      case "read-eventfd-new": {
        const item = this.items.get(m.id);
        if (item?.kind !== "eventfd")
          throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `InvalidCrossDomainItemId ${m.id}`);
        if (item.watcher === null) {
          item.watcher = createSharedWatcher(item.fd, (status) =>
            this.ready(status, () => this.readEventfd(m.id)),
          );
          if (this.armed) item.watcher.start(POLL_READABLE);
        }
        return;
      }
      default:
        throw new CrosswayError(
          "CW_CROSSDOMAIN_HOST_ERROR",
          `cross-domain command ${m.kind} is not supported here`,
        );
    }
  }

  private requireState(what: string): ChannelState {
    if (this.state === null) {
      throw new CrosswayError(
        "CW_CROSSDOMAIN_HOST_ERROR",
        `${what}: no cross-domain state (INIT missing or failed)`,
      );
    }
    return this.state;
  }

  private init(queryRingId: number, channelRingId: number, channelType: number): void {
    if (this.initTaken)
      throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", "INIT: channels already taken (second INIT)");
    this.initTaken = true;
    const query = this.resources.get(queryRingId);
    const channel = this.resources.get(channelRingId);
    if (query === undefined || (channelType !== 0 && channel === undefined)) {
      throw new CrosswayError(
        "CW_CROSSDOMAIN_HOST_ERROR",
        `INIT: InvalidResourceId ${queryRingId}/${channelRingId}`,
      );
    }
    let socket = -1;
    if (channelType !== ChannelType.NONE) {
      const path =
        channelType === ChannelType.WAYLAND
          ? this.options.wayland
          : channelType === ChannelType.PIPEWIRE
            ? this.options.pipewire
            : undefined;
      if (path === undefined) {
        throw new CrosswayError(
          "CW_CROSSDOMAIN_HOST_ERROR",
          `INIT: channel ${channelTypeName(channelType)} is not configured`,
        );
      }
      try {
        socket = native.unixConnect(path);
      } catch (err) {
        throw new CrosswayError(
          "CW_CROSSDOMAIN_HOST_ERROR",
          `INIT: cannot connect channel ${channelTypeName(channelType)} to ${path}: ${(err as Error).message}`,
        );
      }
    }
    const out =
      socket >= 0
        ? new FdWriter(socket, true, (err) => this.halt(`sendmsg on the host socket: ${err.message}`))
        : null;
    const watcher =
      socket >= 0 ? createSharedWatcher(socket, (status) => this.ready(status, () => this.receive())) : null;
    const channelRing = channel ?? query;
    // The guest declares the ring's size; trust it only up to the largest page (issue 12, defect 5).
    const ringBytes = Math.min(channelRing.size, MAX_RING_SIZE);
    this.scratch = new Uint8Array(
      Math.max(ringBytes, sendReceiveHeaderSize(this.config.maxIdentifiers) + MAX_SEND_RECV_SIZE),
    );
    this.state = {
      queryRing: query,
      channelRing,
      channelType,
      socket,
      socketOut: out,
      socketWatcher: watcher,
      ringBytes,
      halted: false,
    };
    this.log.info({ channel: channelTypeName(channelType) }, "channel connected");
  }

  private send(ids: ReturnType<typeof newIdentifierList>, data: Uint8Array): void {
    const st = this.requireState("SEND");
    if (st.socketOut === null)
      throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", "SEND on a query-only context");
    const fds: number[] = [];
    const newPipes: Array<{ id: number; fd: number }> = [];
    const fail = (msg: string): never => {
      for (const fd of fds) native.close(fd);
      for (const p of newPipes) native.close(p.fd);
      throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `SEND: ${msg}`);
    };
    for (let i = 0; i < ids.count; i++) {
      const id = ids.ids[i]!;
      const type = ids.types[i]!;
      if (type === IdentifierType.VIRTGPU_BLOB) {
        const r = this.resources.get(id);
        if (r === undefined) fail(`InvalidResourceId ${id} (not attached to this context)`);
        else if (r.guest || r.fd < 0) fail(`InvalidRutabagaHandle: resource ${id} has no host handle`);
        else fds.push(native.dup(r.fd));
      } else if (type === IdentifierType.READ_PIPE) {
        if (newPipes.length > 0) fail("expected just one pipe pair");
        // [RG] context.rs send: id = max(++counter, PIPE_READ_START), checked against the guest's prediction.
        this.readPipeCounter = Math.max((this.readPipeCounter + 1) >>> 0, PIPE_READ_START);
        if (this.readPipeCounter !== id) {
          fail(`read pipe id 0x${id.toString(16)} != expected 0x${this.readPipeCounter.toString(16)}`);
        }
        const [r, w] = native.pipe2();
        fds.push(w);
        newPipes.push({ id, fd: r });
      } else {
        fail(`InvalidCrossDomainItemType ${type}`);
      }
    }
    st.socketOut.write(data.slice(), fds.length > 0 ? fds : null);
    for (const p of newPipes) {
      const watcher = createSharedWatcher(p.fd, (status) => this.ready(status, () => this.readPipe(p.id)));
      this.readPipes.set(p.id, { fd: p.fd, watcher });
      if (this.armed) watcher.start(POLL_READABLE);
    }
  }

  private write(id: number, hangUp: boolean, data: Uint8Array): void {
    const item = this.items.get(id);
    if (item?.kind === "write-pipe") {
      if (data.length > 0) item.out.write(data.slice(), null);
      if (hangUp) {
        this.items.delete(id);
        item.out.endAfterFlush();
      }
      return;
    }
    if (item?.kind === "eventfd") {
      if (data.length !== 8) {
        throw new CrosswayError(
          "CW_CROSSDOMAIN_HOST_ERROR",
          `InvalidCrossDomainWriteLength ${data.length} for eventfd ${id}`,
        );
      }
      item.out.write(data.slice(), null);
      if (hangUp) this.dropItem(id);
      return;
    }
    throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `WRITE: InvalidCrossDomainItemId ${id}`);
  }

  // ------------------------------------------------------------------------------------------------------------
  // The worker: one ring message per POLL fence (worker.rs handle_fence)

  private sources(): Source[] {
    const out: Source[] = [];
    if (this.state?.socketWatcher) out.push({ watcher: this.state.socketWatcher });
    for (const p of this.readPipes.values()) out.push({ watcher: p.watcher });
    for (const item of this.items.values())
      if (item.kind === "eventfd" && item.watcher) out.push({ watcher: item.watcher });
    return out;
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    for (const s of this.sources()) s.watcher.start(POLL_READABLE);
  }

  private disarm(): void {
    if (!this.armed) return;
    this.armed = false;
    for (const s of this.sources()) s.watcher.stop();
  }

  /** A source became readable: handle it only if a POLL fence is waiting (events otherwise stay pending). */
  private ready(_status: number, handle: () => boolean): void {
    if (this.destroyed || this.state === null || this.state.halted) return;
    if (this.polls.length === 0) {
      this.disarm();
      return;
    }
    // A poll error (status < 0) is left to the read below, which reports it.
    let wrote: boolean;
    try {
      wrote = handle();
    } catch (err) {
      this.halt((err as Error).message);
      return;
    }
    if (!wrote) return;
    const fence = this.polls.shift()!; // at most a couple of entries: one outstanding POLL is the protocol
    this.signal(fence);
    if (this.polls.length === 0) this.disarm();
  }

  private writeRing(len: number): void {
    const st = this.state!;
    if (len > st.ringBytes)
      throw new Error(`ring message of ${len} bytes exceeds the ${st.ringBytes}-byte ring`);
    native.pwrite(this.ringFd(st.channelRing), this.scratch, 0, len, 0);
  }

  /**
   * The fd of a ring resource, or a throw once the guest released it (CLOSE_RESOURCE closed that fd): the number may
   * belong to another resource by now, and upstream drops the ring on detach, so the write fails (issue 12, defect 4).
   */
  private ringFd(r: Resource): number {
    if (this.resources.get(r.id) !== r) throw new Error(`ring resource ${r.id} was released`);
    return r.fd;
  }

  /** recvmsg on the host socket → RECEIVE; false when nothing was there after all. */
  private receive(): boolean {
    const st = this.state!;
    const hdr = sendReceiveHeaderSize(this.config.maxIdentifiers);
    const n = native.recvmsg(st.socket, this.scratch, hdr, MAX_SEND_RECV_SIZE, this.fdsOut);
    const nfds = this.fdsOut[0]!;
    if (n === AGAIN) return false;
    const ids = newIdentifierList(this.config.maxIdentifiers);
    const received: number[] = [];
    for (let i = 0; i < nfds; i++) received.push(this.fdsOut[1 + i]!);
    if (nfds > this.config.maxIdentifiers) {
      for (const fd of received) native.close(fd);
      throw new Error(`${nfds} fds exceed ${this.config.maxIdentifiers} identifiers`);
    }
    const kinds = received.map((fd) => classifyHostFd(fd, this.config.flavor));
    const bad = kinds.find((k) => !k.ok);
    if (bad !== undefined && !bad.ok) {
      for (const fd of received) native.close(fd);
      throw new Error(`process_receive: ${bad.reason}`);
    }
    for (let i = 0; i < nfds; i++) {
      const k = kinds[i]!;
      const fd = received[i]!;
      if (!k.ok) continue;
      const id = ++this.itemCounter;
      if (k.kind === "blob") this.items.set(id, { kind: "blob", fd, size: k.size });
      else if (k.kind === "write-pipe") {
        native.setNonblockCloexec(fd);
        this.items.set(id, {
          kind: "write-pipe",
          out: new FdWriter(fd, false, (e) => this.itemError(id, e)),
        });
      } else if (k.kind === "eventfd") {
        native.setNonblockCloexec(fd);
        this.items.set(id, {
          kind: "eventfd",
          fd,
          out: new FdWriter(native.dup(fd), false, (e) => this.itemError(id, e)),
          watcher: null,
        });
      } else this.items.set(id, { kind: "socket", fd });
      ids.ids[i] = id;
      ids.types[i] = k.type;
      ids.sizes[i] = k.size;
    }
    ids.count = nfds;
    // n == 0 with no fds is host EOF: still a RECEIVE, with no data and no identifiers (b87c37e9 / 6293879f).
    // The data was received in place after the header; encoding copies it onto itself (TypedArray#set handles
    // overlapping ranges) and only rewrites the header in front of it.
    const data = this.scratch.subarray(hdr, hdr + n);
    const len = encodeSendReceive(
      this.scratch,
      0,
      CrossDomainCmd.RECEIVE,
      ids,
      data,
      this.config.maxIdentifiers,
      "zero",
    );
    this.writeRing(len);
    if (n === 0 && nfds === 0) {
      // The socket stays in epoll at EOF; stop watching it so an idle device does not spin.
      st.socketWatcher?.stop();
    }
    return true;
  }

  private readPipe(id: number): boolean {
    const p = this.readPipes.get(id);
    if (p === undefined) return false;
    // One read of up to ring size − 24 bytes straight after the header ([RG] worker.rs), then the header in front.
    const room = this.state!.ringBytes - READ_WRITE_HEADER_SIZE;
    const n = native.read(p.fd, this.scratch, READ_WRITE_HEADER_SIZE, room);
    if (n === AGAIN) return false;
    const hangUp = n === 0;
    const data = this.scratch.subarray(READ_WRITE_HEADER_SIZE, READ_WRITE_HEADER_SIZE + n);
    const len = encodeReadWrite(this.scratch, 0, CrossDomainCmd.READ, id, hangUp, data, "zero");
    this.writeRing(len);
    if (hangUp) {
      p.watcher.stop();
      p.watcher.close();
      native.close(p.fd);
      this.readPipes.delete(id);
    }
    return true;
  }

  private readEventfd(id: number): boolean {
    const item = this.items.get(id);
    if (item?.kind !== "eventfd") return false;
    const v = new Uint8Array(8);
    const n = native.read(item.fd, v, 0, 8);
    if (n === AGAIN) return false;
    // Upstream encodes the counter little-endian; eventfd reads are native-endian, which is LE on our hosts.
    const len = encodeReadWrite(this.scratch, 0, CrossDomainCmd.READ, id, false, v.subarray(0, n), "zero");
    this.writeRing(len);
    return true;
  }

  private signal(fenceId: number): void {
    if (!this.destroyed) this.socket.send(buildFrame(FrameType.FENCE, 0, [fenceId], null, 0));
  }

  private itemError(id: number, err: Error): void {
    this.hostError(`item ${id}: ${err.message}`);
    // Drop it whole: an eventfd item's fd and level-triggered watcher must go too, or the loop keeps waking.
    this.dropItem(id);
  }

  private dropItem(id: number): void {
    const item = this.items.get(id);
    if (item === undefined) return;
    this.items.delete(id);
    if (item.kind === "write-pipe") item.out.close();
    else if (item.kind === "eventfd") {
      if (item.watcher !== null) {
        item.watcher.stop();
        item.watcher.close();
      }
      item.out.endAfterFlush();
      native.close(item.fd);
    } else if (item.kind === "blob" || item.kind === "socket") native.close(item.fd);
  }

  /** The worker thread ends ("Worker halting due to …"): no more fences on ring 1, ever (P6). */
  private halt(reason: string): void {
    const st = this.state;
    if (st === null || st.halted) return;
    st.halted = true;
    this.disarm();
    this.polls = [];
    this.hostError(`cross-domain worker halting due to: ${reason}`);
  }

  /** The guest closed its DRM fd: drop everything, which closes the host socket (§6.9). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.disarm();
    this.socket.close();
    const st = this.state;
    if (st !== null) {
      if (st.socketWatcher !== null) {
        st.socketWatcher.stop();
        st.socketWatcher.close();
      }
      if (st.socketOut !== null) st.socketOut.close();
    }
    for (const p of this.readPipes.values()) {
      p.watcher.stop();
      p.watcher.close();
      native.close(p.fd);
    }
    this.readPipes.clear();
    for (const id of [...this.items.keys()]) this.dropItem(id);
    for (const r of this.resources.values()) if (r.fd >= 0) native.close(r.fd);
    this.resources.clear();
    this.onGone();
  }
}
