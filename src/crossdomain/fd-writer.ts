// The emulated device's ordered, non-blocking writer to one host fd (a socket with SCM_RIGHTS, a pipe, an eventfd),
// on the shared fd-carrying output queue.

import { FdOutputQueue } from "../fd/fd-output-queue.ts";
import { createSharedWatcher } from "../fd/shared-watcher.ts";
import { type NativeWatcher, native, POLL_WRITABLE } from "../native.ts";
import { IdleFlag } from "./idle-flag.ts";

/**
 * Ordered non-blocking writes to a host fd (socket with SCM_RIGHTS, pipe or eventfd). Real hosts write blocking on
 * the device thread (P26); queueing instead keeps one stuck peer from stalling every context of the device.
 */
export class FdWriter {
  /** What is not written yet, with its fds (the shared fd-carrying output queue). */
  private readonly out: FdOutputQueue;
  private watcher: NativeWatcher | null = null;
  private closeWhenDone = false;
  /** The fd stopped taking bytes and the writable watch is on. */
  private blocked = false;
  closed = false;
  /** Called when the queue empties after the fd had stopped taking bytes (not when closed). */
  onDrain: (() => void) | null = null;
  /** Where {@link publishIdle} says whether nothing is queued (a native fast path's state, device-fast-state.ts). */
  private readonly idle = new IdleFlag();

  constructor(
    readonly fd: number,
    socket: boolean,
    private readonly onError: (err: Error) => void,
  ) {
    this.out = new FdOutputQueue(fd, socket ? "socket" : "stream");
  }

  /**
   * Queues `bytes` (copied) with `fds` (owned from now on) and writes what the fd takes, or with `now` false only
   * queues them until {@link flushQueued} (several commands of one submission in one sendmsg). Throws RangeError,
   * having closed the fds, for fds the queue cannot carry (more than 28, fds on a pipe, fds without a byte to ride on).
   */
  write(bytes: Uint8Array, fds: number[] | null, now = true): void {
    if (this.closed) {
      if (fds !== null) for (const fd of fds) native.close(fd);
      return;
    }
    try {
      this.out.append(bytes, fds);
    } catch (err) {
      if (fds !== null) for (const fd of fds) native.close(fd);
      throw err;
    }
    // Blocked: the writable watch flushes; another sendmsg now would only say EAGAIN.
    if (now && !this.blocked) this.flush();
    this.updateIdle();
  }

  /** Writes what {@link write} queued without writing (nothing to do when blocked: the writable watch will). */
  flushQueued(): void {
    if (!this.closed && !this.blocked && this.out.pending > 0) this.flush();
  }

  /**
   * Keeps `state[index]` at 1 while the writer is open and has nothing queued, 0 otherwise: a native fast path may
   * then write the fd directly without overtaking queued bytes. With null, stops (after setting the last index to 0).
   */
  publishIdle(state: Float64Array | null, index: number): void {
    this.idle.target(state, index);
    this.updateIdle();
  }

  private updateIdle(): void {
    if (this.idle.active) this.idle.set(!this.closed && !this.blocked && this.out.pending === 0);
  }

  /** Bytes queued, not yet taken by the fd. */
  get pending(): number {
    return this.out.pending;
  }

  /** Closes the fd once everything queued is written (a WRITE with hang_up). */
  endAfterFlush(): void {
    this.closeWhenDone = true;
    if (this.out.pending === 0) this.close();
  }

  private flush(): void {
    let r: "done" | "blocked";
    try {
      r = this.out.flush();
    } catch (err) {
      this.close();
      this.onError(err as Error);
      return;
    }
    if (r === "blocked") {
      this.blocked = true;
      if (this.watcher === null) {
        // Shared: the device may also be reading this fd (a host socket), and libuv allows one poll per fd.
        this.watcher = createSharedWatcher(this.fd, () => this.flush());
      }
      this.watcher.start(POLL_WRITABLE);
      this.updateIdle();
      return;
    }
    const wasBlocked = this.blocked;
    this.blocked = false;
    this.watcher?.stop();
    this.updateIdle();
    if (this.closeWhenDone) this.close();
    // Last, with the writer settled: the callback may queue more at once.
    else if (wasBlocked) this.onDrain?.();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watcher !== null) {
      this.watcher.stop();
      this.watcher.close();
    }
    this.out.discard();
    this.updateIdle();
    native.close(this.fd);
  }
}
