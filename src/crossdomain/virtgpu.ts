// The VirtGpu interface: what a cross-domain channel needs from virtio-gpu, with a kernel and an emulated backend.
// It mirrors the DRM uAPI (§5) closely so that both backends have the same failure modes (one context per
// instance, CONTEXT_INIT first, fences as the only host→guest doorbell).

/** GETPARAM results a cross-domain guest checks (§6.1 step 2). */
export interface VirtGpuParams {
  readonly features3d: boolean;
  readonly resourceBlob: boolean;
  readonly hostVisible: boolean;
  readonly contextInit: boolean;
  /** SUPPORTED_CAPSET_IDs bitmask; bit 5 is cross-domain. */
  readonly capsetMask: number;
  /**
   * The guest's page size: rings are one page (the host fills a READ up to the ring blob's size minus its header),
   * 16 KiB on 16 KiB-page guests such as muvm on Apple Silicon.
   */
  readonly pageSize: number;
}

/** CONTEXT_INIT parameters (§5.3). */
export interface ContextInitParams {
  readonly capsetId: number;
  readonly numRings: number;
  readonly pollRingsMask: number;
}

/** RESOURCE_CREATE_BLOB request (§5.4). */
export interface BlobRequest {
  /** 1 GUEST, 2 HOST3D. */
  readonly blobMem: number;
  /** MAPPABLE 1 | SHAREABLE 2. */
  readonly blobFlags: number;
  readonly size: number;
  /** Host item id for HOST3D (a RECEIVE identifier or an image-requirements template); 0 for GUEST. */
  readonly blobId: number;
}

/** A created or imported blob: GEM handle (local) and virtio-gpu resource id (device-global). */
export interface BlobHandle {
  readonly bo: number;
  readonly resourceId: number;
  readonly size: number;
}

/** How the host mapped a blob's memory: "unknown" when the backend cannot tell (kernel: the guest cannot, P9). */
export type BlobAccess = "read-only" | "read-write" | "unknown";

/** A CPU mapping of a blob. `bytes` is detached by {@link BlobMapping.unmap}; never rely on GC. */
export interface BlobMapping {
  /** The mapped bytes: blob bytes [base, base + bytes.byteLength). */
  readonly bytes: Uint8Array;
  /** The blob offset of bytes[0]: 0 unless a window was asked for and the backend could map just it. */
  readonly base: number;
  readonly writable: boolean;
  unmap(): void;
}

/** The part of a blob a caller needs mapped: bytes [offset, offset + length). */
export interface BlobWindow {
  readonly offset: number;
  readonly length: number;
}

/** An exported blob: an fd a client can mmap (a dmabuf with the kernel backend, a memfd when emulated). */
export interface ExportedBlob {
  readonly fd: number;
  readonly access: BlobAccess;
}

/** EXECBUFFER options (§5.6). */
export interface ExecbufferOptions {
  /** Ring index, submitted with VIRTGPU_EXECBUF_RING_IDX; omitted: the global timeline (fence signalled at once). */
  readonly ring?: number;
  /** BOs whose reservation gets the fence, so that {@link VirtGpu.wait} on them waits for this submission. */
  readonly boHandles?: readonly number[];
}

/**
 * One virtio-gpu context (a DRM fd, or one connection to `crossway device`). All methods that talk to the device
 * are ordered: submissions reach the host in call order, as on the control virtqueue.
 */
export interface VirtGpu {
  /** "kernel:/dev/dri/renderD128" or "emulated:/run/crossway-device.sock": for messages. */
  readonly description: string;
  /**
   * The state a native fast path shares with this context's channel (fast-state.ts), when the backend has one (the
   * emulated backend keeps its fence counter and polled fences there); undefined for backends without a fast path.
   */
  readonly fastState?: Float64Array;
  /** What a native fast path needs of this backend, or null when it has none (see fast-path.ts). */
  fastPathSupport?(): EmulatedFastPathSupport | null;
  getParams(): Promise<VirtGpuParams>;
  /** GET_CAPS: `size` bytes of capset `capsetId`. */
  getCaps(capsetId: number, version: number, size: number): Promise<Uint8Array>;
  /** CONTEXT_INIT; must be the first context-creating call (P21). */
  initContext(params: ContextInitParams): Promise<void>;
  createBlob(req: BlobRequest): Promise<BlobHandle>;
  /**
   * Maps the blob, or with `window` at least that part of it: the emulated backend maps just the window (64 KiB
   * aligned), the kernel backend the whole blob (kernels before the 2025 partial-map patch reject partial maps, P16).
   * Read-only when the host mapped it so.
   */
  mapBlob(blob: BlobHandle, window?: BlobWindow): Promise<BlobMapping>;
  /**
   * An fd of the blob's memory that file syscalls reach (copy_file_range, pwrite), owned by the backend and valid
   * until closeBlob; null when there is none (kernel: the memory is a GEM object, reachable only by mapping it).
   */
  fileFd(blob: BlobHandle): number | null;
  /** PRIME export of a blob for a client; the caller owns the fd. */
  exportBlob(blob: BlobHandle): Promise<ExportedBlob>;
  /** PRIME import + RESOURCE_INFO: the resource id to send as a type-1 identifier. Fails for plain memfds. */
  importBlob(fd: number): Promise<BlobHandle>;
  /** GEM_CLOSE (refcounting imported handles is the caller's business, P18). */
  closeBlob(blob: BlobHandle): void;
  /**
   * EXECBUFFER of `cmd` (copied before return). Returns false when the submission queue is above its high-water
   * mark (only the emulated backend queues; the kernel copies synchronously): back-pressure as a value, see onDrain.
   */
  execbuffer(cmd: Uint8Array, opts?: ExecbufferOptions): boolean;
  /** DRM_IOCTL_VIRTGPU_WAIT: resolves when every fence attached to `blob` has signalled. */
  wait(blob: BlobHandle): Promise<void>;
  /** Called for each fence-signalled event of a polled ring (VIRTGPU_EVENT_FENCE_SIGNALED). */
  onFence: () => void;
  /** Called when the submission queue drains after {@link execbuffer} returned false. */
  onDrain: () => void;
  /**
   * Called when the host reports a failed command (the guest kernel would only log "response 0x1200"), or the
   * device connection is lost. The kernel backend cannot see these and never calls it.
   */
  onHostError: (message: string) => void;
  /** Closes the context: the host drops its cross-domain state and its socket. Idempotent. */
  close(): void;
}

/** The emulated backend's side of a native fast path: its device socket and polled-fence array. */
export interface EmulatedFastPathSupport {
  /** The device socket's fd. */
  readonly deviceFd: number;
  /** Hands the device socket's watcher a native fast path (null to take it back). */
  setFastPath(fast: object | null): void;
  /** The polled-fence array; `onGrow` is called with each new one. */
  polledFences(onGrow: (fences: Float64Array) => void): Float64Array;
  /**
   * Queues bytes of a frame the native side began writing; true while some of them wait for the socket (its drain
   * is reported through onDrain), false when they were all written at once.
   */
  queueFrameRemainder(bytes: Uint8Array): boolean;
  /** Bytes and fds the native side read from the device socket and does not handle: taken as if read here. */
  received(bytes: Uint8Array, fds: Int32Array | undefined): void;
}
