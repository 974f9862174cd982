// A Unix-socket relay: accepts clients on a path, connects each to an upstream socket, passes bytes and fds through.
import { existsSync, unlinkSync } from "node:fs";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../native.ts";

/** Direction of a chunk: client → upstream (requests) or upstream → client (events). */
export type RelayDirection = "c2s" | "s2c";

/** What a relay reports to its observer; bytes and fds are valid only during the call. */
export interface RelayObserver {
  /** A new client was accepted (`id` counts from 1). */
  onConnect?(id: number): void;
  /** One recvmsg worth of bytes, with the fds that came with it (not yet forwarded). */
  onChunk?(id: number, dir: RelayDirection, bytes: Uint8Array, fds: readonly number[]): void;
  /** The connection ended (`why` is "eof" from either side or an error message). */
  onClose?(id: number, why: string): void;
}

interface Pending {
  bytes: Uint8Array;
  fds: number[];
}

/** One fd's outgoing queue and watcher. */
class End {
  readonly fd: number;
  watcher: NativeWatcher | null = null;
  /** Chunks waiting for this end to become writable; [head, length) are pending (no Array#shift). */
  readonly queue: Pending[] = [];
  head = 0;
  closed = false;
  /** The events the watcher was last started with (-1: never), so an unchanged mask costs no call into the addon. */
  armed = -1;
  constructor(fd: number) {
    this.fd = fd;
  }
}

const RECV_SIZE = 65536;

/** The fds of a chunk or queue entry that carries none (any more); never written to (fds get an array of their own). */
const NO_FDS: number[] = [];

function pendingCount(e: End): number {
  return e.queue.length - e.head;
}

/** One client ⇄ upstream pair. */
class Pair {
  readonly client: End;
  readonly upstream: End;
  readonly #buf = new Uint8Array(RECV_SIZE);
  readonly #fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
  #done = false;

  constructor(
    readonly id: number,
    clientFd: number,
    upstreamFd: number,
    readonly observer: RelayObserver,
    readonly onDone: (p: Pair) => void,
  ) {
    this.client = new End(clientFd);
    this.upstream = new End(upstreamFd);
    this.client.watcher = native.createWatcher(clientFd, (status, events) =>
      this.#event(this.client, status, events),
    );
    this.upstream.watcher = native.createWatcher(upstreamFd, (status, events) =>
      this.#event(this.upstream, status, events),
    );
    this.#rearm();
  }

