// One guest client's connection: parses every message both ways and carries it over its own cross-domain channel.
//
//   client socket ──recvmsg──▶ framer+fds ──WireConnection.next(REQUEST)──▶ hooks ──▶ toHost ──channel.send──▶ host
//   client socket ◀──sendmsg── ClientOutput ◀── hooks ◀──next(EVENT)── framer+fds ◀──onReceive(bytes, items)── host
//
// Only identifiers and blob memory cross: client fds stay here (shm pools are copied into host blobs, pipes become
// cross-domain pipes), and host fds are turned into local fds (sealed copies of host memory, local pipe ends).
import type { ConnectionStatus } from "../../control/status-report.ts";
import type { CloseReason, CrossDomainChannel, ReceivedItem, SendItem } from "../../crossdomain/channel.ts";
import { FastState, fastPathWanted } from "../../crossdomain/fast-state.ts";
import type { RecentBlobSizes } from "../../crossdomain/recent-blob-sizes.ts";
import { CrosswayError, isUnplanned } from "../../errors.ts";
import { MAP_SHARED, O_ACCMODE, O_WRONLY, PROT_READ, S_IFIFO, S_IFMT } from "../../fd/constants.ts";
import { queueReceivedFds, recvWithFds } from "../../fd/recv-with-fds.ts";
import type { Logger } from "../../log.ts";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../../native.ts";
import { DisplayErrorCode, WireProtocolError } from "../../wire/wayland/errors.ts";
import { FastScanTable } from "../../wire/wayland/fast-scan-table.ts";
import { NEED_MORE } from "../../wire/wayland/framer.ts";
import { MessageTable } from "../../wire/wayland/message-table.ts";
import { MessageWriter } from "../../wire/wayland/message-writer.ts";
import { PassThroughTable } from "../../wire/wayland/pass-through.ts";
import { ArgKind, type MessageDesc, type ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";
import { type DecodedMessage, Direction, WireConnection } from "../../wire/wayland/wire-connection.ts";
import { ClientOutput } from "./client-output.ts";
import { type AttachedFastPath, attachFastPath, FastNotice } from "./fast-path.ts";
import { GlobalFilter } from "./global-filter.ts";
import type { GuestConfig } from "./guest-config.ts";
import { msg } from "./message-desc.ts";
import type { RegistryPolicy } from "./registry-policy.ts";
import { sealedCopy } from "./sealed-copy.ts";
import { ShmShadow } from "./shm-shadow.ts";
import { tagString } from "./tag-string.ts";

/** The fds of an event that carries none, shared so that forwarding allocates nothing. */
const NO_FDS: readonly number[] = Object.freeze([]);

/** The error of a client that sent fds no message takes (recvWithFds), one function for every read. */
function fdOverflow(q: { length: number; limit: number }, cause: unknown): CrosswayError {
  return new CrosswayError(
    "CW_GUEST_CLIENT_IO",
    `client queued ${q.length} fds without messages for them (limit ${q.limit})`,
    {},
    { cause },
  );
}

/** Static inputs every session shares. */
export interface SessionContext {
  readonly registry: ProtocolRegistry;
  readonly config: GuestConfig;
  readonly policy: RegistryPolicy;
  readonly log: Logger;
  /** The guest's recent pool sizes, which every channel it opens asks the requirements of ahead. */
  readonly blobSizes: RecentBlobSizes;
}

type Hook = (m: DecodedMessage) => Promise<void> | undefined | "drop";

/** One client ⇄ host connection. Create with {@link ClientSession.start}; it closes itself on any fatal error. */
export class ClientSession {
  readonly conn: WireConnection;
  private readonly out: ClientOutput;
  private readonly toHost: MessageWriter;
  /** Events the proxy writes itself (rewritten globals, early releases, errors); copied into `out` at once. */
  private readonly scratch = new MessageWriter({ capacity: 4096 });
  private readonly items: SendItem[] = [];
  /** Items before this index have their message's `end` set (stampItems). */
  private itemsStamped = 0;
  private readonly recvFds = new Int32Array(MAX_FDS_PER_MSG + 1);
  private readonly watcher: NativeWatcher;
  /** The events the watcher was last started with (see rearm). */
  private armed = -1;
  private readonly requestHooks: MessageTable<Hook>;
  private readonly eventHooks: MessageTable<Hook>;
  /** Messages forwarded byte for byte in runs, undecoded: no hook of this session is on them (pass-through.ts). */
  private readonly passThrough: PassThroughTable;
  private readonly log: Logger;

  private suspended = false; // a request hook is awaiting the host (e.g. a pool's blob)
  private hostBlocked = false; // the channel asked us to wait (onDrain)
  private deviceRemainders = 0; // the fast path's SENDs the device's socket took in part (status)
  private paused = false; // we told the channel to stop delivering (client not reading)
  private stallTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** The state shared with the native fast path (fast-state.ts): the channel's. */
  private readonly fast: Float64Array;
  /** Round trips and pass-through runs without JavaScript (native/src/fast_path.cc); null without one. */
  private fastPath: AttachedFastPath | null = null;

  // Registry policy state.
  private readonly globals: GlobalFilter;

  /** wl_shm shadowing: pools in host blobs, damage-limited copies at commit (shm-shadow.ts). */
  private readonly shm: ShmShadow;
  /** Bytes of host blob memory this client's pools hold, for `crossway status`. */
  private get shmBytes(): number {
    return this.shm.shmBytes;
  }
  /** For `crossway status`: when the client connected, what it calls itself, what the policy refused it. */
  private readonly startedAt = Date.now();
  private appId: string | undefined;
  private title: string | undefined;
  private refusals = 0;

  /** Imported guest dmabufs whose GEM references can go once the SEND carrying them is out (§5.9). */
  private readonly importsToRelease: Array<{ release(): void }> = [];

  /** Fds of host items waiting in the event fd queue, by fd, so hooks know what they are. */
  private readonly hostItems = new Map<number, ReceivedItem>();

  private constructor(
    readonly clientFd: number,
    readonly channel: CrossDomainChannel,
    private readonly ctx: SessionContext,
    readonly tag: string,
    private readonly onEnd: (s: ClientSession) => void,
  ) {
    this.log = ctx.log.child({ client: tag });
    this.globals = new GlobalFilter(ctx.policy, ctx.registry);
    this.conn = new WireConnection(ctx.registry, { maxMessageSize: ctx.config.maxMessageSize, name: tag });
    this.out = new ClientOutput(clientFd);
    // Rewritten messages (tags) may grow; they are checked against the client limit where it matters.
    this.toHost = new MessageWriter({ maxMessageSize: 65532, capacity: 16384 });
    const session = this;
    this.shm = new ShmShadow({
      get closed() {
        return session.closed;
      },
      channel,
      registry: ctx.registry,
      config: ctx.config,
      objects: this.conn.objects,
      blobSizes: ctx.blobSizes,
      toHost: this.toHost,
      pushItem: (item) => this.items.push(item),
      clientError: (id, code, message) => this.clientError(id, code, message),
      forwardRaw: (m) => this.forwardRaw(m),
      releaseBuffer: (id) => {
        // wl_buffer.release is event 0 (wayland.xml); built in the reusable scratch writer, no per-frame allocation.
        const w = this.scratch;
        w.reset();
        w.begin(id, 0).end();
        this.out.append(w.bytes(), []);
      },
    });
    this.requestHooks = new MessageTable(ctx.registry);
    this.eventHooks = new MessageTable(ctx.registry);
    this.installHooks();
    this.passThrough = PassThroughTable.forHooks(ctx.registry, this.requestHooks, this.eventHooks);
    this.watcher = native.createWatcher(clientFd, (status, events) => this.onClientEvent(status, events));
    this.fast = channel.fast;
    if (fastPathWanted()) {
      this.fastPath = attachFastPath({
        clientFd,
        clientWatcher: this.watcher,
        channel,
        conn: this.conn,
        table: FastScanTable.forHooks(ctx.registry, this.requestHooks, this.eventHooks, {
          deleteIdGuarded: true,
        }),
        notify: (what, arg, fds) => this.onFastNotice(what, arg, fds),
      });
    }
    channel.onReceive = (data, items) => this.onHostData(data, items);
    channel.onClose = (reason) => this.onChannelClose(reason);
    channel.onDrain = () => {
      this.hostBlocked = false;
      this.pumpRequests();
      this.rearm();
    };
    this.rearm();
  }

  /** Starts serving `clientFd` over `channel` (both owned by the session from now on). */
  static start(
    clientFd: number,
    channel: CrossDomainChannel,
    ctx: SessionContext,
    tag: string,
    onEnd: (s: ClientSession) => void,
  ): ClientSession {
    return new ClientSession(clientFd, channel, ctx, tag, onEnd);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Client side I/O

  /**
   * Tells the native fast path whether it may take the client's next requests (nothing partial or pending here) and
   * the host's next events (nothing queued for the client). Called at the end of every JavaScript turn that can
   * change either: the fast path runs only between turns.
   */
  private publishIdle(): void {
    // Without a fast path nobody reads these: no work on every wake-up for them.
    if (this.fastPath === null) return;
    const st = this.fast;
    const open = !this.closed;
    const req = this.conn.framer(Direction.REQUEST);
    const evt = this.conn.framer(Direction.EVENT);
    st[FastState.CLIENT_IDLE] =
      open &&
      !this.suspended &&
      !this.hostBlocked &&
      req.pending === 0 &&
      this.conn.fdQueue(Direction.REQUEST).length === 0 &&
      this.toHost.length === 0 &&
      this.items.length === 0
        ? 1
        : 0;
    // The delete_id hook (ShmShadow.onDeleteId) acts only on recreated pool ids.
    st[FastState.DELETE_ID_WATCHED] = this.shm.watchedDeleteIds;
    st[FastState.EVENTS_IDLE] =
      open &&
      !this.paused &&
      this.out.pending === 0 &&
      evt.pending === 0 &&
      this.conn.fdQueue(Direction.EVENT).length === 0
        ? 1
        : 0;
  }

  /** What the native fast path asks after its own work (fast-path.ts FastNotice). */
  private onFastNotice(
    what: number,
    arg: Uint8Array | string | Error | undefined,
    fds: Int32Array | undefined,
  ): void {
    if (this.closed) {
      if (fds !== undefined) for (let i = 0; i < fds.length; i++) native.close(fds[i] as number);
      return;
    }
    try {
      switch (what) {
        case FastNotice.CLIENT_BYTES: {
          // What readClient does after its recvmsg, for bytes the fast path read and did not take.
          if (fds !== undefined) {
            queueReceivedFds(this.conn.fdQueue(Direction.REQUEST), fds, 0, fds.length, fdOverflow);
          }
          this.conn.framer(Direction.REQUEST).push(arg as Uint8Array);
          this.pumpRequests();
          break;
        }
        case FastNotice.DEVICE_BYTES:
          this.fastPath?.deviceBytes(arg as Uint8Array, fds);
          break;
        case FastNotice.CLIENT_ERROR:
          // The error native.recvmsg throws for a client that sent more fds than one message may carry.
          throw arg;
        case FastNotice.ARM_ANSWER_TIMER:
          this.channel.fastPathArmAnswerTimer();
          break;
        case FastNotice.RIDE_EXPIRED:
          this.channel.fastPathRideExpired();
          break;
        case FastNotice.CLIENT_REMAINDER:
          // onHostData's path when the client's socket is full: queue, and pause the channel until it drains.
          this.out.append(arg as Uint8Array, []);
          if (this.out.flush() === "blocked") {
            this.holdForSlowClient();
            this.channel.fastPathPause();
          }
          break;
        case FastNotice.DEVICE_REMAINDER:
          // The client waits until the queue drains, however short it is: reading on would only grow it, in
          // JavaScript (the fast path writes an idle socket only), so a burst that outpaces the device would run
          // mostly here (issue 15: 80% of a 3-million-request burst did). The device socket's buffer keeps the
          // device busy meanwhile, and the drain hands the next read back to the fast path.
          this.deviceRemainders++;
          if (this.fastPath !== null && this.fastPath.queueDeviceRemainder(arg as Uint8Array)) {
            this.channel.fastPathCongested();
            this.hostBlocked = true;
          }
          break;
        default:
          throw new CrosswayError("CW_GUEST_FAST_PATH", `native fast path: ${String(arg)}`);
      }
      this.rearm();
    } catch (err) {
      this.fail(err);
    }
  }

  private rearm(): void {
    this.publishIdle();
    if (this.closed) return;
    let ev = 0;
    if (!this.suspended && !this.hostBlocked) ev |= POLL_READABLE;
    if (this.out.pending > 0) ev |= POLL_WRITABLE;
    // Unchanged (the usual case after each wake-up): no call into the addon. libuv stops a handle itself on an
    // error, which onClientEvent handles by closing the session, so the remembered mask cannot go stale.
    if (ev === this.armed) return;
    this.armed = ev;
    this.watcher.start(ev);
  }

  private onClientEvent(status: number, events: number): void {
    if (this.closed) return;
    try {
      if (status < 0) {
        // libuv reports POLLERR as UV_EBADF and stops the handle (src/unix/poll.c, uv__poll_io). On a Unix stream
        // socket POLLERR means the peer closed with our events still unread (af_unix.c unix_release_sock sets
        // ECONNRESET): a client exiting or killed while events were in flight. A disconnection, not a fault.
        this.close(this.disconnectReason("connection reset, events left unread"), "info");
        return;
      }
      if ((events & POLL_WRITABLE) !== 0) this.flushClient();
      if ((events & POLL_READABLE) !== 0) this.readClient();
      this.rearm();
    } catch (err) {
      this.fail(err);
    }
  }

  private readClient(): void {
    const framer = this.conn.framer(Direction.REQUEST);
    const fdq = this.conn.fdQueue(Direction.REQUEST);
    // Bounded: a few reads per wake-up keeps one busy client from starving the others.
    for (let i = 0; i < 8 && !this.suspended && !this.hostBlocked && !this.closed; i++) {
      const w = framer.reserve();
      // With a native fast path, a read that left part of a message here is followed by one of just its rest, and
      // then the next wake-up is the fast path's again: it takes a client only while nothing partial waits here, so
      // a full read ending inside a message (in a burst, most do) would have made every read after it JavaScript's
      // until one ended on a boundary. A burst after a stalled compositor went 59-68% through JavaScript (issue 15).
      const rest = this.fastPath === null ? 0 : framer.missing;
      if (rest > 0 && rest < w.length) w.length = rest;
      const room = w.length;
      const n = recvWithFds(this.clientFd, w, fdq, this.recvFds, fdOverflow);
      if (n === AGAIN) return;
      if (n === 0) {
        this.close(this.disconnectReason(""), "info");
        return;
      }
      framer.commit(n);
      this.pumpRequests();
      // A short read drained the socket; the level-triggered watcher wakes us for more (saves an EAGAIN recvmsg).
      if (n < room) return;
      if (this.fastPath !== null && framer.pending === 0) return;
    }
  }

  private flushClient(): void {
    const before = this.out.pending;
    const res = this.out.flush();
    if (res === "done" && this.paused) {
      this.paused = false;
      this.clearStallTimer();
      this.channel.resume();
    } else if (this.paused && this.out.pending < before) {
      // The client reads, if slowly: it is not stalled.
      this.armStallTimer(true);
    }
  }

  /**
   * Events wait for a client whose socket is full: over config.clientQueueLimit that ends the session; below it the
   * session pauses (the caller pauses the channel) and the stall timer watches for progress.
   */
  private holdForSlowClient(): void {
    if (this.out.pending > this.ctx.config.clientQueueLimit) {
      throw new CrosswayError(
        "CW_GUEST_CLIENT_IO",
        `client is not reading: ${this.out.pending} bytes queued for it (limit ${this.ctx.config.clientQueueLimit})`,
      );
    }
    this.paused = true;
    this.armStallTimer(false);
  }

  /**
   * While the channel is paused for a client that does not read, a timer ends the session after
   * config.clientStallMs without progress: the proxy does not rely on the compositor to drop such a client
   * (libwayland >= 1.23 servers may buffer for it much longer).
   */
  private armStallTimer(restart: boolean): void {
    if (this.stallTimer !== null && !restart) return;
    this.clearStallTimer();
    const ms = this.ctx.config.clientStallMs;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (!this.paused || this.closed) return;
      this.fail(
        new CrosswayError(
          "CW_GUEST_CLIENT_IO",
          `client stopped reading its events: ${this.out.pending} bytes waited ${ms} ms without progress`,
        ),
      );
    }, ms);
    this.stallTimer.unref();
  }

  private clearStallTimer(): void {
    if (this.stallTimer === null) return;
    clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Requests: client → host

  private pumpRequests(): void {
    if (this.suspended || this.closed) return;
    // Items of an asynchronous hook that finished: their message is the last one it wrote.
    if (this.items.length > this.itemsStamped) this.stampItems();
    try {
      for (;;) {
        // The run of pass-through requests at the head, in one copy (pass-through.ts).
        this.conn.forwardPassThrough(Direction.REQUEST, this.passThrough, this.toHost);
        const m = this.conn.next(Direction.REQUEST);
        if (m === NEED_MORE) break;
        const hook = this.requestHooks.get(m.desc as MessageDesc);
        const r = hook === undefined ? this.forwardRequest(m) : hook(m);
        if (r instanceof Promise) {
          this.suspended = true;
          r.then(
            () => {
              this.suspended = false;
              this.pumpRequests();
              this.rearm();
            },
            (err: unknown) => this.fail(err),
          );
          break;
        }
        if (r !== "drop" && hook !== undefined) this.forwardRaw(m);
        if (this.items.length > this.itemsStamped) this.stampItems();
      }
      this.flushHost();
      // Requests can produce events of our own (early wl_buffer.release): deliver them now, not with the next
      // host event, since a client pacing itself on releases would otherwise wait for unrelated traffic.
      if (this.out.pending > 0) this.flushClient();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Forwards a request with no hook: raw bytes, and any fds turned into items. */
  private forwardRequest(m: DecodedMessage): undefined {
    if (m.fdCount > 0) this.fdsToItems(m);
    this.forwardRaw(m);
    return undefined;
  }

  private forwardRaw(m: DecodedMessage): void {
    this.toHost.raw(m.view);
    // wl_display's requests (sync, get_registry) are always answered: a host silent after them is stuck or gone.
    if (m.objectId === 1) this.channel.expectAnswer();
  }

  /**
   * Fds in a request without a dedicated hook: a pipe's write end (wl_data_offer.receive and its twins, and any
   * request in the same pattern) becomes a cross-domain read pipe; nothing else can cross (§6.3).
   */
  private fdsToItems(m: DecodedMessage): void {
    const desc = m.desc as MessageDesc;
    for (let i = 0; i < desc.kinds.length; i++) {
      if (desc.kinds[i] !== ArgKind.FD) continue;
      const fd = m.args.fd(i);
      const st = native.fstat(fd);
      const writeEnd = (st.mode & S_IFMT) === S_IFIFO && (native.getFl(fd) & O_ACCMODE) === O_WRONLY;
      if (!writeEnd) {
        native.close(fd);
        this.closeRemainingFds(m, i + 1);
        throw this.clientError(
          m.objectId,
          DisplayErrorCode.IMPLEMENTATION,
          `${desc.iface.name}@${m.objectId}.${desc.name}: argument ${desc.argNames[i]} is not the write end of a pipe, and no other fd can cross to the host`,
        );
      }
      this.items.push({ kind: "read-pipe", fd });
    }
  }

  private closeRemainingFds(m: DecodedMessage, from: number): void {
    const desc = m.desc as MessageDesc;
    for (let i = from; i < desc.kinds.length; i++)
      if (desc.kinds[i] === ArgKind.FD) native.close(m.args.fd(i));
  }

  /**
   * Marks the items added since the last call as belonging to the message just written: the channel puts each on a
   * SEND that starts before that message ends (libwayland's fd-before-message rule, issue 12 defect 1).
   */
  private stampItems(): void {
    const end = this.toHost.length;
    for (let k = this.itemsStamped; k < this.items.length; k++) this.items[k] = { ...this.items[k]!, end };
    this.itemsStamped = this.items.length;
  }

  private flushHost(): void {
    if (this.toHost.length === 0 || this.closed) return;
    // On a throw the items stay in this.items (the channel sent nothing and took nothing): teardown closes them once.
    const res = this.channel.send(this.toHost.bytes(), this.items);
    this.toHost.reset();
    // Truncating an array is a runtime call in V8: only when there is something to drop (most sends carry no fds).
    if (this.items.length !== 0) this.items.length = 0;
    this.itemsStamped = 0;
    if (this.importsToRelease.length !== 0) {
      for (const imp of this.importsToRelease) imp.release();
      this.importsToRelease.length = 0;
    }
    if (res === "buffered") this.hostBlocked = true;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Events: host → client

  private onHostData(data: Uint8Array, items: readonly ReceivedItem[]): "continue" | "pause" {
    if (this.closed) {
      for (const it of items) if ("fd" in it) native.close(it.fd);
      return "continue";
    }
    try {
      const fdq = this.conn.fdQueue(Direction.EVENT);
      // Every fd is tracked before anything can throw, so that teardown closes all of them. Indexed loops: for-of
      // allocated an iterator and its results on every RECEIVE (most carry no items at all).
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as ReceivedItem;
        if (it.kind === "blob" || it.kind === "write-pipe") this.hostItems.set(it.fd, it);
      }
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as ReceivedItem;
        if (it.kind === "blob" || it.kind === "write-pipe") {
          fdq.push(it.fd);
        } else {
          // Eventfds and sockets have no meaning on a Wayland channel.
          this.channel.releaseItem(it.id);
          throw new CrosswayError(
            "CW_GUEST_HOST_PROTOCOL",
            `host sent a ${it.kind} item on the Wayland channel`,
          );
        }
      }
      if (data.length > 0) this.conn.framer(Direction.EVENT).push(data);
      for (;;) {
        this.conn.forwardPassThrough(Direction.EVENT, this.passThrough, this.out);
        const m = this.conn.next(Direction.EVENT);
        if (m === NEED_MORE) break;
        if (m.desc === null) {
          // An event to a destroyed object: libwayland's client would drop it too; its fds are ours to close.
          for (let k = 0; k < m.fdCount; k++) this.closeHostFd(m.fds[k] as number);
          continue;
        }
        const hook = this.eventHooks.get(m.desc);
        const r = hook === undefined ? undefined : hook(m);
        if (r !== "drop") this.forwardEvent(m);
      }
      if (this.out.flush() === "blocked") {
        this.holdForSlowClient();
        this.rearm();
        return "pause";
      }
      this.publishIdle();
      return "continue";
    } catch (err) {
      this.fail(err);
      return "continue";
    }
  }

  /** Forwards an event: raw bytes; fds already replaced by hooks where needed. */
  private forwardEvent(m: DecodedMessage): void {
    const desc = m.desc as MessageDesc;
    // Most events carry no fds: share one empty array instead of allocating per event.
    const fds = desc.fdCount > 0 ? [] : NO_FDS;
    if (desc.fdCount > 0) {
      for (let i = 0; i < desc.kinds.length; i++) {
        if (desc.kinds[i] === ArgKind.FD) {
          const fd = m.args.fd(i);
          this.hostItems.delete(fd);
          (fds as number[]).push(fd);
        }
      }
    }
    this.out.appendRange(m.view.bytes, m.view.offset, m.view.size, fds);
  }

  private closeHostFd(fd: number): void {
    this.hostItems.delete(fd);
    native.close(fd);
  }

  // ----------------------------------------------------------------------------------------------------------
  // Hooks

  private installHooks(): void {
    const r = this.ctx.registry;
    const req = (iface: string, name: string, hook: Hook): void => {
      const d = msg(r, iface, name, false);
      if (d !== undefined) this.requestHooks.set(d, hook);
    };
    const ev = (iface: string, name: string, hook: Hook): void => {
      const d = msg(r, iface, name, true);
      if (d !== undefined) this.eventHooks.set(d, hook);
    };
    // Registry policy.
    ev("wl_registry", "global", (m) => this.onGlobal(m));
    ev("wl_registry", "global_remove", (m) =>
      this.globals.onGlobalRemove(m.args.uint(0)) ? "drop" : undefined,
    );
    req("wl_registry", "bind", (m) => this.onBind(m));
    // wl_shm shadowing (shm-shadow.ts).
    this.shm.install(req, ev);
    // Guest DMA-BUFs cross as virtgpu resource ids (kernel backend; the policy hides linux-dmabuf otherwise).
    req("zwp_linux_buffer_params_v1", "add", (m) => this.onDmabufAdd(m));
    // Tags, so host windows say where they come from.
    // The unprefixed values are kept for `crossway status`.
    req("xdg_toplevel", "set_title", (m) => {
      this.title = m.args.string(0) ?? "";
      return this.ctx.config.titlePrefix !== ""
        ? this.prefixString(m, this.ctx.config.titlePrefix)
        : undefined;
    });
    req("xdg_toplevel", "set_app_id", (m) => {
      this.appId = m.args.string(0) ?? "";
      return this.ctx.config.appIdPrefix !== ""
        ? this.prefixString(m, this.ctx.config.appIdPrefix)
        : undefined;
    });
    // Host memory handed to clients becomes a sealed private copy.
    ev("wl_keyboard", "keymap", (m) => this.copyHostMemory(m, 1, 2, "crossway-keymap"));
    ev("zwp_linux_dmabuf_feedback_v1", "format_table", (m) =>
      this.copyHostMemory(m, 0, 1, "crossway-format-table"),
    );
  }

  private onGlobal(m: DecodedMessage): "drop" | undefined {
    const name = m.args.uint(0);
    const iface = m.args.string(1) ?? "";
    const a = this.globals.onGlobal(name, iface, m.args.uint(2));
    if (a.kind === "forward") return undefined;
    if (a.kind === "hide") {
      this.refusals++;
      this.log.debug({ global: iface, version: m.args.uint(2), reason: a.reason }, "global hidden");
      return "drop";
    }
    const w = this.scratch;
    w.reset();
    w.begin(m.objectId, m.opcode).uint(name).string(iface).uint(a.version).end();
    this.out.append(w.bytes(), []);
    return "drop";
  }

  private onBind(m: DecodedMessage): undefined {
    const refused = this.globals.checkBind(m.args.uint(0), m.args.string(1) ?? "", m.args.uint(2));
    if (refused !== undefined) throw this.clientError(m.objectId, DisplayErrorCode.INVALID_OBJECT, refused);
    return undefined;
  }

  /**
   * zwp_linux_buffer_params_v1.add(fd, plane_idx, offset, stride, modifier_hi, modifier_lo): the plane's dmabuf is
   * PRIME-imported into the channel's context and sent as its resource id (§6.3); the client's fd is closed.
   */
  private onDmabufAdd(m: DecodedMessage): Promise<void> {
    const fd = m.args.fd(0);
    const bytes = m.view.retain();
    if (!this.ctx.policy.dmabuf) {
      native.close(fd);
      throw this.clientError(
        m.objectId,
        DisplayErrorCode.IMPLEMENTATION,
        "linux-dmabuf is not available on this transport",
      );
    }
    return this.channel.importDmabuf(fd).then(
      (imported) => {
        native.close(fd);
        if (this.closed) {
          imported.release();
          return;
        }
        this.toHost.rawBytes(bytes);
        this.items.push({ kind: "blob", resourceId: imported.resourceId });
        this.importsToRelease.push(imported);
      },
      (err: unknown) => {
        native.close(fd);
        // zwp_linux_buffer_params_v1.error.invalid_wl_buffer is for later; a plane that is not a virtgpu dmabuf
        // (e.g. a memfd) cannot cross at all.
        throw this.clientError(
          m.objectId,
          DisplayErrorCode.IMPLEMENTATION,
          `zwp_linux_buffer_params_v1@${m.objectId}.add: the plane fd is not a virtio-gpu dmabuf (${(err as Error).message})`,
        );
      },
    );
  }

  private prefixString(m: DecodedMessage, prefix: string): "drop" {
    const desc = m.desc as MessageDesc;
    // Keep the rewritten message within what the host accepts (header, length word, NUL, padding).
    const value = tagString(m.args.string(0) ?? "", prefix, "prefix", this.ctx.config.maxMessageSize - 16);
    this.toHost.begin(m.objectId, desc.opcode).string(value).end();
    return "drop";
  }

  /** Replaces a host memory fd (arg `fdArg`, size in arg `sizeArg`) with a sealed private copy. */
  private copyHostMemory(m: DecodedMessage, fdArg: number, sizeArg: number, name: string): undefined {
    const fd = m.args.fd(fdArg);
    const size = m.args.uint(sizeArg);
    const item = this.hostItems.get(fd);
    if (item === undefined || item.kind !== "blob" || size === 0) return undefined;
    if (size > item.size) {
      throw new CrosswayError(
        "CW_GUEST_HOST_PROTOCOL",
        `host ${name} claims ${size} bytes in a ${item.size}-byte blob`,
      );
    }
    const ab = native.mmap(fd, item.size, PROT_READ, MAP_SHARED, 0);
    let copy: number;
    try {
      copy = sealedCopy(name, new Uint8Array(ab, 0, size));
    } finally {
      native.munmap(ab);
    }
    this.closeHostFd(fd);
    m.args.word[fdArg] = copy;
    this.hostItems.set(copy, { kind: "blob", fd: copy, size, access: "read-only" });
    return undefined;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Errors and teardown

  /** A protocol error to report to the client as wl_display.error, then disconnect (libwayland's behaviour). */
  private clientError(objectId: number, code: number, message: string): WireProtocolError {
    return new WireProtocolError(
      "CW_GUEST_CLIENT_PROTOCOL",
      message,
      { objectId },
      { objectId, code, message },
    );
  }

  /** "client disconnected", saying when it died in the middle of a message (its partial bytes are dropped). */
  private disconnectReason(how: string): string {
    const partial = this.conn.framer(Direction.REQUEST).pending;
    const details = [
      ...(how !== "" ? [how] : []),
      ...(partial > 0 ? [`${partial} bytes of an incomplete message dropped`] : []),
    ];
    return details.length > 0
      ? `client disconnected ${partial > 0 ? "mid-message " : ""}(${details.join("; ")})`
      : "client disconnected";
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "EPIPE" || code === "ECONNRESET") {
      // Only the client socket raises these here (device-side socket errors arrive through the channel's
      // onClose): the client went away between two reads or writes, as in the POLLERR case above.
      this.close(this.disconnectReason(`connection reset (${code})`), "info");
      return;
    }
    if (err instanceof WireProtocolError) {
      const d = err.displayError;
      this.log.warn(
        { err: err.message, code: err.code, object: d.objectId },
        "client protocol error, disconnecting",
      );
      try {
        const w = this.scratch;
        w.reset();
        w.displayError({ ...d, message: d.message.slice(0, 3000) });
        this.out.append(w.bytes(), []);
        this.out.flush();
      } catch {
        // The client is gone or not reading: it will not see the error.
      }
      this.close(`protocol error: ${err.message}`, "warn");
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (isUnplanned(err)) {
      this.log.error(
        { err: message, stack: err instanceof Error ? String(err.stack) : undefined },
        "internal error, disconnecting the client",
      );
    }
    this.close(message, "warn");
  }

  private onChannelClose(reason: CloseReason): void {
    if (this.closed) return;
    try {
      this.out.flush();
    } catch {
      // Best effort: deliver what the compositor said last (e.g. its wl_display.error).
    }
    const why =
      reason.kind === "host-hangup"
        ? "compositor closed the connection"
        : reason.kind === "error"
          ? `channel error: ${reason.error.message}`
          : "channel closed";
    // A client that does not read its events makes the compositor's output buffer for it overflow, and
    // libwayland-server then drops the connection (1.21: wl_connection_queue fails on a full 4 KiB ring, and
    // the client is destroyed): the host's hangup is the symptom, the client is the cause, so say both.
    if (this.paused && this.out.pending > 0) {
      this.close(
        `client was not reading its events (${this.out.pending} bytes queued for it) and the compositor dropped its connection (${why})`,
        "warn",
      );
      return;
    }
    this.close(why, reason.kind === "error" ? "warn" : "info");
  }

  /** The connection's figures for `crossway status` (the server adds the policy generation). */
  status(): Omit<ConnectionStatus, "policyGeneration"> {
    return {
      tag: this.tag,
      ...(this.appId !== undefined ? { appId: this.appId } : {}),
      ...(this.title !== undefined ? { title: this.title } : {}),
      objects: this.conn.objects.liveCount(),
      shmBytes: this.shmBytes,
      queuedBytes: this.out.pending,
      ageMs: Date.now() - this.startedAt,
      refusals: this.refusals,
      ...(this.fastPath !== null
        ? {
            fastPath: {
              requestRuns: this.fast[FastState.REQUEST_RUNS] as number,
              requestMessages: this.fast[FastState.REQUEST_MESSAGES] as number,
              eventRuns: this.fast[FastState.EVENT_RUNS] as number,
              eventMessages: this.fast[FastState.EVENT_MESSAGES] as number,
              clientRemainders: this.fast[FastState.CLIENT_REMAINDERS] as number,
              deviceRemainders: this.deviceRemainders,
            },
          }
        : {}),
    };
  }

  /** Ends the session: closes the client socket, the channel and every fd and mapping it holds. Idempotent. */
  close(why: string, level: "info" | "warn" = "info"): void {
    if (this.closed) return;
    this.closed = true;
    // Detached first: nothing native acts on this connection any more, whatever the state array says.
    this.fastPath?.detach();
    this.clearStallTimer();
    this.log[level]({ reason: why }, "client session ended");
    this.watcher.stop();
    this.watcher.close();
    this.out.discard();
    for (const fd of this.conn.drainFds()) {
      this.hostItems.delete(fd);
      native.close(fd);
    }
    for (const fd of this.hostItems.keys()) native.close(fd);
    this.hostItems.clear();
    for (const it of this.items) if (it.kind === "read-pipe") native.close(it.fd);
    this.items.length = 0;
    this.itemsStamped = 0;
    for (const imp of this.importsToRelease) imp.release();
    this.importsToRelease.length = 0;
    this.shm.close();
    native.close(this.clientFd);
    this.channel.close();
    this.onEnd(this);
  }
}
