// One non-blocking Unix socket of the filter: frames incoming PipeWire messages with their fds, queues outgoing ones.

import { FdOutputQueue } from "../../fd/fd-output-queue.ts";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../../native.ts";
import { type Frame, Framer } from "../../wire/pipewire/framing.ts";

/** Callbacks of an {@link Endpoint}. */
export interface EndpointHandlers {
  /** Called for each whole message; the frame's payload view is valid only during the call; it owns frame.fds. */
  onFrame(frame: Frame): void;
  /** The peer closed, or a socket or framing error happened (`err` set). Called once. */
  onClose(err: unknown): void;
  /** The output queue became empty (for backpressure on the other side). */
  onDrain?(): void;
}

/**
 * A socket endpoint. Reading can be paused (backpressure, rate limiting, or holding a client while the upstream
 * connection is being restricted); whole frames already buffered are delivered only while not paused.
 */
export class Endpoint {
  readonly fd: number;
  private readonly framer: Framer;
  private readonly watcher: NativeWatcher;
  /** Outgoing messages with their fds (the shared fd-carrying output queue). */
  private readonly out: FdOutputQueue;
  private readonly fdsIn = new Int32Array(MAX_FDS_PER_MSG + 1);
  private pausedReasons = 0;
  private closed = false;
  private delivering = false;
  private handlers: EndpointHandlers | null = null;

  /** `maxFds` = 0 makes any received fd a framing error (consumer clients send none, pipewire.md §7.7). */
  constructor(fd: number, maxMessageSize: number, maxFds?: number) {
    this.fd = fd;
    this.framer = new Framer(maxMessageSize, maxFds);
    this.out = new FdOutputQueue(fd, "socket");
    this.watcher = native.createWatcher(fd, (status, events) => this.onPoll(status, events));
  }

  /** Starts delivering frames to `handlers`. */
  start(handlers: EndpointHandlers): void {
    this.handlers = handlers;
    this.updateWatch();
  }

  /** Bytes waiting to be written. */
  get backlog(): number {
    return this.out.pending;
  }

  /** Fds received but not yet claimed by a whole message, and bytes of a message not yet complete. */
  get unframed(): { fds: number; bytes: number } {
    return { fds: this.framer.queuedFds, bytes: this.framer.pending };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Pauses reading; each pause bit (1, 2, 4...) is a separate reason, cleared by {@link resume}. */
  pause(bit: number): void {
    this.pausedReasons |= bit;
    this.updateWatch();
  }

  /** Clears one pause reason; delivers buffered frames once nothing pauses the endpoint. */
  resume(bit: number): void {
    this.pausedReasons &= ~bit;
    this.updateWatch();
    if (this.pausedReasons === 0) queueMicrotask(() => this.deliver());
  }

  /** Queues a message (copied by the caller if it is a view into a framer) with fds it now owns. */
  send(bytes: Uint8Array, fds: number[] | null): void {
    if (this.closed) {
      if (fds !== null) for (const fd of fds) native.close(fd);
      return;
    }
    try {
      this.out.append(bytes, fds);
    } catch (err) {
      // More fds than one sendmsg carries: refused whole (the queue took none of them).
      if (fds !== null) for (const fd of fds) native.close(fd);
      this.fail(err);
      return;
    }
    this.flush();
  }

  /** Closes the socket and every fd still owned (queued in or out). Idempotent; does not call onClose. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.watcher.close();
    this.out.discard();
    for (const fd of this.framer.drainFds()) native.close(fd);
    native.close(this.fd);
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const h = this.handlers;
    this.close();
    h?.onClose(err);
  }

  private updateWatch(): void {
    if (this.closed || this.handlers === null) return;
    const ev = (this.pausedReasons === 0 ? POLL_READABLE : 0) | (this.out.pending > 0 ? POLL_WRITABLE : 0);
    if (ev === 0) this.watcher.stop();
    else this.watcher.start(ev);
  }

  private onPoll(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.fail(new Error(`poll error ${status} on fd ${this.fd}`));
      return;
    }
    if ((events & POLL_WRITABLE) !== 0) this.flush();
    if ((events & POLL_READABLE) !== 0 && this.pausedReasons === 0) this.readSome();
  }

  private readSome(): void {
    // Bounded loop: a few reads per readiness event keeps one busy peer from starving the others.
    for (let i = 0; i < 8 && !this.closed && this.pausedReasons === 0; i++) {
      const r = this.framer.reserve(65536);
      let n: number;
      try {
        n = native.recvmsg(this.fd, r.buf, r.offset, r.length, this.fdsIn);
      } catch (err) {
        this.fail(err);
        return;
      }
      if (n === AGAIN) break;
      const nfds = this.fdsIn[0] as number;
      const fds: number[] = [];
      for (let k = 0; k < nfds; k++) fds.push(this.fdsIn[k + 1] as number);
      if (n === 0) {
        for (const fd of fds) native.close(fd);
        this.fail(null);
        return;
      }
      try {
        this.framer.commit(n, fds);
      } catch (err) {
        this.fail(err);
        return;
      }
      this.deliver();
    }
  }

  /** Hands whole frames to the handler while not paused. */
  private deliver(): void {
    if (this.delivering || this.handlers === null) return;
    this.delivering = true;
    try {
      while (!this.closed && this.pausedReasons === 0) {
        let frame: Frame | null;
        try {
          frame = this.framer.next();
        } catch (err) {
          this.fail(err);
          return;
        }
        if (frame === null) break;
        this.handlers.onFrame(frame);
      }
    } finally {
      this.delivering = false;
    }
  }

  private flush(): void {
    if (this.closed) return;
    try {
      this.out.flush();
    } catch (err) {
      this.fail(err);
      return;
    }
    this.updateWatch();
    if (this.out.pending === 0) this.handlers?.onDrain?.();
  }
}
