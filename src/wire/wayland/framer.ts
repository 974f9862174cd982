// Splits a Wayland byte stream into messages at arbitrary read boundaries: a view, NEED_MORE, or an error.
import { copyBytes } from "../bytes.ts";
import { MalformedMessageError } from "./errors.ts";

/** Returned by {@link MessageFramer.next} when the buffer holds no complete message yet. */
export const NEED_MORE: unique symbol = Symbol("NEED_MORE");
/** The type of {@link NEED_MORE}. */
export type NeedMore = typeof NEED_MORE;

/** Header size: object id (u32), then size << 16 | opcode (u32), native endian (wayland connection.c). */
export const HEADER_SIZE = 8;
/** libwayland's buffer size before 1.23, hence the largest message older peers accept. */
export const DEFAULT_MAX_MESSAGE_SIZE = 4096;
/** The largest size a header's 16-bit field can express, rounded down to a multiple of 4. */
export const MAX_MESSAGE_SIZE_LIMIT = 65532;

/**
 * One framed message: a window into the framer's buffer. The framer reuses this object; it and `bytes` stay
 * valid only until the next push/commit/reserve (which may compact). Use {@link MessageView.retain} to keep one.
 */
export interface MessageView {
  /** The framer's buffer (not a copy). Messages start 4-aligned, so `words` indexes them directly. */
  readonly bytes: Uint8Array;
  /** The same memory as 32-bit native-endian words. */
  readonly words: Uint32Array;
  /** Byte offset of the header in `bytes` (a multiple of 4). */
  readonly offset: number;
  /** Total size from the header (>= 8, multiple of 4). */
  readonly size: number;
  readonly objectId: number;
  readonly opcode: number;
  /** A copy of this message's bytes that stays valid. */
  retain(): Uint8Array;
}

class View implements MessageView {
  bytes: Uint8Array;
  words: Uint32Array;
  offset = 0;
  size = 0;
  objectId = 0;
  opcode = 0;
  constructor(bytes: Uint8Array, words: Uint32Array) {
    this.bytes = bytes;
    this.words = words;
  }
  retain(): Uint8Array {
    return this.bytes.slice(this.offset, this.offset + this.size);
  }
}

/** Options of a {@link MessageFramer}. */
export interface FramerOptions {
  /** Largest accepted message size: 4096 by default (libwayland < 1.23), at most 65532. */
  readonly maxMessageSize?: number;
  /** Initial buffer capacity in bytes (grows only by bytes actually pushed, never by a header's claim). */
  readonly capacity?: number;
  /** Names the connection in errors. */
  readonly connection?: string;
}

/*
 * Buffer layout (bytes), compacted to 0 before a read when the free tail is too short:
 *
 *   0        start               end                capacity
 *   [consumed][ unframed bytes   ][ free for reads  ]
 *
 * `start` always sits on a message boundary, so it stays a multiple of 4 and `words` can index headers.
 */

/** A per-connection, per-direction streaming framer. */
export class MessageFramer {
  readonly maxMessageSize: number;
  readonly #connection: string | undefined;
  #buf: Uint8Array;
  #words: Uint32Array;
  #start = 0;
  #end = 0;
  readonly #view: View;
  readonly #region: { bytes: Uint8Array; offset: number; length: number };

  constructor(options: FramerOptions = {}) {
    const max = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (!Number.isInteger(max) || max < HEADER_SIZE || max > MAX_MESSAGE_SIZE_LIMIT)
      throw new RangeError(`maxMessageSize ${max} is outside ${HEADER_SIZE}..${MAX_MESSAGE_SIZE_LIMIT}`);
    this.maxMessageSize = max;
    this.#connection = options.connection;
    const cap = Math.max(options.capacity ?? 2 * max, 2 * max) + 3;
    this.#buf = new Uint8Array(cap & ~3);
    this.#words = new Uint32Array(this.#buf.buffer);
    this.#view = new View(this.#buf, this.#words);
    this.#region = { bytes: this.#buf, offset: 0, length: 0 };
  }

  /** Bytes buffered but not yet framed. */
  get pending(): number {
    return this.#end - this.#start;
  }

