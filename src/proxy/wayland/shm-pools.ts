// Shadows wl_shm pools: each client pool is mirrored by a host blob, and buffers are copied into it on commit.
import type { HostBlob } from "../../crossdomain/channel.ts";
import type { BlobMapping } from "../../crossdomain/virtgpu.ts";
import { MAP_SHARED, PROT_READ } from "../../fd/constants.ts";
import { native } from "../../native.ts";
import type { Rect } from "./damage.ts";
import {
  type CopyResult,
  copyRects,
  type ShmBufferLayout,
  type ShmSource,
  shmFormatBpp,
} from "./shm-copy.ts";
import { ShadowBuffer } from "./surface-shadow.ts";

/** One access per this many bytes touches every page (4 KiB pages; larger pages are touched more than once). */
const TOUCH_STEP = 4096;

/** Client pool windows start and end on 64 KiB: a multiple of every guest page size (4 KiB, 16 KiB, 64 KiB). */
const MAP_ALIGN = 64 * 1024;

/**
 * One host blob backing a pool (a pool gets a new one when it grows past the blob). Buffers created while it was
 * current keep using it, so it is reference counted: the pool while current, plus each buffer created in it.
 * When the last reference goes, `onIdle` decides: keep it for the client's next pool of the same size
 * ({@link revive}) or {@link dispose} of it.
 *
 * Only the window of the blob that its buffers use is mapped, widened as buffers come ({@link cover}): clients
 * reserve far more than they draw into (foot: a 512 MiB pool, its buffer 128 MiB in), and V8 counts a mapping's
 * whole length as external memory, stopping for a full GC to make room for a big one.
 */
export class PoolBlob {
  private refs = 1;
  private window: BlobMapping | null = null;
  /** A mapping being made (cover() calls are serialized behind it). */
  private mapping: Promise<void> | null = null;
  private disposed = false;

  constructor(
    readonly blob: HostBlob,
    /** The pool-size bucket it was made for: only a pool of the same bucket may reuse it. */
    readonly bucket: number,
    /** Called when the last reference goes. */
    private readonly onIdle: (b: PoolBlob) => void = (b) => b.dispose(),
  ) {}

  /** Capacity in bytes (the host's blob size, at least the pool size it was made for). */
  get capacity(): number {
    return this.blob.size;
  }

  /** The mapped window: it holds every buffer's bytes once their create_buffer's {@link cover} settled. */
  get mapped(): BlobMapping | null {
    return this.window;
  }

  /** Whether blob bytes [start, end) are mapped now. */
  covers(start: number, end: number): boolean {
    const w = this.window;
    return w !== null && start >= w.base && end <= w.base + w.bytes.byteLength;
  }

  /** Maps blob bytes [start, end), widening the window to the union with what was mapped (then unmapped). */
  async cover(start: number, end: number): Promise<void> {
    while (this.mapping !== null) await this.mapping;
    if (this.disposed || this.covers(start, end)) return;
    const w = this.window;
    const lo = w === null ? start : Math.min(start, w.base);
    const hi = w === null ? end : Math.max(end, w.base + w.bytes.byteLength);
    this.mapping = this.blob.map({ offset: lo, length: hi - lo }).then(
      (m) => {
        this.mapping = null;
        if (this.disposed) {
          m.unmap();
          return;
        }
        this.window?.unmap();
        this.window = m;
      },
      (err: unknown) => {
        this.mapping = null;
        throw err;
      },
    );
    await this.mapping;
  }

  ref(): void {
    this.refs++;
  }

  /** Drops a reference; the last one hands the blob to its owner's onIdle. */
  unref(): void {
    if (--this.refs > 0) return;
    this.onIdle(this);
  }

  /** An idle blob becomes a new pool's: one reference again. */
  revive(): void {
    this.refs = 1;
  }

  /** Unmaps and closes the blob (the host's pool keeps its own fd). Only for an idle blob. */
  dispose(): void {
    this.disposed = true;
    this.window?.unmap();
    this.window = null;
    this.blob.close();
  }
}

