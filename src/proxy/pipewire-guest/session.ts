// One guest PipeWire client: its socket, its own cross-domain channel, strict parsing both ways and the fd mapping.
//
//   guest client ──frames (Endpoint)──▶ strict decode ─▶ [no fds] ─▶ channel.send ──▶ host (filter → daemon)
//   guest client ◀──bytes + local fds── map fds by message ◀── strict decode ◀── Framer ◀── channel.onReceive
//
// Host items are queued in the S→C Framer as numeric keys in place of fds, so a message takes exactly its header's
// n_fds items, in order, and a header claiming more than arrived is a framing error, as with real fds.
import type { CloseReason, CrossDomainChannel, ReceivedItem } from "../../crossdomain/channel.ts";
import { CrosswayError, type ErrorCode, isUnplanned } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { native } from "../../native.ts";
import {
  type DecodedPayload,
  decodePayload,
  encodeHeader,
  encodeMessage,
  type Frame,
  Framer,
  HEADER_SIZE,
} from "../../wire/pipewire/framing.ts";
import { PipeWireWireError } from "../../wire/pipewire/pod-error.ts";
import { DAEMON_POD_LIMITS, STRICT_POD_LIMITS } from "../../wire/pipewire/pod-reader.ts";
import { type Pod, pod } from "../../wire/pipewire/pod-types.ts";
import {
  checkSignature,
  EVENTS,
  expectDict,
  expectInt,
  expectString,
  Iface,
  METHODS,
  shortIface,
} from "../../wire/pipewire/protocol.ts";
import { Endpoint } from "../pipewire/endpoint.ts";
import { GUEST_CLAIM_PREFIX } from "../pipewire/policy.ts";
import { AllocRequests, portKey } from "./alloc-requests.ts";
import { ClientBuffers } from "./client-buffers.ts";
import {
  HOST_FD_EVENTS,
  type HostFdEvent,
  MEMBLOCK_FLAG_WRITABLE,
  PORT_BUFFERS_OPCODE,
  PORT_USE_BUFFERS_OPCODE,
} from "./fd-mapping.ts";
import { reopenReadOnly } from "./reopen.ts";

/** C→S messages are small (largest seen 6.9 KB, pipewire.md §1.2); the filter caps them at 64 KiB too. */
const MAX_C2S_SIZE = 64 * 1024;
/** S→C: info events and PortUseBuffers stay far below this (§7.3). */
const MAX_S2C_SIZE = 1024 * 1024;
/** Stop polling the host while this much is queued towards a slow client. */
const CLIENT_BACKLOG_HIGH = 1 << 20;
const PAUSE_CHANNEL = 1;
/** Client input waits while the host blobs for its own buffers are made (the messages after it must follow it). */
const PAUSE_CARRY = 2;
/** How long a refused client's socket stays half-open for it to read its error. */
const LINGER_MS = 2000;
/** shutdown(2) how. */
const SHUT_WR = 1;
/** -EPROTO, as the daemon reports protocol errors (module-protocol-native.c). */
const EPROTO = 71;

/** Properties the guest sets on every client (Client.UpdateProperties); client-supplied values are replaced. */
export const GUEST_PROP_PREFIX = GUEST_CLAIM_PREFIX;

/** Per-session settings. */
export interface GuestPipeWireContext {
  readonly log: Logger;
}

/** One proxied guest PipeWire connection. */
export class GuestPipeWireSession {
  private readonly client: Endpoint;
  private readonly s2c = new Framer(MAX_S2C_SIZE);
  /** Host items waiting for their message, by the key the Framer holds in place of an fd. */
  private readonly items = new Map<number, ReceivedItem>();
  private nextItemKey = 1;
  /** Object id → interface type, from the client's CreateObject/GetRegistry/Bind; freed by Core.RemoveId. */
  private readonly objects = new Map<number, string>([
    [0, Iface.Core],
    [1, Iface.Client],
  ]);
  /** Eventfd items bound per ClientNode id, released when the node goes away (else the host keeps them). */
  private readonly nodeEventfds = new Map<number, number[]>();
  /** Ports the daemon asked to allocate (PortUseBuffers with ALLOC): what a PortBuffers refusal reports. */
  private readonly allocRequests = new AllocRequests();
  /** Buffers the client allocated itself when the daemon asked, carried as host blobs (client-buffers.ts). */
  private readonly buffers: ClientBuffers;
  private s2cSeq = 0;
  /** Counters for the end-of-session log line (and the tests that check what the mapping did). */
  private readonly stats = { c2s: 0, s2c: 0, memory: 0, readOnly: 0, fromHost: 0, toHost: 0, carried: 0 };
  private closed = false;
  private channelPaused = false;
  private strayCheckQueued = false;

