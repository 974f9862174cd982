// One VM client's connection through the host-side filter: every message parsed both ways, the VM's policy applied.
//
//   VMM socket ──recvmsg──▶ framer+fds ──next(REQUEST)──▶ policy hooks ──▶ toUpstream ──sendmsg──▶ compositor
//   VMM socket ◀──sendmsg── toClient ◀── policy hooks ◀──next(EVENT)── framer+fds ◀──recvmsg── compositor
//
// Unlike the guest proxy, fds pass through unchanged (both ends are on the host); what the filter adds is the
// boundary: hidden globals, version caps, tags the VM cannot remove, selection directions, quotas and a rate.
import type { ConnectionStatus } from "../../control/status-report.ts";
import { CrosswayError } from "../../errors.ts";
import { FdOutputQueue } from "../../fd/fd-output-queue.ts";
import { recvWithFds } from "../../fd/recv-with-fds.ts";
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
import { NEED_MORE } from "../../wire/wayland/framer.ts";
import { MessageTable } from "../../wire/wayland/message-table.ts";
import { MessageWriter } from "../../wire/wayland/message-writer.ts";
import { SERVER_ID_START } from "../../wire/wayland/object-map.ts";
import { PassThroughTable } from "../../wire/wayland/pass-through.ts";
import { ArgKind, type MessageDesc, type ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";
import { type DecodedMessage, Direction, WireConnection } from "../../wire/wayland/wire-connection.ts";
import { TokenBucket } from "../token-bucket.ts";
import { GlobalFilter } from "../wayland/global-filter.ts";
import { msg } from "../wayland/message-desc.ts";
import { tagString } from "../wayland/tag-string.ts";
import type { WlAuditAction, WlAuditSink } from "./audit.ts";
import { type FilterPolicy, guestMayOffer, guestMayRead, type SelectionMode } from "./filter-policy.ts";

/** One wl_shm pool as the compositor holds it: declared size, and the pool object plus each buffer made from it. */
interface ShmPoolCharge {
  size: number;
  refs: number;
}

/** Static inputs every session shares. */
export interface FilterContext {
  readonly registry: ProtocolRegistry;
  readonly policy: FilterPolicy;
  readonly audit: WlAuditSink;
  readonly log: Logger;
}

/** Which selection an offer object belongs to, learnt from the event that announced it. */
type OfferKind = "clipboard" | "primarySelection" | "dnd";

type Hook = (m: DecodedMessage) => "drop" | undefined;

const NO_FDS: readonly number[] = Object.freeze([]);

/** A refusal that ends the connection: the compositor's own wl_display.error, then the audit line's rule. */
class Refusal extends WireProtocolError {
  constructor(
    readonly rule: string,
    readonly request: { readonly object: string; readonly name: string },
    objectId: number,
    code: number,
    message: string,
  ) {
    super("CW_WLFILTER_REFUSED", message, { objectId }, { objectId, code, message });
  }
}

/** `interface@id` and the message name of a decoded message, for audit lines. */
function where(m: DecodedMessage): { object: string; name: string } {
  const desc = m.desc as MessageDesc;
  return { object: `${desc.iface.name}@${m.objectId}`, name: desc.name };
}

/** Refusals about the connection as a whole (queued bytes) name the display, like the compositor's no_memory. */
const CONNECTION = { object: "wl_display@1", name: "*" } as const;

/** One client ⇄ compositor connection. It closes itself (both sockets, every fd) on any fatal error. */
export class FilterSession {
  readonly conn: WireConnection;
  private readonly toClient: FdOutputQueue;
  private readonly toUpstream: FdOutputQueue;
  private readonly w = new MessageWriter({ capacity: 8192 });
  private readonly recvFds = new Int32Array(MAX_FDS_PER_MSG + 1);
  private readonly clientWatcher: NativeWatcher;
  private readonly upstreamWatcher: NativeWatcher;
  private readonly requestHooks: MessageTable<Hook>;
  private readonly eventHooks: MessageTable<Hook>;
  /** Messages forwarded byte for byte in runs, undecoded: no hook of this session is on them (pass-through.ts). */
  private readonly passThrough: PassThroughTable;
  private readonly bucket: TokenBucket;
  private readonly log: Logger;
  private rateTimer: NodeJS.Timeout | null = null;
  private throttles = 0;
  private lastThrottleAudit = Number.NEGATIVE_INFINITY;
  /** The request being handled was already forwarded (its fds belong to the output). */
  private forwarded = false;
  private closed = false;

  private readonly globals: GlobalFilter;
  private readonly offers = new Map<number, OfferKind>();
  /** Host drag offers whose refused replies were already audited (a toolkit accepts on every motion). */
  private readonly refusedDragOffers = new Set<number>();
  /** wl_data_source.cancelled, sent for a start_drag the policy drops. */
  private sourceCancelled: MessageDesc | undefined;
  /** Client objects alive in the compositor: +1 per new_id request, -1 per delete_id of a client id. */
  private objects = 0;
  /** wl_shm pools by id: declared size, and references (the pool object itself plus each of its buffers). */
  private readonly pools = new Map<number, ShmPoolCharge>();
  /** Buffers hold their pool's entry, not its id: a pool id can be taken again while old buffers live on. */
  private readonly bufferPool = new Map<number, ShmPoolCharge>();
  private shmBytes = 0;
  /** For `crossway status`: when the client connected, and how many audit records it caused. */
  private readonly startedAt = Date.now();
  private refusals = 0;

  private constructor(
    readonly clientFd: number,
    readonly upstreamFd: number,
    private readonly ctx: FilterContext,
    readonly tag: string,
    private readonly onEnd: (s: FilterSession) => void,
  ) {
    const p = ctx.policy;
    this.log = ctx.log.child({ vm: p.name, client: tag });
    // The filter stands where the compositor's libwayland is: client ids are judged by its rules.
    this.conn = new WireConnection(ctx.registry, {
      maxMessageSize: p.maxMessageSize,
      name: tag,
      clientIdsReusable: true,
    });
    // On the host, dmabufs are real: the compositor itself validates them.
    this.globals = new GlobalFilter({ globals: p.globals, dmabuf: true }, ctx.registry);
    this.bucket = new TokenBucket(p.quotas.requestsPerSecond, p.quotas.burst);
    this.toClient = new FdOutputQueue(clientFd);
    this.toUpstream = new FdOutputQueue(upstreamFd);
    this.requestHooks = new MessageTable(ctx.registry);
    this.eventHooks = new MessageTable(ctx.registry);
    this.installHooks();
    this.passThrough = PassThroughTable.forHooks(ctx.registry, this.requestHooks, this.eventHooks);
    this.clientWatcher = native.createWatcher(clientFd, (status, events) =>
      this.onSocket("client", status, events),
    );
    this.upstreamWatcher = native.createWatcher(upstreamFd, (status, events) =>
      this.onSocket("upstream", status, events),
    );
    this.rearm();
  }

  /** Starts filtering `clientFd` to `upstreamFd` (both owned by the session from now on). */
  static start(
    clientFd: number,
    upstreamFd: number,
    ctx: FilterContext,
    tag: string,
    onEnd: (s: FilterSession) => void,
  ): FilterSession {
    return new FilterSession(clientFd, upstreamFd, ctx, tag, onEnd);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ----------------------------------------------------------------------------------------------------------
  // I/O

  /** Client reads stop while the compositor's queue is full (back-pressure) or the rate is exceeded. */
  private rearm(): void {
    if (this.closed) return;
    let c = 0;
    if (this.toUpstream.pending === 0 && this.rateTimer === null) c |= POLL_READABLE;
    if (this.toClient.pending > 0) c |= POLL_WRITABLE;
    this.clientWatcher.start(c);
    // The compositor is always read, so it never has to drop us; the client's queue is bounded by the quota.
    this.upstreamWatcher.start(POLL_READABLE | (this.toUpstream.pending > 0 ? POLL_WRITABLE : 0));
  }

  private onSocket(side: "client" | "upstream", status: number, events: number): void {
    if (this.closed) return;
    try {
      if (status < 0) {
        this.close(side === "client" ? "client disconnected (reset)" : "compositor closed the connection");
        return;
      }
      if (side === "client") {
        if ((events & POLL_WRITABLE) !== 0) this.flushClient();
        if ((events & POLL_READABLE) !== 0) this.readSide(Direction.REQUEST);
      } else {
        if ((events & POLL_WRITABLE) !== 0) this.toUpstream.flush();
        if ((events & POLL_READABLE) !== 0) this.readSide(Direction.EVENT);
      }
      this.rearm();
    } catch (err) {
      this.fail(err);
    }
  }

  private readSide(dir: Direction): void {
    const fd = dir === Direction.REQUEST ? this.clientFd : this.upstreamFd;
    const framer = this.conn.framer(dir);
    const fdq = this.conn.fdQueue(dir);
    // Bounded: a few reads per wake-up keeps one busy connection from starving the others.
    for (let i = 0; i < 8 && !this.closed; i++) {
      if (dir === Direction.REQUEST && (this.toUpstream.pending > 0 || this.rateTimer !== null)) return;
      const r = framer.reserve();
      const room = r.length;
      const n = recvWithFds(fd, r, fdq, this.recvFds, (q, cause) => {
        const side = dir === Direction.REQUEST ? "client" : "compositor";
        return new CrosswayError(
          "CW_WLFILTER_IO",
          `${side} queued ${q.length} fds without messages for them (limit ${q.limit})`,
          {},
          { cause },
        );
      });
      if (n === AGAIN) return;
      if (n === 0) {
        this.close(dir === Direction.REQUEST ? "client disconnected" : "compositor closed the connection");
        return;
      }
      framer.commit(n);
      if (dir === Direction.REQUEST) this.pumpRequests();
      else this.pumpEvents();
      if (n < room) return;
    }
  }

  private flushClient(): void {
    if (this.toClient.flush() === "blocked" && this.toClient.pending > this.ctx.policy.quotas.queuedBytes) {
      const limit = this.ctx.policy.quotas.queuedBytes;
      throw new Refusal(
        "quotas.queuedBytes",
        CONNECTION,
        1,
        DisplayErrorCode.NO_MEMORY,
        `no memory: ${this.toClient.pending} bytes of events queued for a client that does not read them (limit ${limit})`,
      );
    }
  }

  // ----------------------------------------------------------------------------------------------------------
  // Requests: VM → compositor

  private pumpRequests(): void {
    while (!this.closed && this.rateTimer === null) {
      // The run of pass-through requests at the head, in one copy, within what the rate allows now. The bucket is
      // refilled once per turn: the decoded message below takes its token at the same time.
      const budget = this.bucket.budget();
      const passed = this.conn.forwardPassThrough(
        Direction.REQUEST,
        this.passThrough,
        this.toUpstream,
        budget,
      );
      if (passed > 0) {
        const wait = this.bucket.takeMany(passed);
        if (wait > 0) {
          this.throttle(wait);
          break;
        }
      }
      const m = this.conn.next(Direction.REQUEST);
      if (m === NEED_MORE) break;
      try {
        const hook = this.requestHooks.get(m.desc as MessageDesc);
        if (hook === undefined || hook(m) !== "drop") {
          this.countObjects(m);
          this.forward(this.toUpstream, m);
        }
      } catch (err) {
        // A refused message was neither forwarded nor dropped: its fds are still ours.
        if (!this.forwarded) this.closeFds(m);
        throw err;
      } finally {
        this.forwarded = false;
      }
      const wait = this.bucket.takeMany(1);
      if (wait > 0) this.throttle(wait);
    }
    this.toUpstream.flush();
  }

  /**
   * Stops reading the client until the bucket has refilled. The audit line is written at most once a second per
   * connection (a flood throttles every few ms), with the number of stretches it stands for.
   */
  private throttle(waitMs: number): void {
    const q = this.ctx.policy.quotas;
    this.throttles++;
    const now = performance.now();
    if (now - this.lastThrottleAudit >= 1000) {
      this.lastThrottleAudit = now;
      this.audit(
        CONNECTION.object,
        CONNECTION.name,
        "quotas.requestsPerSecond",
        "throttled",
        `more than ${q.requestsPerSecond} requests/s (burst ${q.burst}): client reads paused ${this.throttles} times since the last line`,
      );
      this.throttles = 0;
    }
    this.rateTimer = setTimeout(() => {
      this.rateTimer = null;
      try {
        this.pumpRequests();
        this.rearm();
      } catch (err) {
        this.fail(err);
      }
    }, Math.ceil(waitMs));
  }

  private countObjects(m: DecodedMessage): void {
    const desc = m.desc as MessageDesc;
    if (desc.newIdIndex < 0) return;
    const limit = this.ctx.policy.quotas.objects;
    if (++this.objects > limit) {
      throw new Refusal(
        "quotas.objects",
        where(m),
        1,
        DisplayErrorCode.NO_MEMORY,
        `no memory: ${desc.iface.name}@${m.objectId}.${desc.name} would make ${this.objects} objects for this client (limit ${limit})`,
      );
    }
  }

  /** Forwards a decoded message unchanged: its bytes, and its fds (ownership moves to the output). */
  private forward(out: FdOutputQueue, m: DecodedMessage): void {
    const bytes = m.view.bytes.subarray(m.view.offset, m.view.offset + m.view.size);
    if (m.fdCount === 0) {
      out.append(bytes, NO_FDS);
      return;
    }
    this.forwarded = true;
    const fds: number[] = [];
    if (m.desc === null) {
      for (let k = 0; k < m.fdCount; k++) fds.push(m.fds[k] as number);
    } else {
      const kinds = m.desc.kinds;
      for (let i = 0; i < kinds.length; i++) if (kinds[i] === ArgKind.FD) fds.push(m.args.fd(i));
    }
    out.append(bytes, fds);
  }

  private closeFds(m: DecodedMessage): void {
    if (m.fdCount === 0 || m.desc === null) return;
    const kinds = m.desc.kinds;
    for (let i = 0; i < kinds.length; i++) if (kinds[i] === ArgKind.FD) native.close(m.args.fd(i));
  }

  /** Drops a request: closes its fds and writes the audit line. The client is not told (it goes on). */
  private drop(m: DecodedMessage, rule: string, detail: string): "drop" {
    const desc = m.desc as MessageDesc;
    this.closeFds(m);
    this.audit(`${desc.iface.name}@${m.objectId}`, desc.name, rule, "dropped", detail);
    return "drop";
  }

  // ----------------------------------------------------------------------------------------------------------
  // Events: compositor → VM

  private pumpEvents(): void {
    for (;;) {
      if (this.closed) return;
      this.conn.forwardPassThrough(Direction.EVENT, this.passThrough, this.toClient);
      const m = this.conn.next(Direction.EVENT);
      if (m === NEED_MORE) break;
      const hook = m.desc === null ? undefined : this.eventHooks.get(m.desc);
      if (hook !== undefined && hook(m) === "drop") continue;
      this.forward(this.toClient, m);
    }
    this.flushClient();
  }

  // ----------------------------------------------------------------------------------------------------------
  // Policy

  private installHooks(): void {
    const r = this.ctx.registry;
    const p = this.ctx.policy;
    const req = (iface: string, name: string, hook: Hook): void => {
      const d = msg(r, iface, name, false);
      if (d !== undefined) this.requestHooks.set(d, hook);
    };
    const ev = (iface: string, name: string, hook: Hook): void => {
      const d = msg(r, iface, name, true);
      if (d !== undefined) this.eventHooks.set(d, hook);
    };
    // Globals: the allowlist with caps; a bind of anything else is the compositor's own invalid_object.
    ev("wl_registry", "global", (m) => this.onGlobal(m));
    ev("wl_registry", "global_remove", (m) =>
      this.globals.onGlobalRemove(m.args.uint(0)) ? "drop" : undefined,
    );
    req("wl_registry", "bind", (m) => this.onBind(m));
    ev("wl_display", "delete_id", (m) => {
      if (m.args.uint(0) < SERVER_ID_START && this.objects > 0) this.objects--;
      return undefined;
    });
    // Tags: every toplevel gets the VM's title and app_id at creation, and every later one is tagged again.
    const toplevelTags = (iface: string, create: [string, string], title: string, appId: string): void => {
      const setTitle = msg(r, iface, title, false);
      const setAppId = msg(r, iface, appId, false);
      req(create[0], create[1], (m) => {
        this.countObjects(m);
        this.forward(this.toUpstream, m);
        const id = m.args.id((m.desc as MessageDesc).newIdIndex);
        if (setTitle !== undefined) this.writeTagged(id, setTitle, "", p.title);
        if (setAppId !== undefined) this.writeTagged(id, setAppId, "", p.appId);
        return "drop";
      });
      if (setTitle !== undefined) req(iface, title, (m) => this.retag(m, p.title));
      if (setAppId !== undefined) req(iface, appId, (m) => this.retag(m, p.appId));
    };
    toplevelTags("xdg_toplevel", ["xdg_surface", "get_toplevel"], "set_title", "set_app_id");
    toplevelTags("zxdg_toplevel_v6", ["zxdg_surface_v6", "get_toplevel"], "set_title", "set_app_id");
    toplevelTags("wl_shell_surface", ["wl_shell", "get_shell_surface"], "set_title", "set_class");
    // Selections: who may read (receive on a host offer) and who may offer (set_selection, start_drag).
    ev("wl_data_device", "selection", (m) => this.onSelection(m, "clipboard"));
    ev("zwp_primary_selection_device_v1", "selection", (m) => this.onSelection(m, "primarySelection"));
    ev("wl_data_device", "enter", (m) => {
      const offer = m.args.id(4);
      if (offer !== 0) this.offers.set(offer, "dnd");
      return undefined;
    });
    req("wl_data_offer", "receive", (m) => this.onReceive(m));
    req("zwp_primary_selection_offer_v1", "receive", (m) => this.onReceive(m));
    req("wl_data_offer", "destroy", (m) => {
      this.offers.delete(m.objectId);
      this.refusedDragOffers.delete(m.objectId);
      return undefined;
    });
    for (const reply of ["accept", "set_actions", "finish"]) {
      req("wl_data_offer", reply, (m) => this.onDragReply(m));
    }
    req("zwp_primary_selection_offer_v1", "destroy", (m) => {
      this.offers.delete(m.objectId);
      return undefined;
    });
    req("wl_data_device", "set_selection", (m) => this.onOffer(m, "clipboard", p.clipboard));
    req("zwp_primary_selection_device_v1", "set_selection", (m) =>
      this.onOffer(m, "primarySelection", p.primarySelection),
    );
    this.sourceCancelled = msg(r, "wl_data_source", "cancelled", true);
    req("wl_data_device", "start_drag", (m) => this.onStartDrag(m));
    // Shared memory the compositor maps for this client.
    req("wl_shm", "create_pool", (m) => this.onCreatePool(m));
    req("wl_shm_pool", "resize", (m) => this.onResizePool(m));
    req("wl_shm_pool", "destroy", (m) => {
      const pool = this.pools.get(m.objectId);
      this.pools.delete(m.objectId);
      if (pool !== undefined) this.unrefPool(pool);
      return undefined;
    });
    req("wl_shm_pool", "create_buffer", (m) => {
      const pool = this.pools.get(m.objectId);
      if (pool !== undefined) {
        pool.refs++;
        this.bufferPool.set(m.args.id(0), pool);
      }
      return undefined;
    });
    req("wl_buffer", "destroy", (m) => {
      const pool = this.bufferPool.get(m.objectId);
      if (pool !== undefined) {
        this.bufferPool.delete(m.objectId);
        this.unrefPool(pool);
      }
      return undefined;
    });
  }

  private onGlobal(m: DecodedMessage): "drop" | undefined {
    const name = m.args.uint(0);
    const iface = m.args.string(1) ?? "";
    const a = this.globals.onGlobal(name, iface, m.args.uint(2));
    if (a.kind === "forward") return undefined;
    if (a.kind === "hide") {
      this.log.debug({ global: iface, version: m.args.uint(2), reason: a.reason }, "global hidden");
      return "drop";
    }
    this.w.reset();
    this.w.begin(m.objectId, m.opcode).uint(name).string(iface).uint(a.version).end();
    this.toClient.append(this.w.bytes(), NO_FDS);
    return "drop";
  }

  /** A bind of a global this client was not shown, or above its version, gets the compositor's own error. */
  private onBind(m: DecodedMessage): undefined {
    const refused = this.globals.checkBind(m.args.uint(0), m.args.string(1) ?? "", m.args.uint(2));
    if (refused !== undefined) {
      throw new Refusal("globals", where(m), m.objectId, DisplayErrorCode.INVALID_OBJECT, refused);
    }
    return undefined;
  }

  /** Writes `desc(objectId, tagged value)` towards the compositor. */
  private writeTagged(objectId: number, desc: MessageDesc, value: string, tag: FilterPolicy["title"]): void {
    // Header, length word, NUL and padding must fit the compositor's message limit.
    const s = tagString(value, tag.text, tag.mode, this.ctx.policy.maxMessageSize - 16);
    this.w.reset();
    this.w.begin(objectId, desc.opcode).string(s).end();
    this.toUpstream.append(this.w.bytes(), NO_FDS);
  }

  private retag(m: DecodedMessage, tag: FilterPolicy["title"]): "drop" {
    this.writeTagged(m.objectId, m.desc as MessageDesc, m.args.string(0) ?? "", tag);
    return "drop";
  }

  /** A host selection reaches the VM only when it may read it; otherwise the VM sees an empty selection. */
  private onSelection(m: DecodedMessage, kind: "clipboard" | "primarySelection"): "drop" | undefined {
    const offer = m.args.id(0);
    if (offer === 0) return undefined;
    this.offers.set(offer, kind);
    if (guestMayRead(this.ctx.policy[kind])) return undefined;
    this.w.reset();
    this.w.begin(m.objectId, m.opcode).uint(0).end();
    this.toClient.append(this.w.bytes(), NO_FDS);
    return "drop";
  }

  private onReceive(m: DecodedMessage): "drop" | undefined {
    const kind = this.offers.get(m.objectId);
    const p = this.ctx.policy;
    // An offer not yet announced by a selection or enter event is judged by the strictest of the two it can be.
    const mode: SelectionMode =
      kind !== undefined ? p[kind] : guestMayRead(p.clipboard) ? p.dnd : p.clipboard;
    if (guestMayRead(mode)) return undefined;
    return this.drop(
      m,
      kind ?? "clipboard",
      `the VM may not read host ${kind ?? "selection"} data (policy "${mode}")`,
    );
  }

  private onOffer(m: DecodedMessage, kind: OfferKind, mode: SelectionMode): "drop" | undefined {
    if (guestMayOffer(mode)) return undefined;
    return this.drop(m, kind, `the VM may not set or clear host ${kind} data (policy "${mode}")`);
  }

  /**
   * A drag the VM may not start never reaches the compositor; its source is told `cancelled`, as sway tells a
   * source whose start_drag it cannot accept, so the VM's toolkit ends its drag state.
   */
  private onStartDrag(m: DecodedMessage): "drop" | undefined {
    if (this.onOffer(m, "dnd", this.ctx.policy.dnd) === undefined) return undefined;
    const source = m.args.id(0);
    if (source !== 0 && this.sourceCancelled !== undefined) {
      this.w.reset();
      this.w.begin(source, this.sourceCancelled.opcode).end();
      this.toClient.append(this.w.bytes(), NO_FDS);
    }
    return "drop";
  }

  /**
   * accept, set_actions and finish on a host drag's offer, where the VM may not read host drags: dropped, so the
   * host's source never sees a target or an action and the compositor cancels the drop (a "move" into the VM
   * would otherwise let the host's app delete data the VM never got). Audited once per offer: toolkits accept on
   * every motion. Selection offers pass (the compositor ignores these requests on them).
   */
  private onDragReply(m: DecodedMessage): "drop" | undefined {
    const kind = this.offers.get(m.objectId);
    const mode = this.ctx.policy.dnd;
    if ((kind !== undefined && kind !== "dnd") || guestMayRead(mode)) return undefined;
    if (this.refusedDragOffers.has(m.objectId)) return "drop";
    this.refusedDragOffers.add(m.objectId);
    return this.drop(m, "dnd", `the VM may not take part in host drags (policy "${mode}")`);
  }

  private onCreatePool(m: DecodedMessage): undefined {
    const size = m.args.int(2);
    // A negative or zero size is the compositor's own error to give (wl_shm invalid_stride); count only real ones.
    if (size > 0) this.chargeShm(m, size);
    this.pools.set(m.args.id(0), { size: Math.max(0, size), refs: 1 });
    return undefined;
  }

  private onResizePool(m: DecodedMessage): undefined {
    const pool = this.pools.get(m.objectId);
    const size = m.args.int(0);
    if (pool === undefined || size <= pool.size) return undefined;
    this.chargeShm(m, size - pool.size);
    pool.size = size;
    return undefined;
  }

  private chargeShm(m: DecodedMessage, bytes: number): void {
    const limit = this.ctx.policy.quotas.shmBytes;
    if (this.shmBytes + bytes > limit) {
      const desc = m.desc as MessageDesc;
      throw new Refusal(
        "quotas.shmBytes",
        where(m),
        1,
        DisplayErrorCode.NO_MEMORY,
        `no memory: ${desc.iface.name}@${m.objectId}.${desc.name} would bring this client's shm pools to ${this.shmBytes + bytes} bytes (limit ${limit})`,
      );
    }
    this.shmBytes += bytes;
  }

  /** The compositor unmaps a pool once the pool and all its buffers are gone (wayland-shm.c shm_pool_unref). */
  private unrefPool(pool: ShmPoolCharge): void {
    if (--pool.refs === 0) this.shmBytes -= pool.size;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Errors and teardown

  private audit(object: string, message: string, rule: string, action: WlAuditAction, detail: string): void {
    this.refusals++;
    this.ctx.audit({ vm: this.ctx.policy.name, client: this.tag, object, message, rule, action, detail });
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "EPIPE" || code === "ECONNRESET") {
      this.close(`connection reset (${code})`);
      return;
    }
    if (err instanceof WireProtocolError) {
      const d = err.displayError;
      if (err instanceof Refusal) {
        this.audit(err.request.object, err.request.name, err.rule, "disconnected", err.message);
      } else {
        // Malformed or out-of-order input: the engine's error names the object; libwayland's error goes back.
        const id = err.context.objectId ?? d.objectId;
        const iface = this.conn.objects.iface(id)?.name ?? "unknown";
        const name = err.context.message ?? `opcode ${err.context.opcode ?? "?"}`;
        this.audit(`${iface}@${id}`, name, "protocol", "disconnected", err.message);
      }
      try {
        this.w.reset();
        this.w.displayError({ ...d, message: d.message.slice(0, 3000) });
        this.toClient.append(this.w.bytes(), NO_FDS);
        this.toClient.flush();
      } catch {
        // The client is gone or not reading: it will not see the error.
      }
      this.close(`refused: ${err.message}`, "warn");
      return;
    }
    if (err instanceof CrosswayError && err.code === "CW_WLFILTER_IO") {
      // E.g. a client flooding fds no message takes: not a protocol error libwayland has words for, still a refusal.
      this.audit("wl_display@1", "*", "connection", "disconnected", err.message);
    } else if (!(err instanceof CrosswayError)) {
      // Not a refusal anybody planned for: a bug in the filter. The connection still ends (fail closed), and the
      // audit line says so, so tests and fuzzers can tell it from a refusal.
      this.audit(
        "wl_display@1",
        "*",
        "internal",
        "disconnected",
        err instanceof Error ? String(err.stack) : String(err),
      );
    }
    this.close(err instanceof Error ? err.message : String(err), "warn");
  }

  /** The connection's figures for `crossway status` (objects: the client's live objects in the compositor). */
  status(): Omit<ConnectionStatus, "policyGeneration"> {
    return {
      tag: this.tag,
      objects: this.objects,
      shmBytes: this.shmBytes,
      queuedBytes: this.toClient.pending,
      ageMs: Date.now() - this.startedAt,
      refusals: this.refusals,
    };
  }

  /** Why the session is where it is, for a test that finds it stuck: queues, throttle, unread bytes. */
  ioState(): Record<string, number | boolean> {
    return {
      closed: this.closed,
      throttled: this.rateTimer !== null,
      toUpstreamPending: this.toUpstream.pending,
      toClientPending: this.toClient.pending,
      unreadRequestBytes: this.conn.framer(Direction.REQUEST).pending,
      unreadEventBytes: this.conn.framer(Direction.EVENT).pending,
    };
  }

  /** Ends the connection: both sockets, every queued fd. The compositor frees the client's resources. Idempotent. */
  close(why: string, level: "info" | "warn" = "info"): void {
    if (this.closed) return;
    this.closed = true;
    if (this.rateTimer !== null) clearTimeout(this.rateTimer);
    this.rateTimer = null;
    this.log[level]({ reason: why }, "client session ended");
    try {
      // Best effort: what the compositor said last (e.g. its wl_display.error) still reaches the client.
      this.toClient.flush();
    } catch {
      // The client is gone.
    }
    for (const wt of [this.clientWatcher, this.upstreamWatcher]) {
      wt.stop();
      wt.close();
    }
    this.toClient.discard();
    this.toUpstream.discard();
    for (const fd of this.conn.drainFds()) native.close(fd);
    native.close(this.clientFd);
    native.close(this.upstreamFd);
    this.onEnd(this);
  }
}
