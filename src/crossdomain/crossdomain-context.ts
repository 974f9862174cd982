// The cross-domain context of the emulated device and its worker, as rutabaga separates them from the virtio-gpu
// frontend (context.rs / worker.rs): INIT and the host socket, items and read pipes, SEND/WRITE, and the worker that
// answers one POLL fence per ring message (split out of device.ts, issue 12).
import { CrosswayError } from "../errors.ts";
import { F_SEAL_SHRINK, MAP_SHARED, PROT_READ, PROT_WRITE } from "../fd/constants.ts";
import { createSharedWatcher } from "../fd/shared-watcher.ts";
import type { Logger } from "../log.ts";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeDeviceFastPath,
  type NativeWatcher,
  native,
  POLL_READABLE,
} from "../native.ts";
import {
  type CrossDomainMessage,
  encodeImageRequirements,
  encodeReadWrite,
  encodeSendReceive,
  type IdentifierList,
  type ImageRequirements,
  newIdentifierList,
} from "./codec.ts";
import type { DeviceOptions } from "./device.ts";
import { DeviceFastState, newDeviceFastState, PollQueue } from "./device-fast-state.ts";
import { FdWriter } from "./fd-writer.ts";
import { HOST_PAGE, imageLayout } from "./gralloc-layout.ts";
import { classifyHostFd } from "./host-fd-kind.ts";
import {
  ChannelType,
  CrossDomainCmd,
  type CrossDomainConfig,
  channelTypeName,
  IdentifierType,
  PIPE_READ_START,
  READ_WRITE_HEADER_SIZE,
  sendReceiveHeaderSize,
} from "./protocol.ts";

/** rutabaga's CROSS_DOMAIN_DEFAULT_BUFFER_SIZE: header and data of one RECEIVE share it. */
const RECEIVE_BUFFER = 4096;
/** The largest guest page, so the largest ring a guest can declare (one page; 64 KiB pages on arm64/ppc64). */
const MAX_RING_SIZE = 65536;

export interface Resource {
  readonly id: number;
  /** -1 when the host could not map it (then it has no usable handle). */
  readonly fd: number;
  readonly size: number;
  /** Guest memory (GUEST blob): has no host handle to send (InvalidRutabagaHandle). */
  readonly guest: boolean;
  readonly writable: boolean;
}

export type Item =
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
  /**
   * The channel ring mapped, as a VMM writes guest memory (no pwrite per message), when the guest memory is sealed
   * against shrinking: an unsealed memfd could be truncated under the mapping and a store would kill the device
   * with SIGBUS. Null: pwrite.
   */
  ringMap: Uint8Array | null;
  halted: boolean;
}

/** A readable host source watched while a POLL fence is outstanding. */
interface Source {
  readonly watcher: NativeWatcher;
}

/** What the context needs of its virtio-gpu frontend. */
export interface ContextHost {
  /** A resource attached to this context (rings, blobs sent as items), or undefined once released. */
  resource(id: number): Resource | undefined;
  /** Signals a fence to the guest. */
  signal(fenceId: number): void;
  /** Reports a failed command or a halting worker (a real guest's kernel log; here also a HOST_ERROR frame). */
  hostError(message: string): void;
  /**
   * The host socket stopped taking the guest's bytes (true: stop taking this context's submissions) or took them
   * all (false: take them again). A real VMM writes blocking on its device thread (P26), which stalls the guest the
   * same way; the queue in between stays bounded instead of holding whatever the guest sends.
   */
  backPressure(on: boolean): void;
}

/** Bytes queued for the host socket above which the context stops taking the guest's submissions. */
export const HOST_QUEUE_HIGH_WATER = 64 * 1024;