  private constructor(
    clientFd: number,
    private readonly channel: CrossDomainChannel,
    private readonly ctx: GuestPipeWireContext,
    readonly tag: string,
    private readonly onEnd: (s: GuestPipeWireSession) => void,
  ) {
    this.client = new Endpoint(clientFd, MAX_C2S_SIZE);
    this.buffers = new ClientBuffers(channel);
  }

  /** Starts relaying between `clientFd` and `channel`; both are owned by the session from now on. */
  static start(
    clientFd: number,
    channel: CrossDomainChannel,
    ctx: GuestPipeWireContext,
    tag: string,
    onEnd: (s: GuestPipeWireSession) => void,
  ): GuestPipeWireSession {
    const s = new GuestPipeWireSession(clientFd, channel, ctx, tag, onEnd);
    channel.onReceive = (data, items) => s.fromHost(data, items);
    channel.onClose = (reason) => s.hostClosed(reason);
    channel.onDrain = () => s.client.resume(PAUSE_CHANNEL);
    s.client.start({
      onFrame: (f) => s.fromClient(f),
      onClose: (err) =>
        s.end(err === null ? "client disconnected" : `client socket: ${(err as Error).message}`, err),
      onDrain: () => s.clientDrained(),
    });
    return s;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Client → host

  private fromClient(f: Frame): void {
    if (this.closed) {
      // Lingering after a refusal: input is read only to be discarded.
      for (const fd of f.fds) native.close(fd);
      return;
    }
    if (!this.strayCheckQueued) {
      this.strayCheckQueued = true;
      queueMicrotask(() => this.checkStrayFds(f));
    }
    const iface = this.objects.get(f.id);
    // Only a PortBuffers may carry fds (buffers the client allocated when the daemon asked); every other client fd is
    // closed now, whatever the payload turns out to be.
    const portBuffers = iface === Iface.ClientNode && f.opcode === PORT_BUFFERS_OPCODE && f.fds.length > 0;
    let fds = f.fds.splice(0, f.fds.length);
    if (!portBuffers) {
      for (const fd of fds) native.close(fd);
      fds = [];
    }
    try {
      const msg = decodePayload(f.payload, f.nFds, STRICT_POD_LIMITS);
      const spec = iface === undefined ? undefined : METHODS[iface]?.[f.opcode];
      const what = `${iface === undefined ? "object" : shortIface(iface)}@${f.id}.${spec?.name ?? `opcode ${f.opcode}`}`;
      if (f.nFds > 0) {
        if (portBuffers) {
          const requested = this.allocRequests.requested(f.id, msg.body.fields);
          if (requested === undefined) throw this.allocRequests.refusal(what, f.id, msg.body.fields, f.nFds);
          const owned = fds;
          fds = [];
          this.carryBuffers(f, msg, what, owned, requested);
          return;
        }
        throw new CrosswayError(
          "CW_PWG_CLIENT_FD",
          `${what} carries ${f.nFds} fds; no client→server message may carry fds through the guest proxy`,
          { iface: iface ?? "unknown", objectId: f.id, opcode: f.opcode, value: f.nFds },
        );
      }
      if (spec !== undefined && spec.sig !== "*") checkSignature(msg.body.fields, spec.sig, what, true);
      this.track(iface, f.opcode, msg);
      let out: Uint8Array;
      if (iface === Iface.Client && f.opcode === 2) out = this.withGuestProps(f, msg, what);
      else out = copyFrame(f);
      this.stats.c2s++;
      if (this.channel.send(out) === "buffered") this.client.pause(PAUSE_CHANNEL);
    } catch (err) {
      for (const fd of fds) native.close(fd);
      this.refuseClient(f, err);
    }
  }

  /**
   * A PortBuffers answering the daemon's ALLOC request: one host blob per client memfd, then the message goes on
   * unchanged with the blobs as its items (same fd indices). The client's later messages wait until then.
   */
  private carryBuffers(f: Frame, msg: DecodedPayload, what: string, fds: number[], requested: number): void {
    const out = copyFrame(f);
    const head = { id: f.id, opcode: f.opcode, seq: f.seq } as Frame;
    this.client.pause(PAUSE_CARRY);
    this.buffers.carry(what, f.id, msg.body.fields, fds, requested).then(
      (items) => {
        if (this.closed) return;
        try {
          if (this.channel.send(out, items) === "buffered") this.client.pause(PAUSE_CHANNEL);
        } catch (err) {
          // A promise continuation: a throw here would be an unhandled rejection, so it ends this client only.
          this.refuseClient(head, err);
          return;
        }
        this.stats.c2s++;
        this.stats.carried += items.length;
        this.client.resume(PAUSE_CARRY);
      },
      (err: unknown) => {
        if (!this.closed) this.refuseClient(head, err);
      },
    );
  }

  /** Before a signal of node `nodeId` leaves for the host: its client-allocated output buffers are copied over. */
  private beforeSignalToHost(nodeId: number): boolean {
    return this.carryFailed(this.buffers.toHost(nodeId));
  }

  /** A host signal for node `nodeId`, before its client wakes: its client-allocated input buffers are copied in. */
  private beforeClientWakes(nodeId: number): boolean {
    return this.carryFailed(this.buffers.fromHost(nodeId));
  }

  /** True: the signal may go on. False: a copy failed, the signal is dropped and the client is ended. */
  private carryFailed(failure: { nodeId: number; message: string } | null): boolean {
    if (this.closed) return false;
    if (failure === null) return true;
    const e = new CrosswayError("CW_PWG_CLIENT_FD", `ClientNode@${failure.nodeId}: ${failure.message}`, {
      iface: "ClientNode",
      objectId: failure.nodeId,
    });
    // Called from the channel's eventfd path: end the client once that call has returned.
    queueMicrotask(() => this.refuseClient({ id: failure.nodeId, opcode: 0, seq: 0 } as Frame, e));
    return false;
  }

  /**
   * After a burst of whole messages: fds still queued with no partial message to own them were claimed by no
   * header (they ride on the first byte of their message, so they cannot belong to a later one). The daemon would
   * keep them open for ever (pipewire.md §1.3); the guest refuses the client instead.
   */
  private checkStrayFds(last: Frame): void {
    this.strayCheckQueued = false;
    if (this.closed) return;
    const u = this.client.unframed;
    if (u.fds > 0 && u.bytes === 0) {
      this.refuseClient(
        last,
        new CrosswayError(
          "CW_PWG_CLIENT_FD",
          `${u.fds} fds arrived that no message header claims (n_fds too small)`,
          {
            value: u.fds,
          },
        ),
      );
    }
  }

  /** Records the interface of ids the client creates, so server events on them are understood. */
  private track(iface: string | undefined, opcode: number, msg: DecodedPayload): void {
    const a = msg.body.fields;
    if (iface === Iface.Core && opcode === 5) {
      this.objects.set(expectInt(a[1], "GetRegistry new_id"), Iface.Registry);
    } else if (iface === Iface.Core && opcode === 6) {
      const type = expectString(a[1], "CreateObject type") ?? "";
      this.objects.set(expectInt(a[4], "CreateObject new_id"), type);
    } else if (iface === Iface.Registry && opcode === 1) {
      const type = expectString(a[1], "Bind type") ?? "";
      this.objects.set(expectInt(a[3], "Bind new_id"), type);
    }
  }

  /**
   * Client.UpdateProperties with the guest's own `crossway.guest.*` keys (any the client sent are dropped): the
   * host filter can only read them as "this VM says", because everything on that channel comes from this VM.
   */
  private withGuestProps(f: Frame, msg: DecodedPayload, what: string): Uint8Array {
    const items = expectDict(msg.body.fields[0], `${what} props`);
    // Built field by field: a None value (remove the key, in PipeWire) must stay None, not become "".
    const fields: Pod[] = [];
    let app = "";
    for (const [k, v] of items) {
      if (k.startsWith(GUEST_PROP_PREFIX)) continue;
      if (k === "application.name" && v !== null && app === "") app = v;
      if (k === "application.id" && v !== null) app = v;
      fields.push(pod.string(k), v === null ? pod.none() : pod.string(v));
    }
    fields.push(pod.string(`${GUEST_PROP_PREFIX}client`), pod.string(this.tag));
    fields.push(pod.string(`${GUEST_PROP_PREFIX}app`), pod.string(app));
    const dict = pod.struct(pod.int(fields.length / 2), ...fields);
    return encodeMessage(f.id, f.opcode, f.seq, 0, pod.struct(dict), msg.footer);
  }

  /** A bug, not a refusal (see isUnplanned): said at error level with its stack before the session ends. */
  private logUnplanned(err: unknown): void {
    if (!isUnplanned(err)) return;
    this.ctx.log.error(
      { client: this.tag, err: (err as Error)?.message ?? String(err), stack: (err as Error)?.stack },
      "internal error, ending the PipeWire client",
    );
  }

  /** A client message the guest refuses: Core.Error to that client (as the daemon would), then its connection ends. */
  private refuseClient(f: Frame, err: unknown): void {
    this.logUnplanned(err);
    const e = asCrosswayError(err, "CW_PWG_CLIENT_FD");
    this.ctx.log.warn(
      {
        client: this.tag,
        code: e.code,
        wireReason: e instanceof PipeWireWireError ? e.reason : undefined,
        objectId: f.id,
        opcode: f.opcode,
        err: e.message,
      },
      "guest PipeWire client refused",
    );
    const errorEvent = encodeMessage(
      0,
      3,
      this.s2cSeq++,
      0,
      pod.struct(pod.int(f.id), pod.int(f.seq), pod.int(-EPROTO), pod.string(`crossway guest: ${e.message}`)),
    );
    this.client.send(errorEvent, null);
    this.end(`refused: ${e.message}`, e, true);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Host → client

  private fromHost(data: Uint8Array, items: readonly ReceivedItem[]): "continue" | "pause" {
    if (this.closed) {
      closeReceived(items);
      return "continue";
    }
    const keys: number[] = [];
    for (const it of items) {
      const k = this.nextItemKey++;
      this.items.set(k, it);
      keys.push(k);
    }
    try {
      this.s2c.push(data, keys);
      for (;;) {
        const f = this.s2c.next();
        if (f === null) break;
        this.hostFrame(f);
        if (this.closed) return "continue";
      }
    } catch (err) {
      this.logUnplanned(err);
      this.end(`host message: ${(err as Error).message}`, asCrosswayError(err, "CW_PWG_HOST_FD"));
      return "continue";
    }
    if (this.client.backlog > CLIENT_BACKLOG_HIGH) {
      this.channelPaused = true;
      return "pause";
    }
    return "continue";
  }

  private hostFrame(f: Frame): void {
    const received = f.fds.map((k) => this.takeItem(k));
    const localFds: number[] = [];
    try {
      const msg = decodePayload(f.payload, f.nFds, DAEMON_POD_LIMITS);
      const iface = this.objects.get(f.id);
      const spec = iface === undefined ? undefined : EVENTS[iface]?.[f.opcode];
      const what = `${iface === undefined ? "object" : shortIface(iface)}@${f.id}.${spec?.name ?? `event ${f.opcode}`}`;
      if (spec !== undefined && spec.sig !== "*") checkSignature(msg.body.fields, spec.sig, what, false);
      if (iface === Iface.Core && f.opcode === 4) this.removeId(expectInt(msg.body.fields[0], `${what} id`));
      if (iface === Iface.ClientNode && f.opcode === PORT_USE_BUFFERS_OPCODE) {
        this.allocRequests.onPortUseBuffers(f.id, msg.body.fields);
        // New buffers (or none) for the port: the ones the client allocated for it before are gone.
        this.buffers.dropPort(portKey(f.id, msg.body.fields, what));
      }
      if (f.nFds > 0) {
        const ev = iface === undefined ? undefined : HOST_FD_EVENTS.get(iface)?.get(f.opcode);
        if (ev === undefined) {
          throw new CrosswayError(
            "CW_PWG_HOST_FD",
            `${what} carries ${f.nFds} fds; only AddMem, Transport and SetActivation may`,
            {
              iface: iface ?? "unknown",
              objectId: f.id,
              opcode: f.opcode,
              value: f.nFds,
            },
          );
        }
        this.mapHostFds(f, msg, ev, what, received, localFds);
      }
      this.stats.s2c++;
      this.client.send(copyFrame(f), localFds.length > 0 ? localFds : null);
      this.s2cSeq = f.seq + 1;
    } catch (err) {
      for (const fd of localFds) native.close(fd);
      throw err;
    } finally {
      // Items the message did not use (or left behind by an error) are closed and released on the host.
      for (const it of received) if (it !== null) releaseItem(this.channel, it);
    }
  }

  /**
   * Turns the message's items into local fds at the indices its Fd fields name. The payload is forwarded as is: the
   * client gets exactly n_fds fds in the same order, so every Fd index keeps its meaning.
   */
  private mapHostFds(
    f: Frame,
    msg: DecodedPayload,
    ev: HostFdEvent,
    what: string,
    received: (ReceivedItem | null)[],
    localFds: number[],
  ): void {
    if (f.nFds < ev.minFds || f.nFds > ev.maxFds) {
      throw new CrosswayError(
        "CW_PWG_HOST_FD",
        `${what} carries ${f.nFds} fds, expected ${ev.minFds}..${ev.maxFds}`,
        {
          value: f.nFds,
        },
      );
    }
    const byIndex: Array<number | undefined> = new Array(f.nFds).fill(undefined);
    for (const [arg, role] of ev.fields) {
      const field = msg.body.fields[arg];
      if (field?.t !== "fd") throw new CrosswayError("CW_PWG_HOST_FD", `${what} arg ${arg} is not an Fd`);
      if (field.v === -1n) continue;
      const index = Number(field.v);
      const item = received[index];
      if (item === null || item === undefined)
        throw new CrosswayError("CW_PWG_HOST_FD", `${what}: fd ${index} missing`);
      received[index] = null;
      byIndex[index] = this.mapOne(f, msg, role, item, what);
    }
    for (let i = 0; i < f.nFds; i++) {
      const fd = byIndex[i];
      if (fd === undefined)
        throw new CrosswayError("CW_PWG_HOST_FD", `${what}: fd ${i} is not one of its Fd fields`);
      localFds.push(fd);
    }
  }

  private mapOne(f: Frame, msg: DecodedPayload, role: string, item: ReceivedItem, what: string): number {
    if (role === "memory") {
      if (item.kind !== "blob") {
        releaseItem(this.channel, item);
        throw new CrosswayError(
          "CW_PWG_HOST_FD",
          `${what}: the memory fd arrived as a ${item.kind} item, not a blob`,
        );
      }
      const flags = expectInt(msg.body.fields[3], `${what} flags`);
      const writable = (flags & MEMBLOCK_FLAG_WRITABLE) !== 0;
      if (writable && item.access === "read-only") {
        native.close(item.fd);
        throw new CrosswayError(
          "CW_PWG_HOST_FD",
          `${what}: the daemon shares block ${expectInt(msg.body.fields[0], "id")} writable (flags 0x${flags.toString(16)}) but the host mapped it read-only`,
          { value: flags },
        );
      }
      if (!writable && item.access === "read-write") {
        // The daemon shares it read-only: so must the client's fd, whatever the host's fd allowed.
        const ro = reopenReadOnly(item.fd);
        native.close(item.fd);
        this.stats.memory++;
        this.stats.readOnly++;
        return ro;
      }
      this.stats.memory++;
      if (item.access === "read-only") this.stats.readOnly++;
      return item.fd;
    }
    if (item.kind !== "eventfd") {
      releaseItem(this.channel, item);
      throw new CrosswayError("CW_PWG_HOST_FD", `${what}: an eventfd arrived as a ${item.kind} item`);
    }
    const fromHost = role === "signal-from-host";
    const node = f.id;
    const fd = fromHost
      ? this.channel.eventfdFromHost(item.id, () => this.beforeClientWakes(node))
      : this.channel.eventfdToHost(item.id, () => this.beforeSignalToHost(node));
    if (fromHost) this.stats.fromHost++;
    else this.stats.toHost++;
    const list = this.nodeEventfds.get(f.id) ?? [];
    list.push(item.id);
    this.nodeEventfds.set(f.id, list);
    return fd;
  }

  private takeItem(key: number): ReceivedItem | null {
    const it = this.items.get(key) ?? null;
    this.items.delete(key);
    return it;
  }

  /** Core.RemoveId: the id is free again; a ClientNode's bound eventfd items are released on the host too. */
  private removeId(id: number): void {
    this.objects.delete(id);
    this.allocRequests.forgetNode(id);
    this.buffers.forgetNode(id);
    const evs = this.nodeEventfds.get(id);
    if (evs === undefined) return;
    this.nodeEventfds.delete(id);
    for (const item of evs) this.channel.releaseItem(item);
  }

  private clientDrained(): void {
    if (this.channelPaused && !this.closed) {
      this.channelPaused = false;
      this.channel.resume();
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Teardown

  private hostClosed(reason: CloseReason): void {
    if (reason.kind === "local") return;
    this.end(
      reason.kind === "host-hangup" ? "host closed the connection" : reason.error.message,
      reason.kind === "error" ? reason.error : null,
    );
  }

  /**
   * Ends this client only: its channel at once, its socket at once or, after a refusal (`linger`), once the client
   * has seen the error: the write side is shut down and unread input is discarded until the client closes (or
   * {@link LINGER_MS}). Closing with unread input would make the kernel reset the connection (ECONNRESET, POLLERR
   * at the client), and a client may then drop the Core.Error still queued for it.
   */
  private end(why: string, err: unknown, linger = false): void {
    if (this.closed) return;
    this.closed = true;
    const level = err === null || err === undefined ? "info" : "warn";
    this.ctx.log[level](
      {
        client: this.tag,
        reason: why,
        code: err instanceof CrosswayError ? err.code : undefined,
        wireReason: err instanceof PipeWireWireError ? err.reason : undefined,
        ...this.stats,
        ...this.buffers.stats,
      },
      "guest PipeWire client ended",
    );
    this.buffers.close();
    this.s2c.drainFds();
    closeReceived([...this.items.values()]);
    this.items.clear();
    this.channel.close();
    if (linger && !this.client.isClosed) {
      try {
        native.shutdown(this.client.fd, SHUT_WR);
      } catch {
        // Already gone: close below.
      }
      // Every pause reason goes: the client's EOF must be read (a refused PortBuffers left PAUSE_CARRY set).
      this.client.resume(PAUSE_CHANNEL | PAUSE_CARRY);
      // The endpoint closes itself at the client's EOF; this bounds a client that keeps writing.
      setTimeout(() => this.client.close(), LINGER_MS).unref();
    } else {
      this.client.close();
    }
    this.onEnd(this);
  }

  /** Ends the session from outside (shutdown). */
  close(why: string): void {
    this.end(why, null);
  }
}

/** The frame's header and payload as a standalone copy (the framer's buffer is reused). */
function copyFrame(f: Frame): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + f.size);
  out.set(encodeHeader(f.id, f.opcode, f.size, f.seq, f.nFds), 0);
  out.set(f.payload, HEADER_SIZE);
  return out;
}

function closeReceived(items: ReadonlyArray<ReceivedItem | null>): void {
  for (const it of items) {
    if (it === null) continue;
    if (it.kind === "blob" || it.kind === "write-pipe") native.close(it.fd);
  }
}

function releaseItem(channel: CrossDomainChannel, item: ReceivedItem): void {
  if (item.kind === "eventfd" || item.kind === "write-pipe" || item.kind === "socket")
    channel.releaseItem(item.id);
  if (item.kind === "blob" || item.kind === "write-pipe") native.close(item.fd);
}

function asCrosswayError(err: unknown, code: ErrorCode): CrosswayError {
  return err instanceof CrosswayError ? err : new CrosswayError(code, (err as Error).message ?? String(err));
}
