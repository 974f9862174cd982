// PipeWire native protocol v3 framing: the 16-byte header, a receive accumulator with its fd queue, and encoding.
import { PipeWireWireError } from "./pod-error.ts";
import { type PodLimits, PodReader, STRICT_POD_LIMITS } from "./pod-reader.ts";
import type { Pod } from "./pod-types.ts";
import { podSize, writePod } from "./pod-writer.ts";

/** Header size of protocol v3 (pw-doc protocol.dox "Message header"; connection.c prepare_packet). */
export const HEADER_SIZE = 16;
/** The size field is 24 bits: the hard framing limit. */
export const MAX_FRAME_SIZE = (1 << 24) - 1;
/** SPA_ASYNC_SEQ_MASK (spa/utils/result.h): senders mask their counter with it (connection.c L737). */
export const SEQ_MASK = (1 << 30) - 1;
/** MAX_FDS in connection.c: the receiver keeps at most this many unconsumed fds per connection. */
export const MAX_QUEUED_FDS = 1024;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A framed message. `payload` is a view into the framer's buffer, valid until the next {@link Framer} call. */
export interface Frame {
  readonly id: number;
  readonly opcode: number;
  /** Payload bytes (POD plus footer), excluding the header. */
  readonly size: number;
  readonly seq: number;
  readonly nFds: number;
  readonly payload: Uint8Array;
  /** The message's fds, taken from the queue in order; the caller owns them. */
  readonly fds: number[];
}

/**
 * Accumulates bytes and SCM_RIGHTS fds from a stream socket and yields whole messages. Fds of one message can
 * arrive over several recvmsg calls (PipeWire sends at most 28 per sendmsg, connection.c L780), but always with
 * or before the message's own bytes, so a complete message whose n_fds exceeds the queued fds is malformed
 * (the check PipeWire added in c9ecbf9f).
 *
 * ```
 *  buf: [ consumed | start ..... unread bytes ..... end | free ]
 * ```
 */
export class Framer {
  private buf: Uint8Array;
  private view: DataView;
  private start = 0;
  private end = 0;
  private readonly fdQueue: number[] = [];
  private fdHead = 0;
  readonly maxSize: number;

  readonly maxFds: number;

  /**
   * `maxSize` caps the header's size field (64 KiB C→S, 1 MiB S→C in the filter; pipewire.md §7.3). `maxFds`
   * caps the queued fds: 0 for a peer that may send none (the filter's consumer profiles, §7.7).
   */
  constructor(maxSize: number, maxFds = MAX_QUEUED_FDS, initialCapacity = 32768) {
    this.maxSize = Math.min(maxSize, MAX_FRAME_SIZE);
    this.maxFds = Math.min(maxFds, MAX_QUEUED_FDS);
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  /** Free space to receive into, at least `min` bytes (compacting or growing the buffer as needed). */
  reserve(min = 4096): { buf: Uint8Array; offset: number; length: number } {
    if (this.buf.length - this.end < min) {
      const live = this.end - this.start;
      if (this.start > 0 && this.buf.length - live >= min) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(Math.max(this.buf.length * 2, live + min));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
        this.view = new DataView(grown.buffer);
      }
      this.start = 0;
      this.end = live;
    }
    return { buf: this.buf, offset: this.end, length: this.buf.length - this.end };
  }

  /** Records `n` bytes received into the region {@link reserve} returned, plus the fds that came with them. */
  commit(n: number, fds: ArrayLike<number> = []): void {
    this.end += n;
    for (let i = 0; i < fds.length; i++) this.fdQueue.push(fds[i] as number);
    if (this.fdQueue.length - this.fdHead > this.maxFds) {
      // The fds stay queued; the owner closes them with drainFds() when it drops the connection.
      if (this.maxFds === 0) {
        throw new PipeWireWireError("CW_PW_FRAMING", "unexpected-fds", 0, `${fds.length} fds received`);
      }
      throw new PipeWireWireError("CW_PW_FRAMING", "too-many-fds", 0, `more than ${this.maxFds} fds queued`);
    }
  }

  /** Copies `data` in (for tests and non-socket sources). */
  push(data: Uint8Array, fds: ArrayLike<number> = []): void {
    const r = this.reserve(data.length);
    r.buf.set(data, r.offset);
    this.commit(data.length, fds);
  }

  /** Bytes received but not yet framed. */
  get pending(): number {
    return this.end - this.start;
  }

  /** Fds received but not yet handed out. */
  get queuedFds(): number {
    return this.fdQueue.length - this.fdHead;
  }