  #other(e: End): End {
    return e === this.client ? this.upstream : this.client;
  }

  /** Read from an end only while the other end's queue is empty (back-pressure); write-watch ends with a queue. */
  #rearm(): void {
    if (this.#done) return;
    this.#arm(this.client, this.upstream);
    this.#arm(this.upstream, this.client);
  }

  /** Runs on every wake-up: only a mask that changed goes to the addon. */
  #arm(e: End, other: End): void {
    let ev = 0;
    if (pendingCount(other) === 0) ev |= POLL_READABLE;
    if (pendingCount(e) > 0) ev |= POLL_WRITABLE;
    if (ev === e.armed) return;
    e.armed = ev;
    e.watcher?.start(ev);
  }

  #event(e: End, status: number, events: number): void {
    if (this.#done) return;
    try {
      if (status < 0) {
        // libuv reports EPOLLERR as a bare status (UV_EBADF), e.g. when the peer died with our bytes unread
        // (ECONNRESET): a read surfaces the socket's own errno, or its EOF, as the reason.
        this.#read(e);
        throw new Error(`poll error ${status}`);
      }
      if ((events & POLL_WRITABLE) !== 0) this.#flush(e);
      if ((events & POLL_READABLE) !== 0) this.#read(e);
      this.#rearm();
    } catch (err) {
      this.close(err instanceof Error ? err.message : String(err));
    }
  }

  #read(src: End): void {
    const dst = this.#other(src);
    const dir: RelayDirection = src === this.client ? "c2s" : "s2c";
    const onChunk = this.observer.onChunk;
    while (pendingCount(dst) === 0) {
      const n = native.recvmsg(src.fd, this.#buf, 0, RECV_SIZE, this.#fdsOut);
      if (n === AGAIN) return;
      const nfds = this.#fdsOut[0] as number;
      // Most chunks carry no fds: one shared empty array instead of one per chunk.
      const fds: number[] = nfds === 0 ? NO_FDS : [];
      for (let i = 0; i < nfds; i++) fds.push(this.#fdsOut[1 + i] as number);
      if (n === 0) {
        for (const fd of fds) native.close(fd);
        this.close("eof");
        return;
      }
      if (onChunk !== undefined) onChunk.call(this.observer, this.id, dir, this.#buf.subarray(0, n), fds);
      // Straight from the receive buffer when the peer takes it all (the usual case); only what it could not take
      // is copied into its queue. The fds ride on the first byte sent, so a partial send leaves none behind.
      let sent: number;
      try {
        sent = native.sendmsg(dst.fd, this.#buf, 0, n, nfds > 0 ? fds : null);
      } catch (err) {
        // The peer is gone (EPIPE, ECONNRESET): the chunk's fds are in no queue that close() would empty.
        for (const fd of fds) native.close(fd);
        throw err;
      }
      const taken = sent === AGAIN ? 0 : sent;
      if (taken > 0) for (const fd of fds) native.close(fd);
      if (taken < n) {
        dst.queue.push({ bytes: this.#buf.slice(taken, n), fds: taken > 0 ? NO_FDS : fds });
        return;
      }
      // A short read drained the socket: the level-triggered watcher wakes us for more (no EAGAIN recvmsg).
      if (n < RECV_SIZE) return;
    }
  }

  #flush(dst: End): void {
    while (pendingCount(dst) > 0) {
      const p = dst.queue[dst.head] as Pending;
      const n = native.sendmsg(dst.fd, p.bytes, 0, p.bytes.length, p.fds.length > 0 ? p.fds : null);
      if (n === AGAIN) return;
      // The kernel attached the fds to the first byte sent: our copies can go.
      for (const fd of p.fds) native.close(fd);
      p.fds = NO_FDS;
      if (n < p.bytes.length) {
        p.bytes = p.bytes.subarray(n);
        continue;
      }
      dst.head++;
      if (dst.head === dst.queue.length) {
        dst.queue.length = 0;
        dst.head = 0;
      }
    }
  }

  /** Closes both sockets and every fd still queued. Idempotent. */
  close(why: string): void {
    if (this.#done) return;
    this.#done = true;
    for (const e of [this.client, this.upstream]) {
      // Best effort: deliver what is already queued (e.g. the compositor's error before its EOF).
      try {
        this.#flush(e);
      } catch {
        // The peer is gone.
      }
      e.watcher?.stop();
      e.watcher?.close();
      e.watcher = null;
      for (let i = e.head; i < e.queue.length; i++)
        for (const fd of (e.queue[i] as Pending).fds) native.close(fd);
      e.queue.length = 0;
      e.head = 0;
      native.close(e.fd);
      e.closed = true;
    }
    this.observer.onClose?.(this.id, why);
    this.onDone(this);
  }
}

/** A listening relay. */
export class SocketRelay {
  readonly socketPath: string;
  readonly upstreamPath: string;
  readonly #listenFd: number;
  readonly #watcher: NativeWatcher;
  readonly #pairs = new Set<Pair>();
  readonly #observer: RelayObserver;
  #nextId = 1;
  #closed = false;

  /** Listens on `socketPath` (an existing socket file there is replaced) and relays each client to `upstreamPath`. */
  constructor(socketPath: string, upstreamPath: string, observer: RelayObserver = {}) {
    this.socketPath = socketPath;
    this.upstreamPath = upstreamPath;
    this.#observer = observer;
    if (existsSync(socketPath)) unlinkSync(socketPath);
    this.#listenFd = native.unixListen(socketPath, 64);
    this.#watcher = native.createWatcher(this.#listenFd, () => this.#accept());
    this.#watcher.start(POLL_READABLE);
  }

  /** Live connections. */
  get connections(): number {
    return this.#pairs.size;
  }

  #accept(): void {
    for (;;) {
      const fd = native.unixAccept(this.#listenFd);
      if (fd === AGAIN) return;
      let up: number;
      try {
        up = native.unixConnect(this.upstreamPath);
      } catch (err) {
        native.close(fd);
        this.#observer.onClose?.(this.#nextId++, `upstream connect failed: ${(err as Error).message}`);
        continue;
      }
      const id = this.#nextId++;
      this.#observer.onConnect?.(id);
      this.#pairs.add(new Pair(id, fd, up, this.#observer, (p) => this.#pairs.delete(p)));
    }
  }

  /** Stops listening, closes every connection and removes the socket file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.stop();
    this.#watcher.close();
    native.close(this.#listenFd);
    for (const p of [...this.#pairs]) p.close("relay closed");
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
  }
}
