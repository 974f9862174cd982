// A one-shot timer whose wait costs the event loop no timeout, for timers re-armed about once per round trip.
import { type NativeDeadlineTimer, native } from "../native.ts";

/**
 * setTimeout's one-shot timer on native/src/deadline_timer.h: a timerfd the loop watches. While a libuv timer is
 * pending, every sleep of the loop carries a timeout, which the kernel arms and cancels around each sleep; under a
 * millisecond that cost about 2.2 µs per sleep on the benchmark machine (README.md, Performance, tenth round), and
 * the channel's riding-POLL timer is pending through every round trip. Never keeps the process alive, like an
 * unref'd Timeout. The native timer (one fd) is made by prepare() or the first start(); close() gives it back for
 * good, and a start() after it does nothing.
 */
export class LoopDeadline {
  private timer: NativeDeadlineTimer | null = null;
  private pending = false;
  private closed = false;

  constructor(private readonly onExpired: () => void) {}

  /** Whether a start() waits to expire. */
  get armed(): boolean {
    return this.pending;
  }

  /**
   * Makes the native timer now, so its fd is held from here to close() rather than from whenever it is first
   * needed (an owner's fd count then does not change in the middle of its life). Nothing after close().
   */
  prepare(): void {
    if (this.closed) return;
    this.timer ??= new native.DeadlineTimer(() => {
      this.pending = false;
      this.onExpired();
    });
  }

  /** Expires once, `ms` milliseconds from now (fractions count); a second start() replaces the deadline. */
  start(ms: number): void {
    this.prepare();
    if (this.timer === null) return;
    this.pending = true;
    this.timer.start(ms);
  }

  /** Gives the native timer (and its fd) back: nothing expires afterwards. Idempotent. */
  close(): void {
    this.closed = true;
    this.pending = false;
    this.timer?.close();
    this.timer = null;
  }
}
