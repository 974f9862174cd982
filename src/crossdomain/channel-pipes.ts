// The pipes and eventfds of a cross-domain channel: read-pipe sinks (host data into a guest client's pipe, kept for
// slow clients), write pipes (a client's data to a host pipe as WRITEs) and eventfds both ways. Split out of
// channel.ts (issue 12); the channel owns one and hands it READs, the drain signal and its teardown.
import { CrosswayError } from "../errors.ts";
import { AGAIN, type NativeWatcher, native, POLL_READABLE, POLL_WRITABLE } from "../native.ts";
import { encodeIdCommand, encodeReadWrite } from "./codec.ts";
import { CrossDomainCmd, PIPE_READ_START, READ_WRITE_HEADER_SIZE } from "./protocol.ts";

/** What the pipes need of their channel. */
export interface PipeHost {
  readonly closed: boolean;
  /** EXECBUFFER on the channel's context; false when the device socket is congested; throws on failure. */
  execbuffer(cmd: Uint8Array): boolean;
  /** Ends the channel with an error. */
  fail(error: CrosswayError): void;
  /** Submits the POLL if the channel may (re-checks the sink backlog). */
  poll(): void;
  /** The channel's owner may send again. */
  onDrain(): void;
  assertOpen(what: string): void;
  /** {@link ChannelPipes.backlogged} changed (the native fast path reads it, fast-state.ts). */
  backlogChanged(backlogged: boolean): void;
}

/**
 * Unread paste data the channel keeps for slow clients before it holds the POLL (which stalls the whole channel, the
 * only back-pressure the protocol has towards a host pipe). Large enough for any clipboard a client drains after a
 * roundtrip; past it, a client that never reads its paste stalls only its own connection.
 */
const SINK_BACKLOG_LIMIT = 64 << 20;

/** Bytes per WRITE chunk: small keeps a host's blocking write short (P26); one page minus the header. */
const WRITE_CHUNK = 4096 - READ_WRITE_HEADER_SIZE;

interface ReadPipe {
  fd: number;
  /** Data the client has not taken yet (sink full): copies, in order. */
  pending: Uint8Array[];
  hangUpPending: boolean;
  watcher: NativeWatcher | null;
}

/** A WRITE without data, and an eventfd WRITE that adds 0 to the host's counter (releases, see releaseItem). */
const NO_DATA = new Uint8Array(0);
const ZERO_INCREMENT = new Uint8Array(8);

interface WritePipe {
  readonly id: number;
  readonly fd: number;
  readonly watcher: NativeWatcher;
}

interface LocalEventfd {
  readonly fd: number;
  readonly toHost: boolean;
  readonly watcher: NativeWatcher | null;
  /**
   * Runs before each signal is passed on (before the WRITE, or before the local eventfd is written): the owner's
   * chance to bring shared memory up to date first (PipeWire buffers a guest client allocated itself). False drops
   * the signal (the owner is ending the connection).
   */
  readonly hook: (() => boolean) | undefined;
}

/** Read pipes, write pipes and eventfds of one channel (the channel's owner sees none of this). */
export class ChannelPipes {
  private readonly smallCmd = new Uint8Array(16);
  private readonly writeBuf = new Uint8Array(READ_WRITE_HEADER_SIZE + WRITE_CHUNK);
  private readonly chunk = new Uint8Array(WRITE_CHUNK);
  /** An eventfd value read from a client, on its way into a WRITE. */
  private readonly counter = new Uint8Array(8);
  private nextReadPipe = PIPE_READ_START;
  private readonly readPipes = new Map<number, ReadPipe>();
  private readonly writePipes = new Map<number, WritePipe>();
  private readonly eventfds = new Map<number, LocalEventfd>();
  /** Eventfd items received and not released yet (bound or not): their release WRITE carries 8 bytes. */
  private readonly eventfdItems = new Set<number>();
  /** Bytes waiting in read-pipe sinks that their clients have not taken yet, over all pipes. */
  private sinkBacklogBytes = 0;
  private get sinkBacklog(): number {
    return this.sinkBacklogBytes;
  }
  private set sinkBacklog(n: number) {
    const was = this.sinkBacklogBytes > SINK_BACKLOG_LIMIT;
    this.sinkBacklogBytes = n;
    if (n > SINK_BACKLOG_LIMIT !== was) this.host.backlogChanged(!was);
  }
  private congested = false;

  constructor(private readonly host: PipeHost) {}

  /** True while unread paste data is over SINK_BACKLOG_LIMIT: the channel holds its POLL. */
  get backlogged(): boolean {
    return this.sinkBacklog > SINK_BACKLOG_LIMIT;
  }

  /** A SEND was buffered by the device socket: write pipes wait for drained(). */
  setCongested(): void {
    this.congested = true;
  }

