// A memory mapping of an fd with an explicit unmap() that detaches its bytes; never left to the garbage collector.
import { native } from "../native.ts";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "./constants.ts";

/** Options of {@link Mapping.map}. */
export interface MapOptions {
  /** Map PROT_READ|PROT_WRITE instead of PROT_READ. */
  writable?: boolean;
  /** File offset (a multiple of the page size). */
  offset?: number;
}

/**
 * A MAP_SHARED mapping. Touching bytes beyond the end of a file that shrank after mapping raises SIGBUS, which
 * kills the process: code copying from a peer's memfd must use pread (see native.pread) unless the memfd is sealed
 * against shrinking (F_SEAL_SHRINK).
 */
export class Mapping {
  /** Length of the mapping in bytes. */
  readonly length: number;
  private buffer: ArrayBuffer | undefined;
  private view: Uint8Array | undefined;

  private constructor(buffer: ArrayBuffer) {
    this.buffer = buffer;
    this.view = new Uint8Array(buffer);
    this.length = buffer.byteLength;
  }

  /** mmap(fd, length) shared; throws a SystemError-shaped error (code/errno/syscall) on failure. */
  static map(fd: number, length: number, opts: MapOptions = {}): Mapping {
    const prot = opts.writable === true ? PROT_READ | PROT_WRITE : PROT_READ;
    return new Mapping(native.mmap(fd, length, prot, MAP_SHARED, opts.offset ?? 0));
  }

  /** True until {@link unmap}. */
  get mapped(): boolean {
    return this.buffer !== undefined;
  }

  /** The mapped bytes. Throws after unmap(), so a stale view cannot be taken by mistake. */
  get bytes(): Uint8Array {
    if (this.view === undefined) throw new RangeError("Mapping.bytes: the mapping was unmapped");
    return this.view;
  }

  /**
   * munmap and detach: every view taken from {@link bytes} becomes zero-length, so no code can reach the unmapped
   * pages. Idempotent.
   */
  unmap(): void {
    const b = this.buffer;
    if (b === undefined) return;
    this.buffer = undefined;
    this.view = undefined;
    native.munmap(b);
  }
}
