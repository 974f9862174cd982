// Encodes Wayland messages into a growable per-connection output buffer plus its outgoing fd list.
import { copyBytes } from "../bytes.ts";
import type { ArgValues } from "./arg-values.ts";
import { WireEncodeError } from "./errors.ts";
import { DEFAULT_MAX_MESSAGE_SIZE, HEADER_SIZE, type MessageView } from "./framer.ts";
import { ArgKind, type MessageDesc } from "./protocol-registry.ts";

const utf8 = new TextEncoder();
/** Messages up to this many bytes are copied by raw() word by word. */
const RAW_WORD_COPY = 256;
/** raw()'s fds when a message carries none: shared, so forwarding a message allocates no array. */
const NO_FDS: readonly number[] = Object.freeze([]);

/** Exact UTF-8 byte length of `s` (lone surrogates count as U+FFFD, 3 bytes, as TextEncoder writes them). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/*
 * Output layout: [ message | message | ... | open message being written ]
 *                0                          ^msgStart                  ^length
 * The header's size word of the open message is patched by end(). fds queue beside the bytes, in message order;
 * the transport sends them with the first byte of the chunk that contains their message (≤ 28 per sendmsg).
 */

/** Builds messages into one buffer. Not re-entrant: begin → args → end, then the next message. */
export class MessageWriter {
  readonly maxMessageSize: number;
  #buf: Uint8Array;
  #words: Uint32Array;
  #length = 0;
  #msgStart = -1;
  /** Outgoing fds in message order (owned by the caller until sent). */
  readonly fds: number[] = [];
  /**
   * Byte offset of the message each fd belongs to (parallel to {@link MessageWriter.fds}). A transport that may
   * send at most 28 fds per sendmsg (libwayland MAX_FDS_OUT) cuts its chunk before the message of the 29th fd.
   */
  readonly fdMessageOffsets: number[] = [];