/**
 * The guest side of a client's wl_shm_pool: the client's fd (never sent anywhere), its size, and the current
 * host blob. The client fd stays open while the pool object or any of its buffers lives.
 */
export class ShmPool {
  private refs = 1;
  /**
   * A read-only mapping of the part of the client's fd its buffers use (pool bytes [base, base + byteLength)), read
   * only through native.copyGuarded (SIGBUS-safe). Only that window: clients reserve far more than they draw into
   * (foot makes 512 MiB pools for a 2 MB buffer), and V8 counts a mapping's whole length as external memory and
   * runs a full GC to make room for a big one.
   */
  private mapping: ArrayBuffer | null = null;
  /** False once mmap refused the fd (not a memfd or regular file): copies use pread from then on. */
  private mappable = true;
  private cachedSource: ShmSource | null = null;

  constructor(
    readonly id: number,
    /** The wl_shm object the pool was created from: needed to recreate the host pool on growth. */
    readonly shmId: number,
    readonly clientFd: number,
    public size: number,
    public current: PoolBlob,
  ) {}

  /**
   * Where copies of pool bytes [start, end) read from. The window is kept and only widened (to the union) when a
   * buffer lies outside it: fresh mappings cost a page fault per page, so commits must reuse one. A mapping past
   * the file's end is fine: only native.copyGuarded reads it, and it absorbs the SIGBUS.
   */
  source(start: number, end: number): ShmSource {
    const cur = this.cachedSource;
    if (
      cur !== null &&
      (cur.mapping === null || (start >= cur.base && end <= cur.base + cur.mapping.byteLength))
    )
      return cur;
    let lo = Math.floor(start / MAP_ALIGN) * MAP_ALIGN;
    let hi = Math.min(Math.ceil(end / MAP_ALIGN) * MAP_ALIGN, Math.max(this.size, end));
    if (cur?.mapping) {
      lo = Math.min(lo, cur.base);
      hi = Math.max(hi, cur.base + cur.mapping.byteLength);
    }
    this.unmap();
    if (this.mappable) {
      try {
        this.mapping = native.mmap(this.clientFd, hi - lo, PROT_READ, MAP_SHARED, lo);
      } catch {
        // Not mappable (not a memfd or regular file): the pread path is always available.
        this.mappable = false;
      }
    }
    this.cachedSource = { fd: this.clientFd, mapping: this.mapping, base: this.mapping === null ? 0 : lo };
    return this.cachedSource;
  }

  /** wl_shm_pool.resize to a larger size: the window stays valid (buffers only move within the pool). */
  grow(size: number): void {
    this.size = size;
  }

  private unmap(): void {
    if (this.mapping !== null) native.munmap(this.mapping);
    this.mapping = null;
    this.cachedSource = null;
  }

  ref(): void {
    this.refs++;
  }

  /** Drops a reference; the last closes the client's fd and releases the current blob. */
  unref(): void {
    if (--this.refs > 0) return;
    this.unmap();
    native.close(this.clientFd);
    this.current.unref();
  }
}

/** A wl_buffer created from a shadowed pool. */
export class ShmBuffer extends ShadowBuffer {
  readonly layout: ShmBufferLayout;
  /** No copy of this buffer was made yet: the first is of the whole buffer ({@link copyWhole}). */
  private fresh = true;
  /** The first copy went file to file: the mappings later copies use have not touched its pages ({@link warm}). */
  cold = false;
  private released = false;

  constructor(
    id: number,
    readonly pool: ShmPool,
    readonly blob: PoolBlob,
    offset: number,
    width: number,
    height: number,
    stride: number,
    format: number,
  ) {
    super(id, width, height);
    this.layout = { offset, width, height, stride, bpp: shmFormatBpp(format) };
    pool.ref();
    blob.ref();
  }

