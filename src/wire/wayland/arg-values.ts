// Decoded arguments of one message as flat typed arrays (no per-argument objects), reused message after message.
import { MAX_ARGS } from "./protocol-registry.ts";

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * Arguments of the last decoded message. Scalars (int, uint, fixed, object, new_id, fd) are raw 32-bit words;
 * strings and arrays are (offset, length) windows into the receive buffer, valid until the next read, and turned
 * into JS values only when asked for. One instance per connection direction is reused for every message.
 */
export class ArgValues {
  /** Number of wire arguments. */
  count = 0;
  /** The buffer string/array windows point into. */
  bytes: Uint8Array = new Uint8Array(0);
  /** Raw word per argument; for strings/arrays the wire length (strings: bytes including the NUL; 0 = null). */
  readonly word = new Uint32Array(MAX_ARGS);
  /** Payload byte offset in {@link ArgValues.bytes} of string/array arguments. */
  readonly offset = new Int32Array(MAX_ARGS);

  /** uint argument `i`. */
  uint(i: number): number {
    return this.word[i] as number;
  }

  /** int argument `i` (two's complement). */
  int(i: number): number {
    return (this.word[i] as number) | 0;
  }

  /** fixed argument `i` as the raw two's-complement 24.8 integer. */
  fixedRaw(i: number): number {
    return (this.word[i] as number) | 0;
  }

  /** fixed argument `i` as a number (exact: 24.8 fits a double). */
  fixed(i: number): number {
    return ((this.word[i] as number) | 0) / 256;
  }

  /** object/new_id id of argument `i` (0 = null). */
  id(i: number): number {
    return this.word[i] as number;
  }

  /** fd argument `i` (owned by whoever took the message). */
  fd(i: number): number {
    return this.word[i] as number;
  }

  /** String argument `i` without its NUL (null for a null string). Allocates; not for hot paths. */
  string(i: number): string | null {
    const len = this.word[i] as number;
    if (len === 0) return null;
    const off = this.offset[i] as number;
    let end = off;
    const stop = off + len - 1;
    // Stop at the first NUL as a C reader (libwayland's "%s") would.
    while (end < stop && this.bytes[end] !== 0) end++;
    return utf8.decode(this.bytes.subarray(off, end));
  }

  /** String argument `i` as bytes without the NUL (a view; null for a null string). */
  stringBytes(i: number): Uint8Array | null {
    const len = this.word[i] as number;
    if (len === 0) return null;
    const off = this.offset[i] as number;
    return this.bytes.subarray(off, off + len - 1);
  }

  /** Array argument `i` (a view into the receive buffer). */
  array(i: number): Uint8Array {
    const off = this.offset[i] as number;
    return this.bytes.subarray(off, off + (this.word[i] as number));
  }

  /** Compares string argument `i` with an ASCII string without allocating. */
  stringEquals(i: number, s: string): boolean {
    const len = this.word[i] as number;
    if (len === 0 || len - 1 !== s.length) return false;
    const off = this.offset[i] as number;
    for (let k = 0; k < s.length; k++) if (this.bytes[off + k] !== s.charCodeAt(k)) return false;
    return true;
  }
}