/** One cross-domain context: its channel state, items, read pipes, and the POLL worker. */
export class CrossDomainContext {
  private readonly items = new Map<number, Item>();
  /** Host item ids: pre-incremented from 1, so the first is 2 ([RG] common.rs add_item). */
  private itemCounter = 1;
  private readPipeCounter = PIPE_READ_START;
  private readonly readPipes = new Map<number, { fd: number; watcher: NativeWatcher }>();
  private state: ChannelState | null = null;
  private initTaken = false;
  /**
   * What this context shares with its native fast path (device-fast-state.ts): the POLL queue and the armed flag
   * live there, and the host socket's writer publishes there whether it is idle.
   */
  readonly fastState = newDeviceFastState();
  /** Outstanding POLL fences; only the head is answered, one ring message per fence (§4.1). */
  private readonly polls = new PollQueue(this.fastState);
  private gone = false;
  /** The guest's submissions are held back until the host socket drains (see {@link ContextHost.backPressure}). */
  private throttled = false;
  /** Ring message staging, sized at INIT to the channel ring (never more than MAX_RING_SIZE). */
  private scratch = new Uint8Array(HOST_PAGE);
  /** A host eventfd's value, on its way into a READ ring message. */
  private readonly counter = new Uint8Array(8);
  private readonly fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
  /** The identifiers of a RECEIVE without fds (count 0, never written). */
  private readonly noIds: IdentifierList;
  private readonly config: CrossDomainConfig;
  private fast: NativeDeviceFastPath | null = null;

  constructor(
    private readonly options: DeviceOptions,
    private readonly log: Logger,
    private readonly host: ContextHost,
  ) {
    this.config = options.config;
    this.noIds = newIdentifierList(this.config.maxIdentifiers);
  }

  /**
   * The item RESOURCE_CREATE_BLOB names: an image-requirements template (kept: each creation allocates anew), or a
   * received host fd, which is one-shot and leaves the item table here (§4.5).
   */
  blobItem(blobId: number): Item | undefined {
    const item = this.items.get(blobId);
    if (item?.kind === "blob") this.items.delete(blobId);
    return item;
  }

  /** The POLL fence the host will answer next, if one waits. */
  get pendingPoll(): number | undefined {
    return this.polls.head;
  }

  /** The channel's host socket, or -1 (no channel, or a query-only context). */
  get hostSocket(): number {
    return this.state?.socket ?? -1;
  }

  /** The worker's sources are watched. */
  private get armed(): boolean {
    return this.fastState[DeviceFastState.ARMED] === 1;
  }

  private set armed(on: boolean) {
    this.fastState[DeviceFastState.ARMED] = on ? 1 : 0;
  }

  /**
   * Whether a native fast path may take this context's SENDs and RECEIVEs: the channel connected to a host socket,
   * its ring mapped and still attached, the worker running. (The guest's submissions held back by the host socket's
   * back-pressure show as a busy writer: HOST_OUT_IDLE is 0 until the drain that ends the hold.)
   */
  get fastReady(): boolean {
    const st = this.state;
    return (
      !this.gone &&
      st !== null &&
      !st.halted &&
      st.socketOut !== null &&
      st.socketWatcher !== null &&
      st.ringMap !== null &&
      this.host.resource(st.channelRing.id) === st.channelRing
    );
  }

  /**
   * Attaches a native fast path to the host socket (role 1 of native/src/device_fast_path.cc) and tells it the
   * ring; with null, takes it back. Only once the channel is connected.
   */
  setFastPath(fast: NativeDeviceFastPath | null): void {
    const st = this.state;
    if (st === null || st.socketWatcher === null || st.socketOut === null) return;
    if (fast === null) {
      this.fast?.setRing(null);
      this.fast = null;
      st.socketWatcher.setFastPath?.(null, 1);
      st.socketOut.publishIdle(null, DeviceFastState.HOST_OUT_IDLE);
      return;
    }
    this.fast = fast;
    this.fastState[DeviceFastState.HDR_SIZE] = sendReceiveHeaderSize(this.config.maxIdentifiers);
    this.fastState[DeviceFastState.RING_BYTES] = st.ringBytes;
    fast.setRing(st.ringMap);
    st.socketOut.publishIdle(this.fastState, DeviceFastState.HOST_OUT_IDLE);
    st.socketWatcher.setFastPath?.(fast, 1);
  }

  /** SEND data a native fast path wrote in part: the rest is queued, and the guest held back until it drains. */
  hostRemainder(bytes: Uint8Array): void {
    const out = this.state?.socketOut;
    if (out === null || out === undefined) return;
    out.write(bytes, null, true);
    // Held until the queue drains, however short it is: reading on would only grow it, in JavaScript (the fast path
    // writes an idle host socket only), so a burst that outpaces the compositor would run mostly here (issue 15).
    // The socket's buffer keeps the compositor busy meanwhile; the drain hands the next read back to the fast path.
    this.holdIfOver(out, 0);
  }

  /** A recvmsg a native fast path made on the host socket failed: the worker halts as receive() would make it. */
  hostReadFailed(err: Error): void {
    this.halt(err.message);
  }

