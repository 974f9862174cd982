// The one fd-carrying output queue (issue 12): bytes plus fds for a non-blocking socket, pipe or eventfd, written
// with partial writes, at most 28 fds per sendmsg, every fd at or before the first byte of the message that carries
// it, and each fd closed once the kernel took it. Model: libwayland's connection.c (one byte ring, one fd ring,
// build_cmsg per sendmsg). Used by the guest's client output, the framed device socket, the PipeWire endpoint and
// the device's host-fd writer.
import { AGAIN, MAX_FDS_PER_MSG, native } from "../native.ts";
import { copyBytes } from "../wire/bytes.ts";

/*
 * Pending output:   [ sent | segment 0 (fds a) | segment 1 (fds b) | ... ]   bytes, in one growable buffer
 *                    ^head
 * A segment starts at the first byte of a message whose fds would not fit in the previous segment's 28; its fds
 * ride on its first sendmsg, so every fd reaches the peer no later than the message that carries it.
 */

interface Segment {
  /** Byte offset (into the pending buffer) where the segment starts. */
  start: number;
  fds: number[];
}

/** Result of a flush: everything went out, or the fd is full (wait for POLL_WRITABLE). */
export type FlushResult = "done" | "blocked";

/** How bytes leave: sendmsg with SCM_RIGHTS (a Unix socket), or write(2) without fds (a pipe or an eventfd). */
export type OutputKind = "socket" | "stream";

/** Buffers output for one fd; owns every queued fd until it is sent or discarded. */
export class FdOutputQueue {
  private buf = new Uint8Array(16384);
  private head = 0;
  private tail = 0;
  private readonly segments: Segment[] = [];
  private segHead = 0;

  constructor(
    private readonly fd: number,
    private readonly kind: OutputKind = "socket",
  ) {}

  /** Bytes not yet written. */
  get pending(): number {
    return this.tail - this.head;
  }

  /**
   * Appends one message's bytes (copied) and the fds it carries (ownership moves here). The fds are attached at the
   * message's first byte, or earlier when they still fit in the current segment. A message may carry at most 28 fds
   * (one sendmsg's worth), and fds only on a socket; otherwise this throws RangeError and takes none of them.
   */
  append(bytes: Uint8Array, fds: readonly number[] | null = null): void {
    this.appendRange(bytes, 0, bytes.length, fds);
  }

  /** {@link append} of `src[offset, offset + length)`, without making a view of it first. */
  appendRange(src: Uint8Array, offset: number, length: number, fds: readonly number[] | null = null): void {
    if (fds !== null && fds.length > 0) {
      if (fds.length > MAX_FDS_PER_MSG || this.kind !== "socket") {
        throw new RangeError(
          `FdOutputQueue: a message with ${fds.length} fds on a ${this.kind} (at most ${this.kind === "socket" ? MAX_FDS_PER_MSG : 0})`,
        );
      }
      if (length === 0) throw new RangeError("FdOutputQueue: fds need at least one byte to ride on");
      const last = this.segments.length > this.segHead ? this.segments[this.segments.length - 1] : undefined;
      if (last !== undefined && last.fds.length + fds.length <= MAX_FDS_PER_MSG) {
        last.fds.push(...fds);
      } else {
        this.segments.push({ start: this.tail, fds: [...fds] });
      }
    }
    this.ensure(length);
    copyBytes(this.buf, this.tail, src, offset, length);
    this.tail += length;
  }

  /** Writes as much as the fd takes. Throws the native error when the peer is gone (EPIPE, ECONNRESET). */
  flush(): FlushResult {
    while (this.head < this.tail) {
      const seg = this.segHead < this.segments.length ? this.segments[this.segHead] : undefined;
      let end = this.tail;
      let fds: number[] | null = null;
      if (seg !== undefined) {
        if (seg.start === this.head) {
          fds = seg.fds;
          const next = this.segHead + 1 < this.segments.length ? this.segments[this.segHead + 1] : undefined;
          if (next !== undefined) end = next.start;
        } else {
          end = seg.start; // bytes before the next segment go without fds
        }
      }
      const n =
        this.kind === "socket"
          ? native.sendmsg(this.fd, this.buf, this.head, end - this.head, fds)
          : native.write(this.fd, this.buf, this.head, end - this.head);
      if (n === AGAIN) return "blocked";
      if (fds !== null) {
        // The kernel holds its own references once sendmsg accepted the first byte; ours can go.
        for (const f of fds) native.close(f);
        this.segHead++;
      }
      this.head += n;
    }
    this.head = 0;
    this.tail = 0;
    // Truncating an array is a runtime call in V8: skip it when there is nothing to drop (most flushes carry no fds).
    if (this.segments.length !== 0) this.segments.length = 0;
    this.segHead = 0;
    return "done";
  }

  /** Closes every fd not yet sent and drops the bytes (teardown). */
  discard(): void {
    for (let i = this.segHead; i < this.segments.length; i++) {
      for (const f of (this.segments[i] as Segment).fds) native.close(f);
    }
    this.segments.length = 0;
    this.segHead = 0;
    this.head = 0;
    this.tail = 0;
  }

  private ensure(extra: number): void {
    if (this.tail + extra <= this.buf.length) return;
    // Compact first: already-sent bytes at the front are dead.
    if (this.head > 0) {
      this.buf.copyWithin(0, this.head, this.tail);
      for (let i = this.segHead; i < this.segments.length; i++)
        (this.segments[i] as Segment).start -= this.head;
      this.tail -= this.head;
      this.head = 0;
      this.segments.splice(0, this.segHead);
      this.segHead = 0;
    }
    if (this.tail + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.tail + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.tail));
    this.buf = next;
  }
}