  constructor(options: { maxMessageSize?: number; capacity?: number } = {}) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#buf = new Uint8Array(Math.max(options.capacity ?? 8192, this.maxMessageSize) & ~3);
    this.#words = new Uint32Array(this.#buf.buffer);
  }

  /** Bytes written (complete messages only once end() ran). */
  get length(): number {
    return this.#length;
  }

  /** The encoded bytes (a view, valid until the next write or reset). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#length);
  }

  /** Forgets everything written (after the transport sent it). */
  reset(): void {
    this.#length = 0;
    this.#msgStart = -1;
    // Truncating is a runtime call in V8; most batches carry no fds.
    if (this.fds.length !== 0) {
      this.fds.length = 0;
      this.fdMessageOffsets.length = 0;
    }
  }

  #ensure(extra: number): void {
    const need = this.#length + extra;
    if (need <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#length));
    this.#buf = next;
    this.#words = new Uint32Array(next.buffer);
  }

  #word(v: number): void {
    if (this.#msgStart < 0) throw new WireEncodeError("argument written outside begin()/end()");
    this.#ensure(4);
    this.#words[this.#length >>> 2] = v;
    this.#length += 4;
  }

  /** Starts a message to `objectId` with `opcode`. */
  begin(objectId: number, opcode: number): this {
    if (this.#msgStart >= 0) throw new WireEncodeError("begin() while another message is open");
    if (!Number.isInteger(objectId) || objectId < 1 || objectId > 0xffffffff)
      throw new WireEncodeError(`object id ${objectId} is not a non-zero u32`, { value: objectId });
    if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xffff)
      throw new WireEncodeError(`opcode ${opcode} is not a u16`, { value: opcode });
    this.#ensure(HEADER_SIZE);
    this.#msgStart = this.#length;
    this.#words[this.#length >>> 2] = objectId;
    this.#words[(this.#length >>> 2) + 1] = opcode;
    this.#length += HEADER_SIZE;
    return this;
  }

  /** int argument (-2^31 .. 2^31-1). */
  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
      throw new WireEncodeError(`int ${v} is out of range`, { value: v });
    this.#word(v >>> 0);
    return this;
  }

  /** uint argument (0 .. 2^32-1); also object ids and new ids. */
  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw new WireEncodeError(`uint ${v} is out of range`, { value: v });
    this.#word(v);
    return this;
  }

  /** fixed argument given as a number: rounded to 1/256, two's complement 24.8 (-1.0 is 0xffffff00). */
  fixed(v: number): this {
    const raw = Math.round(v * 256);
    if (!Number.isFinite(raw) || raw < -0x80000000 || raw > 0x7fffffff)
      throw new WireEncodeError(`fixed ${v} is out of range`, { value: v });
    this.#word(raw >>> 0);
    return this;
  }

  /** fixed argument given as its raw 24.8 integer. */
  fixedRaw(raw: number): this {
    return this.int(raw);
  }

  /** string argument: UTF-8, length counts the NUL, zero padding to 4; null writes length 0. */
  string(s: string | null): this {
    if (s === null) return this.uint(0);
    const len = utf8Length(s) + 1;
    this.#word(len);
    const padded = (len + 3) & ~3;
    this.#ensure(padded);
    const start = this.#length;
    utf8.encodeInto(s, this.#buf.subarray(start, start + len - 1));
    this.#buf.fill(0, start + len - 1, start + padded);
    this.#length += padded;
    return this;
  }

  /** string argument from raw bytes (without NUL); null writes length 0. */
  stringBytes(b: Uint8Array | null): this {
    if (b === null) return this.uint(0);
    const len = b.length + 1;
    this.#word(len);
    const padded = (len + 3) & ~3;
    this.#ensure(padded);
    this.#buf.set(b, this.#length);
    this.#buf.fill(0, this.#length + b.length, this.#length + padded);
    this.#length += padded;
    return this;
  }

  /** array argument: length in bytes, then the bytes, zero padding to 4. */
  array(b: Uint8Array): this {
    this.#word(b.length);
    const padded = (b.length + 3) & ~3;
    this.#ensure(padded);
    this.#buf.set(b, this.#length);
    this.#buf.fill(0, this.#length + b.length, this.#length + padded);
    this.#length += padded;
    return this;
  }

  /** fd argument: nothing on the wire; queued beside the bytes. */
  fd(fd: number): this {
    if (this.#msgStart < 0) throw new WireEncodeError("fd written outside begin()/end()");
    if (!Number.isInteger(fd) || fd < 0)
      throw new WireEncodeError(`fd ${fd} is not a descriptor`, { value: fd });
    this.fds.push(fd);
    this.fdMessageOffsets.push(this.#msgStart);
    return this;
  }

  /** Closes the open message: patches its size; throws if it exceeds maxMessageSize (and drops it). */
  end(): this {
    const start = this.#msgStart;
    if (start < 0) throw new WireEncodeError("end() without begin()");
    const size = this.#length - start;
    this.#msgStart = -1;
    if (size > this.maxMessageSize) {
      const id = this.#words[start >>> 2];
      this.#length = start;
      // Drop the fds this message queued too: the caller still owns them.
      while (
        this.fdMessageOffsets.length > 0 &&
        this.fdMessageOffsets[this.fdMessageOffsets.length - 1] === start
      ) {
        this.fdMessageOffsets.pop();
        this.fds.pop();
      }
      throw new WireEncodeError(
        `message to object ${id} is ${size} bytes, above the limit ${this.maxMessageSize}`,
        {
          value: size,
        },
      );
    }
    const w = (start >>> 2) + 1;
    this.#words[w] = ((size << 16) | ((this.#words[w] as number) & 0xffff)) >>> 0;
    return this;
  }

  /** Copies a framed message unchanged, with its fds (pass the ones the message carried, in order). */
  raw(view: MessageView, fds: ArrayLike<number> = NO_FDS, fdCount = fds.length): this {
    if (this.#msgStart >= 0) throw new WireEncodeError("raw() while a message is open");
    this.#ensure(view.size);
    const start = this.#length;
    if (view.size <= RAW_WORD_COPY) {
      // Messages and this writer are both 4-aligned: a few word stores, no view allocated (see copyBytes).
      const to = start >>> 2;
      const from = view.offset >>> 2;
      const words = this.#words;
      const src = view.words;
      for (let i = 0; i < view.size >>> 2; i++) words[to + i] = src[from + i]!;
    } else {
      copyBytes(this.#buf, start, view.bytes, view.offset, view.size);
    }
    this.#length += view.size;
    for (let i = 0; i < fdCount; i++) {
      this.fds.push(fds[i] as number);
      this.fdMessageOffsets.push(start);
    }
    return this;
  }

  /**
   * Copies complete messages that carry no fds, `src[offset, offset + length)` (a pass-through run); the same shape
   * as FdOutputQueue.appendRange, so either can take a run ({@link PassThroughSink}).
   */
  appendRange(src: Uint8Array, offset: number, length: number): this {
    if (this.#msgStart >= 0) throw new WireEncodeError("appendRange() while a message is open");
    this.#ensure(length);
    copyBytes(this.#buf, this.#length, src, offset, length);
    this.#length += length;
    return this;
  }

  /** Copies one complete message kept with {@link MessageView.retain} (its fds are the caller's business). */
  rawBytes(message: Uint8Array): this {
    if (this.#msgStart >= 0) throw new WireEncodeError("rawBytes() while a message is open");
    this.#ensure(message.length);
    this.#buf.set(message, this.#length);
    this.#length += message.length;
    return this;
  }

  /**
   * Writes the wl_display.error event libwayland's server would send for `err` (wl_resource_post_error on the
   * display resource: object_id, code, message), e.g. for a proxy that rejects a client's request.
   */
  displayError(err: { objectId: number; code: number; message: string }): this {
    return this.begin(1, 0).uint(err.objectId).uint(err.code).string(err.message).end();
  }

  /** Re-encodes decoded arguments (e.g. after rewriting some words) as a message to `objectId`. */
  encode(objectId: number, desc: MessageDesc, args: ArgValues): this {
    this.begin(objectId, desc.opcode);
    const kinds = desc.kinds;
    for (let i = 0; i < kinds.length; i++) {
      switch (kinds[i]) {
        case ArgKind.STRING: {
          const len = args.word[i] as number;
          if (len === 0) this.uint(0);
          else this.stringBytes(args.bytes.subarray(args.offset[i], (args.offset[i] as number) + len - 1));
          break;
        }
        case ArgKind.ARRAY:
          this.array(args.array(i));
          break;
        case ArgKind.FD:
          this.fd(args.word[i] as number);
          break;
        default:
          this.#word(args.word[i] as number);
      }
    }
    return this.end();
  }
}
