// A per-connection ring of received file descriptors, consumed in order by the messages that carry them.
import { CrosswayError } from "../../errors.ts";

/** Default bound on queued fds: libwayland's fds_in ring holds 4096 bytes of ints (connection.c). */
export const DEFAULT_FD_QUEUE_LIMIT = 1024;

/*
 * The fds SCM_RIGHTS delivered, oldest first. recvmsg appends; each decoded message takes exactly its signature's
 * count from the head. The queue outlives single reads because a message's fds may arrive with an earlier chunk
 * (libwayland sends fds with the first byte of a sendmsg) or the bytes may be split across reads.
 *
 *   ring:  [ . . h0 h1 h2 . . . ]      head = index of the oldest fd, count = fds queued
 *               ^head       ^(head+count) % capacity = where the next push goes
 */

/** Ring buffer of fd numbers. Fds are plain numbers here: src/wire does no I/O, so closing is the owner's job. */
export class FdQueue {
  #ring: Int32Array;
  #head = 0;
  #count = 0;
  /** Most fds held at once; a peer that sends more than its messages consume is cut off. */
  readonly limit: number;

  constructor(initialCapacity = 32, limit = DEFAULT_FD_QUEUE_LIMIT) {
    this.#ring = new Int32Array(Math.max(4, Math.min(initialCapacity, limit)));
    this.limit = limit;
  }

  /** Number of fds queued. */
  get length(): number {
    return this.#count;
  }

  /**
   * Appends one fd. Throws CW_WIRE_FD_OVERFLOW (without taking the fd: the caller closes it and the
   * connection) when {@link FdQueue.limit} fds are already queued.
   */
  push(fd: number): void {
    if (this.#count >= this.limit)
      throw new CrosswayError(
        "CW_WIRE_FD_OVERFLOW",
        `more than ${this.limit} file descriptors received that no message has consumed`,
        { value: this.#count + 1 },
      );
    if (this.#count === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#count) % this.#ring.length] = fd;
    this.#count++;
  }

  /** The fd `index` places after the head, without removing it; -1 past the end. */
  peek(index: number): number {
    if (index < 0 || index >= this.#count) return -1;
    return this.#ring[(this.#head + index) % this.#ring.length] as number;
  }

  /** Removes `n` fds from the head (the caller took ownership via peek). */
  consume(n: number): void {
    if (n < 0 || n > this.#count) throw new RangeError(`FdQueue.consume(${n}) with ${this.#count} queued`);
    this.#head = (this.#head + n) % this.#ring.length;
    this.#count -= n;
  }

  /** Removes and returns every queued fd (for teardown: the owner closes them). */
  drain(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#count; i++) out.push(this.peek(i));
    this.#head = 0;
    this.#count = 0;
    return out;
  }

  #grow(): void {
    const next = new Int32Array(this.#ring.length * 2);
    for (let i = 0; i < this.#count; i++) next[i] = this.peek(i);
    this.#ring = next;
    this.#head = 0;
  }
}
