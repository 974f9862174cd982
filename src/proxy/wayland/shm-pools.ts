// Shadows wl_shm pools: each client pool is mirrored by a host blob, and buffers are copied into it on commit.
import type { HostBlob } from "../../crossdomain/channel.ts";
import type { BlobMapping } from "../../crossdomain/virtgpu.ts";
import { MAP_SHARED, PROT_READ } from "../../fd/constants.ts";
import { native } from "../../native.ts";
import type { Rect } from "./damage.ts";
import { type CopyResult, copyRects, type ShmBufferLayout, shmFormatBpp } from "./shm-copy.ts";
import { ShadowBuffer } from "./surface-shadow.ts";

/**
 * One host blob backing a pool (a pool gets a new one when it grows past the blob). Buffers created while it was
 * current keep using it, so it is reference counted: the pool while current, plus each buffer created in it.
 * When the last reference goes, `onIdle` decides: keep it for the client's next pool of the same size
 * ({@link revive}) or {@link dispose} of it.
 */
export class PoolBlob {
  private refs = 1;

  constructor(
    readonly blob: HostBlob,
    readonly mapping: BlobMapping,
    /** The pool-size bucket it was made for: only a pool of the same bucket may reuse it. */
    readonly bucket: number,
    /** Called when the last reference goes. */
    private readonly onIdle: (b: PoolBlob) => void = (b) => b.dispose(),
  ) {}

  /** Capacity in bytes (the host's blob size, at least the pool size it was made for). */
  get capacity(): number {
    return this.mapping.bytes.byteLength;
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
    this.mapping.unmap();
    this.blob.close();
  }
}

/**
 * The guest side of a client's wl_shm_pool: the client's fd (never sent anywhere), its size, and the current
 * host blob. The client fd stays open while the pool object or any of its buffers lives.
 */
export class ShmPool {
  private refs = 1;
  /** A read-only mapping of the client's fd, read only through native.copyGuarded (SIGBUS-safe). */
  private mapping: ArrayBuffer | null;
  private cachedSource: { fd: number; mapping: ArrayBuffer | null } | null = null;

  constructor(
    readonly id: number,
    /** The wl_shm object the pool was created from: needed to recreate the host pool on growth. */
    readonly shmId: number,
    readonly clientFd: number,
    public size: number,
    public current: PoolBlob,
  ) {
    this.mapping = ShmPool.map(clientFd, size);
  }

  /**
   * Maps the pool once (fresh mappings cost a page fault per 4 KiB, so a copy per commit must reuse one). A mapping
   * past the file's end is fine: only native.copyGuarded reads it, and it absorbs the SIGBUS.
   */
  private static map(fd: number, size: number): ArrayBuffer | null {
    try {
      return native.mmap(fd, size, PROT_READ, MAP_SHARED, 0);
    } catch {
      // Not mappable (not a memfd or regular file): the pread path is always available.
      return null;
    }
  }

  /** Where copies read from; one object per pool (rebuilt only when the pool grows), not one per commit. */
  source(): { fd: number; mapping: ArrayBuffer | null } {
    this.cachedSource ??= { fd: this.clientFd, mapping: this.mapping };
    return this.cachedSource;
  }

  /** wl_shm_pool.resize to a larger size: the mapping follows the new size. */
  grow(size: number): void {
    this.size = size;
    this.cachedSource = null;
    if (this.mapping !== null) native.munmap(this.mapping);
    this.mapping = ShmPool.map(this.clientFd, size);
  }

  ref(): void {
    this.refs++;
  }

  /** Drops a reference; the last closes the client's fd and releases the current blob. */
  unref(): void {
    if (--this.refs > 0) return;
    if (this.mapping !== null) native.munmap(this.mapping);
    native.close(this.clientFd);
    this.current.unref();
  }
}

/** A wl_buffer created from a shadowed pool. */
export class ShmBuffer extends ShadowBuffer {
  readonly layout: ShmBufferLayout;

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
    return copyRects(this.pool.source(), this.blob.mapping.bytes, this.layout, rects);
  }

  /** The wl_buffer is gone: drop the references it held. */
  release(): void {
    this.blob.unref();
    this.pool.unref();
  }
}