  /** The next whole message, or null when more bytes are needed. Throws CW_PW_FRAMING on a bad header. */
  next(): Frame | null {
    const avail = this.end - this.start;
    if (avail < HEADER_SIZE) return null;
    const s = this.start;
    const id = this.view.getUint32(s, LITTLE_ENDIAN);
    const opsize = this.view.getUint32(s + 4, LITTLE_ENDIAN);
    const seq = this.view.getUint32(s + 8, LITTLE_ENDIAN);
    const nFds = this.view.getUint32(s + 12, LITTLE_ENDIAN);
    const size = opsize & 0xffffff;
    const opcode = opsize >>> 24;
    if (size > this.maxSize) {
      throw new PipeWireWireError(
        "CW_PW_FRAMING",
        "oversize",
        s,
        `message size ${size} exceeds ${this.maxSize}`,
        {
          objectId: id,
          opcode,
        },
      );
    }
    if (avail < HEADER_SIZE + size) return null;
    if (nFds > this.queuedFds) {
      throw new PipeWireWireError(
        "CW_PW_FRAMING",
        "missing-fds",
        s,
        `header claims ${nFds} fds but ${this.queuedFds} were received`,
        { objectId: id, opcode },
      );
    }
    const fds = this.fdQueue.slice(this.fdHead, this.fdHead + nFds);
    this.fdHead += nFds;
    if (this.fdHead > 256 && this.fdHead * 2 > this.fdQueue.length) {
      this.fdQueue.splice(0, this.fdHead);
      this.fdHead = 0;
    }
    const payload = this.buf.subarray(s + HEADER_SIZE, s + HEADER_SIZE + size);
    this.start = s + HEADER_SIZE + size;
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
    return { id, opcode, size, seq, nFds, payload, fds };
  }

  /** Removes and returns every queued fd (for closing on teardown). */
  drainFds(): number[] {
    const rest = this.fdQueue.slice(this.fdHead);
    this.fdQueue.length = 0;
    this.fdHead = 0;
    return rest;
  }
}

/** A decoded payload: the argument Struct, the optional footer Struct, and the fd indices it referenced. */
export interface DecodedPayload {
  readonly body: Pod & { t: "struct" };
  readonly footer: (Pod & { t: "struct" }) | undefined;
  readonly fdRefs: readonly bigint[];
}

/**
 * Decodes and strictly validates a message payload (pipewire.md §2.4 item 1 and 12): exactly one Struct,
 * optionally one footer Struct, nothing after; every Fd index in [0, nFds) or -1; every fd referenced exactly once.
 */
export function decodePayload(
  payload: Uint8Array,
  nFds: number,
  limits: PodLimits = STRICT_POD_LIMITS,
): DecodedPayload {
  const r = new PodReader(payload, limits);
  const first = r.read(0, payload.length);
  if (first.pod.t !== "struct") {
    throw new PipeWireWireError(
      "CW_PW_POD",
      "payload-not-struct",
      0,
      `payload is a ${first.pod.t}, not a Struct`,
    );
  }
  let footer: (Pod & { t: "struct" }) | undefined;
  if (first.next < payload.length) {
    // connection.c get_footer: the footer sits at SPA_POD_SIZE(payload), which equals our aligned `next`
    // because a Struct body is a multiple of 8.
    const second = r.read(first.next, payload.length);
    if (second.pod.t !== "struct") {
      throw new PipeWireWireError(
        "CW_PW_POD",
        "footer-not-struct",
        first.next,
        `footer is a ${second.pod.t}`,
      );
    }
    if (second.next !== payload.length) {
      throw new PipeWireWireError("CW_PW_POD", "trailing-bytes", second.next, "bytes after the footer");
    }
    footer = second.pod;
  }
  const used = new Uint8Array(nFds);
  for (const ref of r.fdRefs) {
    if (ref === -1n) continue;
    if (ref < 0n || ref >= BigInt(nFds)) {
      throw new PipeWireWireError("CW_PW_POD", "fd-index", 0, `Fd index ${ref} with ${nFds} fds attached`);
    }
    const i = Number(ref);
    if (used[i] === 1)
      throw new PipeWireWireError("CW_PW_POD", "fd-reused", 0, `Fd index ${ref} referenced twice`);
    used[i] = 1;
  }
  for (let i = 0; i < nFds; i++) {
    if (used[i] !== 1)
      throw new PipeWireWireError("CW_PW_POD", "fd-unreferenced", 0, `fd ${i} is never referenced`);
  }
  return { body: first.pod, footer, fdRefs: r.fdRefs };
}

/** Encodes a whole message: header plus `body` plus optional `footer`. */
export function encodeMessage(
  id: number,
  opcode: number,
  seq: number,
  nFds: number,
  body: Pod,
  footer?: Pod,
): Uint8Array {
  const bodySize = podSize(body);
  const size = bodySize + (footer === undefined ? 0 : podSize(footer));
  if (size > MAX_FRAME_SIZE) {
    throw new PipeWireWireError("CW_PW_FRAMING", "oversize", 0, `message of ${size} bytes cannot be framed`);
  }
  const out = new Uint8Array(HEADER_SIZE + size);
  const v = new DataView(out.buffer);
  v.setUint32(0, id >>> 0, LITTLE_ENDIAN);
  v.setUint32(4, ((opcode & 0xff) << 24) | size, LITTLE_ENDIAN);
  v.setUint32(8, seq >>> 0, LITTLE_ENDIAN);
  v.setUint32(12, nFds >>> 0, LITTLE_ENDIAN);
  writePod(out, HEADER_SIZE, body);
  if (footer !== undefined) writePod(out, HEADER_SIZE + bodySize, footer);
  return out;
}

/** Writes a raw 16-byte header (used by tests and the raw client to craft bad headers). */
export function encodeHeader(
  id: number,
  opcode: number,
  size: number,
  seq: number,
  nFds: number,
): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, id >>> 0, LITTLE_ENDIAN);
  v.setUint32(4, (((opcode & 0xff) << 24) | (size & 0xffffff)) >>> 0, LITTLE_ENDIAN);
  v.setUint32(8, seq >>> 0, LITTLE_ENDIAN);
  v.setUint32(12, nFds >>> 0, LITTLE_ENDIAN);
  return out;
}