  /**
   * Takes a client's pipe write end as the next read pipe and returns its id. [RG] context.rs send:
   * id = max(++counter, 0x80000000); mirrored exactly (P12).
   */
  addReadPipe(fd: number): number {
    this.nextReadPipe = Math.max((this.nextReadPipe + 1) >>> 0, PIPE_READ_START);
    const id = this.nextReadPipe;
    native.setNonblockCloexec(fd);
    this.readPipes.set(id, { fd, pending: [], hangUpPending: false, watcher: null });
    return id;
  }

  /**
   * Binds a received eventfd item so host signals reach the guest: READ_EVENTFD_NEW, then each host READ adds its
   * 8-byte value to a local eventfd (after `beforeWake`, unless it returns false). Returns an fd of that local eventfd for the client (the
   * caller owns it).
   */
  eventfdFromHost(id: number, beforeWake?: () => boolean): number {
    this.host.assertOpen("eventfdFromHost");
    const fd = native.eventfd(0, 0);
    this.eventfds.set(id, { fd, toHost: false, watcher: null, hook: beforeWake });
    encodeIdCommand(this.smallCmd, 0, CrossDomainCmd.READ_EVENTFD_NEW, id);
    this.host.execbuffer(this.smallCmd);
    return native.dup(fd);
  }

  /**
   * Binds a received eventfd item so guest signals reach the host: a local eventfd is watched and each value read is
   * sent as WRITE {id, 8 bytes little-endian} (after `beforeSend`, unless it returns false). Returns an fd of the local eventfd for the client.
   */
  eventfdToHost(id: number, beforeSend?: () => boolean): number {
    this.host.assertOpen("eventfdToHost");
    const fd = native.eventfd(0, 0);
    const watcher = native.createWatcher(fd, () => {
      // One buffer for every signal: write() copies the value into its command before returning.
      const v = this.counter;
      if (this.host.closed || native.read(fd, v, 0, 8) !== 8) return;
      if (beforeSend !== undefined && !beforeSend()) return;
      this.write(id, false, v);
    });
    watcher.start(POLL_READABLE);
    this.eventfds.set(id, { fd, toHost: true, watcher, hook: beforeSend });
    return native.dup(fd);
  }

  /** Notes a received eventfd item (its release differs from a pipe's). */
  receiveEventfd(id: number): void {
    this.eventfdItems.add(id);
  }

  /**
   * Frees a host write-pipe, eventfd or socket item with WRITE {hang_up = 1}, so it does not live until the context
   * dies (P19). An eventfd's WRITE carries a zero increment (8 bytes): rutabaga takes exactly 8 bytes for an eventfd
   * (anything else is InvalidCrossDomainWriteLength, an error response, the item dropped anyway), libkrun since
   * 5835d529 writes what comes and then drops it; a zero increment wakes nobody, so both free it cleanly. Write
   * pipes take no data on every host. Sockets have no clean release anywhere: the WRITE drops them on rutabaga
   * with an error response (InvalidCrossDomainItemType).
   */
  releaseItem(id: number): void {
    if (this.host.closed) return;
    const e = this.eventfds.get(id);
    if (e !== undefined) this.dropEventfd(id, e);
    const eventfd = this.eventfdItems.delete(id);
    // A write pipe released before its EOF is not watched any more: its EOF must not send a second hang-up
    // (InvalidCrossDomainItemId on every host, the item being gone).
    const p = this.writePipes.get(id);
    if (p !== undefined) {
      p.watcher.stop();
      p.watcher.close();
      native.close(p.fd);
      this.writePipes.delete(id);
    }
    this.write(id, true, eventfd ? ZERO_INCREMENT : NO_DATA);
  }

  receiveWritePipe(id: number): { kind: "write-pipe"; id: number; fd: number } {
    const [r, w] = native.pipe2();
    const watcher = native.createWatcher(r, () => this.pumpWritePipe(id));
    this.writePipes.set(id, { id, fd: r, watcher });
    if (!this.congested) watcher.start(POLL_READABLE);
    return { kind: "write-pipe", id, fd: w };
  }

  private pumpWritePipe(id: number): void {
    const p = this.writePipes.get(id);
    if (p === undefined || this.host.closed) return;
    for (let round = 0; round < 16 && !this.congested && !this.host.closed; round++) {
      let n: number;
      try {
        n = native.read(p.fd, this.chunk, 0, WRITE_CHUNK);
      } catch {
        n = 0;
      }
      if (n === AGAIN) return;
      if (n === 0) {
        // Hang up only at EOF, never on a short read (Sommelier's P11 bug).
        this.write(id, true, new Uint8Array(0));
        // A failed WRITE ended the channel, which closed every pipe already.
        if (this.host.closed) return;
        p.watcher.stop();
        p.watcher.close();
        native.close(p.fd);
        this.writePipes.delete(id);
        return;
      }
      this.write(id, false, this.chunk.subarray(0, n));
    }
  }

  /** Submits a WRITE; like poll(), a failed EXECBUFFER ends this channel only (watcher callbacks call this). */
  private write(id: number, hangUp: boolean, data: Uint8Array): void {
    const size = encodeReadWrite(this.writeBuf, 0, CrossDomainCmd.WRITE, id, hangUp, data);
    let ok: boolean;
    try {
      ok = this.host.execbuffer(this.writeBuf.subarray(0, size));
    } catch (err) {
      this.host.fail(asChannelError(err, "WRITE"));
      return;
    }
    if (!ok) this.congest();
  }