  /**
   * What a native fast path's recvmsg of the host socket returned and did not write itself (fds, or more than the
   * ring holds): handled as if receive() had read it, for the POLL waiting.
   */
  receivedByFastPath(bytes: Uint8Array, fds: Int32Array | undefined): void {
    const nfds = fds?.length ?? 0;
    const st = this.state;
    if (this.gone || st === null || st.halted || this.polls.length === 0 || nfds > MAX_FDS_PER_MSG) {
      if (fds !== undefined) for (let i = 0; i < nfds; i++) native.close(fds[i]!);
      return;
    }
    this.fdsOut[0] = nfds;
    for (let i = 0; i < nfds; i++) this.fdsOut[1 + i] = fds![i]!;
    const hdr = sendReceiveHeaderSize(this.config.maxIdentifiers);
    this.scratch.set(bytes, hdr);
    this.ready(0, () => this.deliverReceive(bytes.length));
  }

  /** A POLL fence: only a context with cross-domain state ever answers it (P5). */
  poll(fenceId: number): void {
    if (this.state === null || this.state.halted) return;
    this.polls.push(fenceId);
    this.arm();
  }

  /**
   * After a SUBMIT's last command: what its SENDs queued for the host socket is written now, and the guest is held
   * back if the host left more than the mark unread. Decided after the write, not per SEND: only bytes the socket
   * refused are sure to end in a drain that releases the hold (one large SUBMIT may queue more than the mark and
   * then go out whole).
   */
  endSubmit(): void {
    const out = this.state?.socketOut;
    if (out === null || out === undefined) return;
    out.flushQueued();
    this.holdIfOver(out, HOST_QUEUE_HIGH_WATER);
  }

  /** Holds the guest's submissions back, until the host socket drains, once it leaves more than `mark` unread. */
  private holdIfOver(out: FdWriter, mark: number): void {
    if (!this.throttled && out.pending > mark) {
      this.throttled = true;
      this.host.backPressure(true);
    }
  }

  /** One cross-domain command of a SUBMIT (context.rs submit_cmd); throws what the host reports as 0x1200. */
  command(m: CrossDomainMessage): void {
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
    const query = this.host.resource(queryRingId);
    const channel = this.host.resource(channelRingId);
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
    if (out !== null) out.onDrain = () => this.release();
    const watcher =
      socket >= 0 ? createSharedWatcher(socket, (status) => this.ready(status, () => this.receive())) : null;
    const channelRing = channel ?? query;
    // The guest declares the ring's size; trust it only up to the largest page (issue 12, defect 5).
    const ringBytes = Math.min(channelRing.size, MAX_RING_SIZE);
    this.scratch = new Uint8Array(Math.max(ringBytes, RECEIVE_BUFFER));
    this.state = {
      queryRing: query,
      channelRing,
      channelType,
      socket,
      socketOut: out,
      socketWatcher: watcher,
      ringBytes,
      ringMap: mapSealedRing(channelRing, ringBytes),
      halted: false,
    };
    this.log.info({ channel: channelTypeName(channelType) }, "channel connected");
  }