  /**
   * Bytes still to read before the unframed bytes end on a message boundary: 0 when they do (or at a header
   * {@link MessageFramer.next} will refuse); the header's missing bytes while the last one is short of a header.
   * Walks the unframed headers: meant for after the whole messages were taken, when at most one is left.
   */
  get missing(): number {
    let at = this.#start;
    while (this.#end - at >= HEADER_SIZE) {
      const size = (this.#words[(at >>> 2) + 1] as number) >>> 16;
      if (!this.#sizeAllowed(size)) return 0;
      if (at + size > this.#end) return at + size - this.#end;
      at += size;
    }
    return at === this.#end ? 0 : HEADER_SIZE - (this.#end - at);
  }

  /** A header's size field {@link MessageFramer.next} accepts: a whole header, 4-aligned, within the limit. */
  #sizeAllowed(size: number): boolean {
    return size >= HEADER_SIZE && (size & 3) === 0 && size <= this.maxMessageSize;
  }

  /** The buffer (replaced when it grows; read it again after {@link MessageFramer.reserve}). */
  get bytes(): Uint8Array {
    return this.#buf;
  }

  /** {@link MessageFramer.bytes} as words, for header reads. */
  get words(): Uint32Array {
    return this.#words;
  }

  /** Offset in {@link MessageFramer.bytes} of the first unframed byte, always a message boundary. */
  get unframedOffset(): number {
    return this.#start;
  }

  /**
   * Frames `n` bytes at once without returning views: a caller that checked them as whole messages (a pass-through
   * scan) and copied them. The bytes stay readable until the next {@link MessageFramer.reserve}.
   */
  skip(n: number): void {
    if (n < 0 || (n & 3) !== 0 || n > this.#end - this.#start)
      throw new RangeError(`skip(${n}) with ${this.#end - this.#start} bytes unframed`);
    this.#start += n;
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
    }
  }

  /**
   * Makes room for at least `min` bytes (compacting, growing if needed) and returns the free region for a read
   * (e.g. recvmsg straight into `bytes` at `offset`); then call {@link MessageFramer.commit}.
   */
  reserve(min = this.maxMessageSize): { bytes: Uint8Array; offset: number; length: number } {
    if (this.#buf.length - this.#end < min) this.#compact(min);
    // One reused region per framer: a read per wake-up allocates nothing. It is valid until the next reserve.
    const r = this.#region;
    r.bytes = this.#buf;
    r.offset = this.#end;
    r.length = this.#buf.length - this.#end;
    return r;
  }

  /** Records that `n` bytes were written at the offset {@link MessageFramer.reserve} returned. */
  commit(n: number): void {
    if (n < 0 || this.#end + n > this.#buf.length)
      throw new RangeError(`commit(${n}) beyond the reserved region`);
    this.#end += n;
  }

  /** Copies bytes in (for tests and for callers that already hold a chunk). */
  push(chunk: Uint8Array, offset = 0, length = chunk.length - offset): void {
    const r = this.reserve(length);
    copyBytes(r.bytes, r.offset, chunk, offset, length);
    this.commit(length);
  }

  /**
   * The next complete message, or NEED_MORE. Throws {@link MalformedMessageError} for a header whose size is
   * < 8, not a multiple of 4, or above maxMessageSize; the stream cannot be resynchronised after that.
   * The framer advances by the header's size before returning, whatever a decoder later reads.
   */
  next(): MessageView | NeedMore {
    const avail = this.#end - this.#start;
    if (avail < HEADER_SIZE) return NEED_MORE;
    const w = this.#start >>> 2;
    const objectId = this.#words[w] as number;
    const word1 = this.#words[w + 1] as number;
    const size = word1 >>> 16;
    const opcode = word1 & 0xffff;
    if (!this.#sizeAllowed(size)) {
      const why =
        size < HEADER_SIZE
          ? "is smaller than the 8-byte header"
          : (size & 3) !== 0
            ? "is not a multiple of 4"
            : `exceeds the limit of ${this.maxMessageSize} bytes`;
      throw new MalformedMessageError(
        `malformed message header: size ${size} ${why} (object ${objectId}, opcode ${opcode})`,
        {
          objectId,
          opcode,
          value: size,
          ...(this.#connection !== undefined ? { connection: this.#connection } : {}),
        },
        size,
      );
    }
    if (avail < size) return NEED_MORE;
    const v = this.#view;
    v.offset = this.#start;
    v.size = size;
    v.objectId = objectId;
    v.opcode = opcode;
    this.#start += size;
    if (this.#start === this.#end) {
      // Empty: rewind for free so the next read starts at 0 (views into the old bytes stay valid until then).
      this.#start = 0;
      this.#end = 0;
    }
    return v;
  }

  #compact(min: number): void {
    const pending = this.#end - this.#start;
    if (pending + min > this.#buf.length) {
      let cap = this.#buf.length * 2;
      while (cap < pending + min) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(this.#start, this.#end), 0);
      this.#buf = next;
      this.#words = new Uint32Array(next.buffer);
      this.#view.bytes = this.#buf;
      this.#view.words = this.#words;
    } else if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    }
    this.#start = 0;
    this.#end = pending;
  }
}
