// Non-blocking Unix socket carrying device-protocol frames with SCM_RIGHTS, used by both ends of the emulated device.
import { CrosswayError } from "../errors.ts";
import { FdOutputQueue } from "../fd/fd-output-queue.ts";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_DISCONNECT,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../native.ts";
import { getU32 } from "../wire/bytes.ts";
import { FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from "./device-protocol.ts";
import { IdleFlag } from "./idle-flag.ts";

/** Called for each complete frame; `payload` is a view valid only during the call; `fds` are now the callee's. */
export type FrameHandler = (
  type: number,
  serial: number,
  payload: Uint8Array,
  fds: readonly number[],
) => void;

/** The fds of a frame that carries none: shared, so that dispatching a frame allocates nothing. */
const NO_FDS: readonly number[] = Object.freeze([]);

/** Bytes queued for writing above which {@link FramedSocket.send} reports back-pressure. */
const HIGH_WATER = 64 * 1024;

/**
 *   read buffer:  [ consumed | frame frame part-frame | free ]
 *                 0          start                    end   length
 * Frames are dispatched from `start`; when less than a header's worth of room is left the unread tail is moved to 0.
 */
export class FramedSocket {
  private readonly watcher: NativeWatcher;
  private buf = new Uint8Array(1 << 16);
  private start = 0;
  private end = 0;
  /** Received fds not yet claimed by a frame (FIFO: head index instead of Array#shift). */
  private fdQueue: number[] = [];
  private fdHead = 0;
  private readonly fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
  /** Frames waiting to be written, with their fds (the shared fd-carrying output queue). */
  private readonly out: FdOutputQueue;
  private closed = false;
  private wantWrite = false;
  /** Frames are not taken while set (see {@link pauseReading}). */
  private readPaused = false;
  /** A frame handler is running (see {@link dispatch}). */
  private dispatching = false;
  /** Called once the write queue has drained after {@link send} returned false. */
  onDrain: () => void = () => {};
  /** Where {@link publishIdle} says whether this socket is idle (a native fast path's state). */
  private readonly idle = new IdleFlag();

  constructor(
    readonly fd: number,
    private readonly onFrame: FrameHandler,
    private readonly onClose: (err: Error | null) => void,
  ) {
    this.out = new FdOutputQueue(fd, "socket");
    this.watcher = native.createWatcher(fd, (status, events) => this.onEvents(status, events));
    this.watcher.start(POLL_READABLE);
  }

  /**
   * Keeps `state[index]` at 1 while nothing is queued either way and frames are taken as they come (not paused, not
   * inside a frame handler), 0 otherwise: a native fast path may then read and write this socket directly. With
   * null, stops (after setting the last index to 0).
   */
  publishIdle(state: Float64Array | null, index: number): void {
    this.idle.target(state, index);
    this.updateIdle();
  }

  private updateIdle(): void {
    if (!this.idle.active) return;
    this.idle.set(
      !this.closed &&
        !this.readPaused &&
        !this.dispatching &&
        !this.wantWrite &&
        this.out.pending === 0 &&
        this.start === this.end &&
        this.fdHead === this.fdQueue.length,
    );
  }

  /**
   * Bytes and fds a native fast path read from this socket and did not handle: buffered and dispatched exactly as if
   * readSome had read them.
   */
  received(bytes: Uint8Array, fds: Int32Array | undefined): void {
    if (fds !== undefined) for (let i = 0; i < fds.length; i++) this.fdQueue.push(fds[i] as number);
    if (this.closed) {
      this.closeQueuedFds();
      return;
    }
    if (this.buf.length - this.end < bytes.length) this.makeRoom(bytes.length);
    this.buf.set(bytes, this.end);
    this.end += bytes.length;
    if (!this.readPaused) this.dispatch();
    this.updateIdle();
  }

  /**
   * Hands this socket's watcher a native fast path, or takes it back (null): a guest connection's FastPath (role 1,
   * its device socket) or a device context's DeviceFastPath (role 0, its guest side).
   */
  setFastPath(fast: object | null, role = 1): void {
    if (!this.closed) this.watcher.setFastPath?.(fast, role);
  }

  /** A read a native fast path made on this socket failed with `err`: the socket fails as if readSome had. */
  readFailed(err: Error): void {
    this.fail(err);
  }

  /** Bytes waiting to be written. */
  get pendingBytes(): number {
    return this.out.pending;
  }

  /**
   * Queues a frame with `fds` (ownership passes to the socket, which closes them once sent). Returns false when the
   * queue is above the high-water mark: back-pressure as a value; {@link onDrain} fires when it empties.
   */
  send(frame: Uint8Array, fds: number[] | null = null): boolean {
    if (this.closed) {
      if (fds !== null) for (const fd of fds) native.close(fd);
      throw new CrosswayError("CW_DEVICE_PROTOCOL", "emulated device socket is closed");
    }
    this.out.append(frame, fds);
    // Already waiting for room: the writable watch flushes; a sendmsg now would only say EAGAIN.
    if (!this.wantWrite) this.flush();
    this.updateIdle();
    return this.out.pending < HIGH_WATER;
  }

  /**
   * Stops taking frames after the one being handled, so the peer's writes back up into its own queue: back-pressure
   * from a consumer further on (the device's host socket). Frames already read wait in the buffer.
   */
  pauseReading(): void {
    if (this.readPaused || this.closed) return;
    this.readPaused = true;
    this.updateIdle();
    this.arm();
  }

  /** Takes frames again: the buffered ones at once, then what the socket holds. */
  resumeReading(): void {
    if (!this.readPaused || this.closed) return;
    this.readPaused = false;
    this.arm();
    this.dispatch();
    this.updateIdle();
  }

  private arm(): void {
    // Paused, the hang-up is still watched: a peer gone while its frames are held back must not be kept forever by a
    // consumer that never drains.
    this.watcher.start(
      (this.readPaused ? POLL_DISCONNECT : POLL_READABLE) | (this.wantWrite ? POLL_WRITABLE : 0),
    );
  }

  private flush(): void {
    let r: "done" | "blocked";
    try {
      r = this.out.flush();
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (r === "blocked") {
      if (!this.wantWrite) {
        this.wantWrite = true;
        this.arm();
      }
      return;
    }
    if (this.wantWrite) {
      this.wantWrite = false;
      this.arm();
      this.onDrain();
    }
  }

  private onEvents(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.fail(new Error(`poll error ${status} on device socket`));
      return;
    }
    if (this.readPaused && (events & POLL_DISCONNECT) !== 0) {
      // The peer went away while its frames were held back: it is gone as at EOF (what it queued is dropped, as
      // at EOF the host socket's unsent bytes are).
      this.fail(null);
      return;
    }
    if ((events & POLL_WRITABLE) !== 0) this.flush();
    if ((events & POLL_READABLE) !== 0 && !this.closed && !this.readPaused) this.readSome();
    this.updateIdle();
  }

  private readSome(): void {
    for (let round = 0; round < 16 && !this.closed && !this.readPaused; round++) {
      if (this.buf.length - this.end < 4096) this.makeRoom(4096);
      // With a native fast path, a read that left part of a frame here is followed by one of just its rest, and the
      // next wake-up is the fast path's again: it reads only while nothing waits here, so a full read ending inside
      // a frame (in a burst, most do) would have made every read after it JavaScript's until one ended on a frame's
      // end. A burst after a stalled compositor went 63-67% through the device's JavaScript (issue 15).
      const rest = this.idle.active ? this.partialFrameRest() : 0;
      const room = rest > 0 && rest < this.buf.length - this.end ? rest : this.buf.length - this.end;
      let n: number;
      try {
        n = native.recvmsg(this.fd, this.buf, this.end, room, this.fdsOut);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      for (let i = 0; i < this.fdsOut[0]!; i++) this.fdQueue.push(this.fdsOut[1 + i]!);
      if (n === AGAIN) return;
      if (n === 0) {
        this.fail(null);
        return;
      }
      this.end += n;
      this.dispatch();
      // A short read drained the socket: stop here instead of paying a recvmsg that only says EAGAIN (the
      // watcher is level-triggered, so anything that arrives later wakes us again).
      if (n < room) return;
      if (this.idle.active && this.start === this.end) return;
    }
  }

  /** Bytes still to read before the buffered ones end on a frame's end (0 when they do, or at a bad header). */
  private partialFrameRest(): number {
    const avail = this.end - this.start;
    if (avail === 0) return 0;
    if (avail < FRAME_HEADER_SIZE) return FRAME_HEADER_SIZE - avail;
    const payloadLength = getU32(this.buf, this.start + 8);
    if (payloadLength > MAX_FRAME_PAYLOAD) return 0;
    return Math.max(0, FRAME_HEADER_SIZE + payloadLength - avail);
  }

  private makeRoom(min: number): void {
    if (this.start > 0) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    if (this.buf.length - this.end < min) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.end + min));
      bigger.set(this.buf.subarray(0, this.end));
      this.buf = bigger;
    }
  }

  /**
   * Not re-entrant: a handler may resume reading (a host socket that failed and released its hold) while a frame is
   * being handled; the running loop then goes on, in order, instead of a nested one running ahead of the rest of
   * the current frame and leaving the outer loop a stale buffer.
   */
  private dispatch(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    this.updateIdle();
    try {
      this.dispatchFrames();
    } finally {
      this.dispatching = false;
      this.updateIdle();
    }
  }

  private dispatchFrames(): void {
    const buf = this.buf;
    while (!this.closed && !this.readPaused) {
      if (this.end - this.start < FRAME_HEADER_SIZE) return;
      const type = getU32(buf, this.start);
      const serial = getU32(buf, this.start + 4);
      const payloadLength = getU32(buf, this.start + 8);
      const nfds = getU32(buf, this.start + 12);
      if (payloadLength > MAX_FRAME_PAYLOAD || nfds > MAX_FDS_PER_MSG) {
        this.fail(
          new CrosswayError(
            "CW_DEVICE_PROTOCOL",
            `device frame type ${type}: bad size ${payloadLength}/${nfds}`,
          ),
        );
        return;
      }
      const total = FRAME_HEADER_SIZE + payloadLength;
      if (this.end - this.start < total) {
        if (this.buf.length - this.start < total) this.makeRoom(total);
        return;
      }
      if (this.fdQueue.length - this.fdHead < nfds) {
        // The fds ride on some byte of this frame; the rest of the frame's bytes came first. Wait for them.
        return;
      }
      let fds = NO_FDS;
      if (nfds > 0) {
        fds = this.fdQueue.slice(this.fdHead, this.fdHead + nfds);
        this.fdHead += nfds;
        if (this.fdHead === this.fdQueue.length) {
          this.fdQueue.length = 0;
          this.fdHead = 0;
        }
      }
      const payload = buf.subarray(this.start + FRAME_HEADER_SIZE, this.start + total);
      this.start += total;
      this.onFrame(type, serial, payload, fds);
    }
  }

  private closeQueuedFds(): void {
    for (let i = this.fdHead; i < this.fdQueue.length; i++) native.close(this.fdQueue[i]!);
    this.fdQueue.length = 0;
    this.fdHead = 0;
  }

  private fail(err: Error | null): void {
    if (this.closed) return;
    this.close();
    this.onClose(err);
  }

  /** Stops watching, closes the socket and every fd still queued in either direction. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.updateIdle();
    this.watcher.setFastPath?.(null, 0);
    this.watcher.stop();
    this.watcher.close();
    this.closeQueuedFds();
    this.out.discard();
    native.close(this.fd);
  }
}