  private send(ids: ReturnType<typeof newIdentifierList>, data: Uint8Array): void {
    const st = this.requireState("SEND");
    if (st.socketOut === null)
      throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", "SEND on a query-only context");
    // Nearly every SEND carries bytes only: no fds to gather, no pipes to make.
    const made = ids.count === 0 ? null : this.sendItems(ids);
    try {
      // The queue copies the bytes (they are a view into the SUBMIT frame) and owns the fds from here on. Bytes
      // alone go out at the end of the submission (endSubmit), a batch of SENDs in one sendmsg: a stream cannot tell.
      // A SEND with fds goes at once, as rutabaga's one sendmsg per SEND, so its fds arrive in a recvmsg of their own.
      const fds = made?.fds ?? null;
      st.socketOut.write(data, fds, fds !== null && fds.length > 0);
    } catch (err) {
      if (made !== null) for (const p of made.newPipes) native.close(p.fd);
      throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `SEND: ${(err as Error).message}`);
    }
    if (made === null) return;
    for (const p of made.newPipes) {
      const watcher = createSharedWatcher(p.fd, (status) => this.ready(status, () => this.readPipe(p.id)));
      this.readPipes.set(p.id, { fd: p.fd, watcher });
      if (this.armed) watcher.start(POLL_READABLE);
    }
  }

  /**
   * The fds a SEND's identifiers stand for (a dup of each blob's, the write end of each new read pipe) and the new
   * pipes' read ends; on a bad identifier, closes what it made and throws what the host reports.
   */
  private sendItems(ids: ReturnType<typeof newIdentifierList>): {
    fds: number[];
    newPipes: Array<{ id: number; fd: number }>;
  } {
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
        const r = this.host.resource(id);
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
    return { fds, newPipes };
  }

  /**
   * WRITE, as each host does it (docs/crossdomain-transport.md, "Item release"). crosvm (rutabaga 0.1.2 and later)
   * takes the item out of its table first and puts it back only after a successful WRITE without hang_up, so a
   * failed WRITE drops the item too; an eventfd takes exactly 8 bytes. libkrun (since 5835d529) looks the item up,
   * writes whatever data came (an eventfd write of other than 8 bytes fails: EINVAL), and drops it only on hang_up;
   * a WRITE to any other kind of item fails and leaves it.
   */
  private write(id: number, hangUp: boolean, data: Uint8Array): void {
    const item = this.items.get(id);
    if (item === undefined)
      throw new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `WRITE: InvalidCrossDomainItemId ${id}`);
    const crosvm = this.config.flavor === "crosvm";
    if (item.kind === "write-pipe") {
      if (data.length > 0) item.out.write(data, null);
      if (hangUp) {
        this.items.delete(id);
        item.out.endAfterFlush();
      }
      return;
    }
    if (item.kind === "eventfd") {
      if (data.length !== 8 && (crosvm || data.length !== 0)) {
        if (crosvm) this.dropItem(id);
        throw new CrosswayError(
          "CW_CROSSDOMAIN_HOST_ERROR",
          crosvm
            ? `WRITE: InvalidCrossDomainWriteLength ${data.length} for eventfd ${id}`
            : `WRITE: eventfd ${id}: write of ${data.length} bytes: EINVAL`,
        );
      }
      if (data.length === 8) item.out.write(data, null);
      if (hangUp) this.dropItem(id);
      return;
    }
    if (crosvm) this.dropItem(id);
    throw new CrosswayError(
      "CW_CROSSDOMAIN_HOST_ERROR",
      `WRITE: InvalidCrossDomainItemType (${item.kind} item ${id})`,
    );
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

  /** A native fast path is about to queue a POLL (as poll() does) while the sources are not watched. */
  armForFastPath(): void {
    if (this.state === null || this.state.halted) return;
    this.arm();
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
  private ready(status: number, handle: () => boolean): void {
    if (this.gone || this.state === null || this.state.halted) return;
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
    if (wrote) {
      const fence = this.polls.shift()!; // at most a couple of entries: one outstanding POLL is the protocol
      this.host.signal(fence);
      // No disarm here even when that was the last fence: the guest re-arms its POLL as soon as it has read the
      // ring, almost always before the host's next message, and stopping then restarting the sources would cost
      // three epoll_ctl calls per message (libuv deletes the fd on stop). A source that fires with no fence waiting
      // is disarmed above, lazily, so an idle context still never spins.
    }
    if (status < 0) {
      // libuv stopped this handle when it reported the error (POLLERR, e.g. the compositor or filter closed with
      // our bytes unread) while `armed` stays true, so arm() would never start it again and what is left to read
      // (the EOF the guest must be told) would wait forever: stop every source and start them again if a POLL waits.
      this.disarm();
      if (this.polls.length > 0) this.arm();
    }
  }

  private writeRing(len: number): void {
    const st = this.state!;
    if (len > st.ringBytes)
      throw new Error(`ring message of ${len} bytes exceeds the ${st.ringBytes}-byte ring`);
    // ringFd throws once the guest released the ring, mapped or not: the write fails as upstream's would.
    const fd = this.ringFd(st.channelRing);
    if (st.ringMap !== null) st.ringMap.set(this.scratch.subarray(0, len));
    else native.pwrite(fd, this.scratch, 0, len, 0);
  }

  /**
   * The fd of a ring resource, or a throw once the guest released it (CLOSE_RESOURCE closed that fd): the number may
   * belong to another resource by now, and upstream drops the ring on detach, so the write fails (issue 12, defect 4).
   */
  private ringFd(r: Resource): number {
    if (this.host.resource(r.id) !== r) throw new Error(`ring resource ${r.id} was released`);
    return r.fd;
  }

  /** A RECEIVE's fds become host items, their identifiers written into `ids`; throws on an fd that is no item. */
  private takeItems(nfds: number, ids: IdentifierList): void {
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
  }

  /** recvmsg on the host socket → RECEIVE; false when nothing was there after all. */
  private receive(): boolean {
    const st = this.state!;
    const hdr = sendReceiveHeaderSize(this.config.maxIdentifiers);
    // rutabaga's receive buffer is 4096 bytes minus the SEND/RECEIVE header: 3744 with 28 slots, 4032 with 4.
    const n = native.recvmsg(st.socket, this.scratch, hdr, RECEIVE_BUFFER - hdr, this.fdsOut);
    if (n === AGAIN) return false;
    return this.deliverReceive(n);
  }

  /** The RECEIVE for `n` bytes at scratch[hdr] and the fds in fdsOut, as a recvmsg of the host socket left them. */
  private deliverReceive(n: number): boolean {
    const st = this.state!;
    const hdr = sendReceiveHeaderSize(this.config.maxIdentifiers);
    const nfds = this.fdsOut[0]!;
    // Most RECEIVEs carry no fds: one reused empty identifier list, and none of the classification below.
    const ids = nfds === 0 ? this.noIds : newIdentifierList(this.config.maxIdentifiers);
    if (nfds > 0) this.takeItems(nfds, ids);
    // n == 0 with no fds is host EOF: still a RECEIVE, with no data and no identifiers (b87c37e9 / 6293879f).
    // The data was received in place after the header; encoding copies it onto itself (TypedArray#set handles
    // overlapping ranges) and only rewrites the header in front of it.
    if (n === 0 && nfds === 0 && this.options.eofReceive === false) {
      // rutabaga <= 0.1.2 writes nothing at host EOF and leaves the POLL unanswered: the guest is never told.
      st.socketWatcher?.stop();
      return false;
    }
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
    // One buffer for every signal: encodeReadWrite copies the value into the ring message.
    const v = this.counter;
    const n = native.read(item.fd, v, 0, 8);
    if (n === AGAIN) return false;
    // Upstream encodes the counter little-endian; eventfd reads are native-endian, which is LE on our hosts.
    const len = encodeReadWrite(this.scratch, 0, CrossDomainCmd.READ, id, false, v.subarray(0, n), "zero");
    this.writeRing(len);
    return true;
  }

  private itemError(id: number, err: Error): void {
    this.host.hostError(`item ${id}: ${err.message}`);
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
    this.polls.clear();
    this.host.hostError(`cross-domain worker halting due to: ${reason}`);
    // Nothing will drain the host socket now: let the guest's submissions in to meet the halted worker.
    this.release();
  }

  private release(): void {
    if (!this.throttled) return;
    this.throttled = false;
    this.host.backPressure(false);
  }

  /** The guest closed its DRM fd: the host socket, pipes and items go (§6.9). */
  destroy(): void {
    if (this.gone) return;
    this.gone = true;
    this.disarm();
    const st = this.state;
    if (st !== null) {
      if (st.socketWatcher !== null) {
        st.socketWatcher.stop();
        st.socketWatcher.close();
      }
      // The fast path forgets the ring before it is unmapped.
      this.setFastPath(null);
      if (st.socketOut !== null) st.socketOut.close();
      if (st.ringMap !== null) native.munmap(st.ringMap.buffer as ArrayBuffer);
      st.ringMap = null;
    }
    for (const p of this.readPipes.values()) {
      p.watcher.stop();
      p.watcher.close();
      native.close(p.fd);
    }
    this.readPipes.clear();
    for (const id of [...this.items.keys()]) this.dropItem(id);
  }
}

/**
 * Maps the first `bytes` of a guest ring when its memory is sealed against shrinking and long enough (the emulated
 * guest seals its guest blobs, as guest RAM never shrinks), else null: the ring is then written with pwrite, which
 * returns an error instead of SIGBUS when the memory was truncated.
 */
function mapSealedRing(ring: Resource, bytes: number): Uint8Array | null {
  try {
    if ((native.getSeals(ring.fd) & F_SEAL_SHRINK) === 0) return null;
    if (native.fstat(ring.fd).size < bytes) return null;
    return new Uint8Array(native.mmap(ring.fd, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, 0));
  } catch {
    return null; // not a memfd, or not mappable: pwrite
  }
}