  /** Copies `rects` of this buffer from the client's pool into its host blob. */
  copy(rects: readonly Rect[]): CopyResult {
    const { offset, stride, height } = this.layout;
    const first = this.fresh;
    this.fresh = false;
    if (first) {
      const whole = this.copyWhole();
      if (whole !== null) return whole;
    }
    const source = this.pool.source(offset, offset + stride * height);
    const dst = this.blob.mapped;
    // create_buffer mapped the window (and held later requests until it was): absent only if that failed.
    if (dst === null) return { ok: false, at: offset };
    if (first) this.populate(source, dst);
    return copyRects(source, dst, this.layout, rects);
  }

  /**
   * The first copy, always of the whole buffer (the host must never see stale pixels), by copy_file_range between
   * the client's file and the blob's memory when both are files: the kernel copies page to page, where copying
   * through fresh mappings costs a page fault per page in each: for foot's first 1.4 MB frame, 7.3 ms in the guest
   * (strace) and 7.4 ms in C on this VM, against 0.55 ms by copy_file_range. Null when the files do not allow it
   * (kernel backend, a client file on another filesystem): the mappings copy it then.
   */
  private copyWhole(): CopyResult | null {
    const { offset, stride, height } = this.layout;
    const bytes = stride * height;
    const out = this.blob.blob.fileFd;
    // Never past the blob's end: the write would grow the host's memory.
    if (out === null || offset + bytes > this.blob.capacity) return null;
    const n = native.copyFileRange(this.pool.clientFd, offset, out, offset, bytes);
    if (n < 0) return null;
    // Short: the client's file ends inside its buffer (it shrank the pool), as the pread path reports it.
    if (n < bytes) return { ok: false, at: offset + n };
    this.cold = true;
    return { ok: true, bytes };
  }

  /**
   * After a file-to-file first copy, once its commit is on its way: one access to every page of the buffer in both
   * mappings, so that the first-access cost of each page (10-20 us on this VM) is paid now, while the compositor
   * draws the first frame, not spread over the next damage copies (a 64x64 damage stream paid 20-30 us more per
   * frame without this). The client's side is read through the SIGBUS guard (the client may have shrunk its file).
   */
  warm(): void {
    if (!this.cold || this.released) return;
    this.cold = false;
    const { offset, stride, height } = this.layout;
    const bytes = stride * height;
    const dst = this.blob.mapped;
    const to = dst === null ? -1 : this.within(dst.base, dst.bytes.byteLength);
    if (dst !== null && to >= 0) native.touchPages(dst.bytes, to, bytes);
    const source = this.pool.source(offset, offset + bytes);
    const m = source.mapping;
    const from = m === null ? -1 : this.within(source.base, m.byteLength);
    if (m === null || from < 0) return;
    const pages = Math.ceil(bytes / TOUCH_STEP);
    native.copyGuarded(m, from, new Uint8Array(pages), 0, 1, pages, TOUCH_STEP, 1);
  }

  /**
   * Before the first copy (always of the whole buffer), faults in the buffer's pages of both mappings with one call
   * each. Copying would fault them one page at a time, and a fault costs about 10 us on this VM: a 4 MiB copy between
   * fresh mappings took 16-21 ms, 10-12 ms with both populated first. Advisory: a kernel that cannot (before 5.14,
   * PFN-mapped host memory, a shrunk client file) leaves the faults to the copy.
   */
  private populate(source: ShmSource, dst: BlobMapping): void {
    const bytes = this.layout.stride * this.layout.height;
    const to = this.within(dst.base, dst.bytes.byteLength);
    if (to >= 0) native.populate(dst.bytes, to, bytes, true);
    const m = source.mapping;
    const from = m === null ? -1 : this.within(source.base, m.byteLength);
    if (m !== null && from >= 0) native.populate(m, from, bytes, false);
  }

  /** Where the buffer's bytes start in a window of its pool mapped at `base` for `length` bytes, or -1 if outside. */
  private within(base: number, length: number): number {
    const at = this.layout.offset - base;
    return at >= 0 && at + this.layout.stride * this.layout.height <= length ? at : -1;
  }

  /** The wl_buffer is gone: drop the references it held. */
  release(): void {
    this.released = true;
    this.blob.unref();
    this.pool.unref();
  }
}