  private congest(): void {
    if (this.congested) return;
    this.congested = true;
    for (const p of this.writePipes.values()) p.watcher.stop();
  }

  /** The device socket drained: write pipes resume, and the channel's owner may send again. */
  drained(): void {
    if (!this.congested || this.host.closed) return;
    this.congested = false;
    for (const p of this.writePipes.values()) p.watcher.start(POLL_READABLE);
    this.host.onDrain();
  }

  /** A READ from the host: data for a read-pipe sink, or a value for a host→guest eventfd. */
  onRead(id: number, hangUp: boolean, data: Uint8Array): void {
    const e = this.eventfds.get(id);
    if (e !== undefined) {
      if (data.length === 8 && !e.toHost) {
        if (e.hook === undefined || e.hook()) native.write(e.fd, data, 0, 8);
      }
      return;
    }
    const p = this.readPipes.get(id);
    if (p === undefined) {
      // The client closed its pipe earlier; the host keeps reading until its peer is done.
      return;
    }
    if (p.pending.length === 0 && data.length > 0) {
      const n = this.writeSink(id, p, data, 0);
      if (n < data.length && this.readPipes.has(id)) this.queueSink(p, data.slice(n));
    } else if (data.length > 0) {
      this.queueSink(p, data.slice());
    }
    if (hangUp) p.hangUpPending = true;
    if (p.pending.length > 0 && p.watcher === null && this.readPipes.has(id)) {
      // The client is slow: keep its data and keep polling, so the Wayland stream goes on (a client may roundtrip
      // before it drains a paste); only a backlog over SINK_BACKLOG_LIMIT holds the POLL (issue 12, defect 8).
      p.watcher = native.createWatcher(p.fd, () => this.drainSink(id));
      p.watcher.start(POLL_WRITABLE);
    }
    if (p.pending.length === 0 && p.hangUpPending) this.closeSink(id, p);
  }

  /** Writes what the sink takes; returns the bytes written (closes the sink on EPIPE). */
  private writeSink(id: number, p: ReadPipe, data: Uint8Array, from: number): number {
    let off = from;
    while (off < data.length) {
      let n: number;
      try {
        n = native.write(p.fd, data, off, data.length - off);
      } catch {
        // EPIPE: the client stopped reading; drop the rest.
        this.closeSink(id, p);
        return data.length;
      }
      if (n === AGAIN) break;
      off += n;
    }
    return off;
  }

  private queueSink(p: ReadPipe, bytes: Uint8Array): void {
    p.pending.push(bytes);
    this.sinkBacklog += bytes.length;
  }

  private drainSink(id: number, p: ReadPipe = this.readPipes.get(id)!): void {
    while (p.pending.length > 0) {
      const head = p.pending[0]!;
      const n = this.writeSink(id, p, head, 0);
      if (!this.readPipes.has(id)) return;
      this.sinkBacklog -= n;
      if (n < head.length) {
        p.pending[0] = head.subarray(n);
        return;
      }
      p.pending.splice(0, 1);
    }
    if (p.watcher !== null) {
      p.watcher.stop();
      p.watcher.close();
      p.watcher = null;
    }
    if (p.hangUpPending) this.closeSink(id, p);
    this.host.poll();
  }

  private closeSink(id: number, p: ReadPipe): void {
    if (!this.readPipes.has(id)) return;
    this.readPipes.delete(id);
    for (const b of p.pending) this.sinkBacklog -= b.length;
    p.pending.length = 0;
    if (p.watcher !== null) {
      p.watcher.stop();
      p.watcher.close();
      p.watcher = null;
    }
    native.close(p.fd);
    this.host.poll();
  }

  private dropEventfd(id: number, e: LocalEventfd): void {
    this.eventfds.delete(id);
    if (e.watcher !== null) {
      e.watcher.stop();
      e.watcher.close();
    }
    native.close(e.fd);
  }

  /** Closes every pipe and eventfd (the channel ended). */
  closeAll(): void {
    for (const [id, p] of this.readPipes) {
      if (p.watcher !== null) {
        p.watcher.stop();
        p.watcher.close();
      }
      native.close(p.fd);
      this.readPipes.delete(id);
    }
    this.sinkBacklog = 0;
    for (const p of this.writePipes.values()) {
      p.watcher.stop();
      p.watcher.close();
      native.close(p.fd);
    }
    this.writePipes.clear();
    for (const [id, e] of this.eventfds) this.dropEventfd(id, e);
    this.eventfdItems.clear();
  }
}

/** A CrosswayError for anything thrown inside the channel's own callbacks (kept as is when it already is one). */
export function asChannelError(err: unknown, what: string): CrosswayError {
  if (err instanceof CrosswayError) return err;
  return new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `${what}: ${(err as Error).message}`, undefined, {
    cause: err,
  });
}
