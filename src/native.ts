// Typed loader for the native syscall addon (native/); explains in one sentence what to do when it is missing.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { CrosswayError } from "./errors.ts";

/** Readiness bits for {@link NativeWatcher}, matching libuv's UV_READABLE/UV_WRITABLE/UV_DISCONNECT. */
export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
export const POLL_DISCONNECT = 4;

/** Returned by non-blocking calls instead of throwing when the kernel says EAGAIN/EWOULDBLOCK. */
export const AGAIN = -1;

/** Most fds one sendmsg/recvmsg carries (libwayland's MAX_FDS_OUT and the cross-domain identifier limit). */
export const MAX_FDS_PER_MSG = 28;

/** fstat fields the addon reports, as numbers (sizes fit in 2^53). */
export interface NativeStat {
  mode: number;
  size: number;
  dev: number;
  ino: number;
  rdev: number;
}

/** A libuv poll handle on one fd; the callback gets (status, events) where status < 0 is a negative errno. */
export interface NativeWatcher {
  start(events: number): void;
  stop(): void;
  /** Closes the handle (not the fd). Idempotent. */
  close(): void;
  ref(): void;
  unref(): void;
  /**
   * Lets a native fast path (a FastPath or DeviceFastPath, native/src/fast_path.h) see each wake-up first; the
   * callback runs only when it declines. `role`: which of its two sockets this is (0 or 1). null takes it back.
   */
  setFastPath?(fast: object | null, role: number): void;
}

/** A one-shot timer on a timerfd the loop watches (native/src/deadline_timer.h); see LoopDeadline. */
export interface NativeDeadlineTimer {
  /** Expires once, `ms` from now; the callback runs on the loop. Throws after close(). */
  start(ms: number): void;
  /** Gives the timer and its fd back to libuv. Idempotent. */
  close(): void;
  /** False when it fell back to a libuv timer (no timerfd could be made). */
  usesTimerFd(): boolean;
}

/**
 * An ordered syscall queue on one fd, run on a thread of its own (native/src/ioctl_queue.cc): for DRM calls that
 * sleep until the host answers. Calls run in submission order; the queue owns the fd and `close()` closes it after
 * everything queued before. Rejections carry the SystemError fields {code, errno, syscall}.
 */
export interface NativeIoctlQueue {
  /** As {@link NativeAddon.ioctlPointers}; `buf` and `buffers` must not be touched until the promise settles. */
  ioctl(
    request: number,
    buf: Uint8Array,
    offsets: readonly number[],
    buffers: readonly Uint8Array[],
  ): Promise<number>;
  /** mmap of the queue's fd; release the ArrayBuffer with {@link NativeAddon.munmap}. */
  mmap(length: number, prot: number, flags: number, offset: number): Promise<ArrayBuffer>;
  /** Closes the fd after the calls queued before; later calls throw. */
  close(): Promise<void>;
}

/** See {@link NativeAddon.DeviceFastPath}. */
export interface NativeDeviceFastPath {
  /** The channel ring's mapping, or null before it is unmapped. */
  setRing(ring: Uint8Array | null): void;
  /** Forgets the ring and the callback: the fast path declines every wake-up from now on. */
  detach(): void;
}

/** See {@link NativeAddon.FastPath}. */
export interface NativeFastPath {
  setObjects(
    states: Uint8Array,
    slots: Int32Array,
    versions: Uint32Array,
    pass: Int32Array,
    meta: Int32Array,
  ): void;
  setRing(ring: Uint8Array): void;
  setPolledFences(fences: Float64Array): void;
  /** Forgets every array: the fast path declines every wake-up from now on. */
  detach(): void;
}

/**
 * The raw addon. Every call is one syscall (or a short fixed sequence); errors are thrown as Error objects with
 * Node SystemError fields {code, errno, syscall}; EINTR is retried in C; EAGAIN is returned as {@link AGAIN}.
 * All fds the addon creates are O_CLOEXEC, and sockets/pipes/eventfds are O_NONBLOCK.
 */
export interface NativeAddon {
  /** socket+bind+listen on a Unix path (the caller handles the lock file and stale sockets). */
  unixListen(path: string, backlog: number): number;
  /** accept4: a new non-blocking fd, or AGAIN. */
  unixAccept(listenFd: number): number;
  /** socket+connect (blocking connect, then O_NONBLOCK). */
  unixConnect(path: string): number;
  /** socketpair(AF_UNIX, SOCK_STREAM): two non-blocking fds. */
  socketpair(): [number, number];
  /** sendmsg of bytes [offset, offset+length) of `buf` with SCM_RIGHTS `fds` (<= 28), MSG_NOSIGNAL: bytes sent or AGAIN. */
  sendmsg(fd: number, buf: Uint8Array, offset: number, length: number, fds: readonly number[] | null): number;
  /**
   * recvmsg into `buf` at [offset, offset+length): bytes read (0 = EOF) or AGAIN. `fdsOut` (Int32Array of >= 29) gets
   * the count at [0] and the received fds (O_CLOEXEC) at [1..]. MSG_CTRUNC closes what arrived and throws.
   */
  recvmsg(fd: number, buf: Uint8Array, offset: number, length: number, fdsOut: Int32Array): number;
  /** read(2): bytes read (0 = EOF) or AGAIN. */
  read(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /** write(2): bytes written or AGAIN. */
  write(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /** pread(2): may return fewer bytes than asked (e.g. the file shrank); never raises SIGBUS. */
  pread(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  /**
   * copy_file_range(2) of `length` bytes from `inFd` at `inPos` to `outFd` at `outPos`, in a loop: the bytes copied
   * (short only where the input ends), or minus the errno of a failing call (EXDEV, EINVAL: copy another way).
   */
  copyFileRange(inFd: number, inPos: number, outFd: number, outPos: number, length: number): number;
  /** pwrite(2). */
  pwrite(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  /** shutdown(2) with SHUT_RD=0, SHUT_WR=1, SHUT_RDWR=2. */
  shutdown(fd: number, how: number): void;
  /** memfd_create(name, MFD_CLOEXEC | flags). */
  memfdCreate(name: string, flags: number): number;
  ftruncate(fd: number, size: number): void;
  /** fcntl(F_ADD_SEALS). */
  addSeals(fd: number, seals: number): void;
  /** fcntl(F_GET_SEALS). */
  getSeals(fd: number): number;
  fstat(fd: number): NativeStat;
  /** fcntl(F_GETFL). */
  getFl(fd: number): number;
  /** fcntl(F_SETFL) adding O_NONBLOCK, and F_SETFD FD_CLOEXEC (for inherited fds such as LISTEN_FDS). */
  setNonblockCloexec(fd: number): void;
  /** readlink("/proc/self/fd/N"). */
  fdPath(fd: number): string;
  /** mmap: an external ArrayBuffer over the mapping. Release it only with {@link NativeAddon.munmap}. */
  mmap(fd: number, length: number, prot: number, flags: number, offset: number): ArrayBuffer;
  /** munmap the mapping behind `ab` and detach `ab`. Throws if `ab` is not a live mapping of this addon. */
  munmap(ab: ArrayBuffer): void;
  /**
   * madvise(MADV_POPULATE_WRITE or _READ) over the pages of bytes [offset, offset + length) of a mapping: every page
   * faulted in by one call. Advisory: returns 0 or the errno (old kernel, PFN mapping, shrunk file), never throws it.
   */
  populate(buffer: ArrayBuffer | Uint8Array, offset: number, length: number, write: boolean): number;
  /**
   * A write access to every page of bytes [offset, offset + length) of a mapping, changing nothing (atomic OR 0):
   * pays each page's first-access cost now. Never on a mapping that can SIGBUS (a client's file).
   */
  touchPages(buffer: ArrayBuffer | Uint8Array, offset: number, length: number): void;
  /** mmap and munmap at once: throws what mmap would (EACCES, ENODEV...), with no ArrayBuffer made. */
  mmapProbe(fd: number, length: number, prot: number, flags: number, offset: number): void;
  /** eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK | flags). */
  eventfd(initval: number, flags: number): number;
  /** pipe2(O_CLOEXEC | O_NONBLOCK): [read end, write end]. */
  pipe2(): [number, number];
  /** fcntl(F_DUPFD_CLOEXEC). */
  dup(fd: number): number;
  close(fd: number): void;
  /** flock(2), e.g. LOCK_EX|LOCK_NB = 6: true when taken, false on EWOULDBLOCK. */
  flock(fd: number, op: number): boolean;
  /** ioctl(fd, request, buf): the return value; `buf` is the argument struct, read and written in place. */
  ioctl(fd: number, request: number, buf: Uint8Array | null): number;
  /**
   * ioctl whose struct `buf` holds user pointers: the address of `buffers[i]` is written as a u64 at
   * `buf[offsets[i]]` just before the call (native/src/ioctl_pointers.cc). Keeps raw addresses out of JS.
   */
  ioctlPointers(
    fd: number,
    request: number,
    buf: Uint8Array,
    offsets: readonly number[],
    buffers: readonly Uint8Array[],
  ): number;
  /** An ordered off-loop syscall queue that takes ownership of `fd` (see {@link NativeIoctlQueue}). */
  IoctlQueue: new (
    fd: number,
  ) => NativeIoctlQueue;
  /** userfaultfd(O_CLOEXEC | O_NONBLOCK | flags) (tests: a syscall that sleeps in the kernel until released). */
  userfaultfd(flags: number): number;
  /** A one-shot timer whose wait adds no timeout to the loop's sleeps (native/src/deadline_timer.h). */
  DeadlineTimer: new (
    callback: () => void,
  ) => NativeDeadlineTimer;
  /** A readiness watcher (libuv uv_poll) on `fd`; the callback runs on the event loop. */
  createWatcher(fd: number, callback: (status: number, events: number) => void): NativeWatcher;
  /**
   * Copies `rows` rows of `rowBytes` from a mapping (`src`, from {@link NativeAddon.mmap}) at `srcOffset` with
   * `srcStride`, into `dst` at `dstOffset` with `dstStride`. A SIGBUS inside `src` (the file behind it shrank) is
   * absorbed the way libwayland's wl_shm does it: zero pages replace the mapping and the call returns false.
   */
  copyGuarded(
    src: ArrayBuffer,
    srcOffset: number,
    dst: Uint8Array,
    dstOffset: number,
    rowBytes: number,
    rows: number,
    srcStride: number,
    dstStride: number,
  ): boolean;
  /** Number of live mappings made by this addon (for leak tests). */
  liveMappings(): number;
  /**
   * Turns off libuv's idle-time metrics on this thread's loop (native/src/event_loop.cc): each sleep of the loop then
   * costs one epoll_pwait instead of two. performance.eventLoopUtilization() reports no idle time afterwards. True
   * when they were on; false when off already or on a libuv whose layout the addon was not checked against.
   */
  stopLoopIdleMetrics(): boolean;
  /**
   * The fast paths' inline loop on this thread (native/src/inline_loop.h): whether it is on (CROSSWAY_INLINE_LOOP is
   * not "0"), how many times a connection kept the thread after a native wake-up (stays), the wake-ups handled during
   * those stays, the entries its back-off skipped, and the expiries of a fast path's own deadline served in stays.
   */
  inlineLoopStats(): { enabled: boolean; stays: number; wakeups: number; skipped: number; timers: number };
  /**
   * The native data plane's Wayland run scan (native/src/wayland_scan.cc) on JavaScript's arrays: the run of whole
   * messages at bytes[start, end) that `entries` (FastScanTable) admits, with their effects applied to the client
   * side of an ObjectMap (states, slots, versions, pass, meta). Writes [bytes, messages] to `out`.
   */
  /**
   * A context's native fast path in the emulated device (native/src/device_fast_path.cc): constructed with the guest
   * side's frame socket, the host socket, the shared state (device-fast-state.ts) and `notify(what, arg, fds)` for
   * what it asks of JavaScript; attached to both sockets' watchers (role 0 the guest side, 1 the host).
   */
  DeviceFastPath: (new (
    guestFd: number,
    hostFd: number,
    state: Float64Array,
    notify: (what: number, arg: Uint8Array | Error | undefined, fds: Int32Array | undefined) => void,
  ) => NativeDeviceFastPath) & {
    readonly stateLayout: Readonly<Record<string, number>>;
    readonly notices: Readonly<Record<string, number>>;
  };
  /**
   * A guest connection's native fast path on the emulated backend (native/src/fast_path.cc): constructed with the
   * client's and the device's socket fds, the shared state (fast-state.ts), a FastScanTable's entries, the
   * registry's spans and `notify(what, arg)` for what it asks of JavaScript; attached to both sockets' watchers.
   */
  FastPath: new (
    clientFd: number,
    deviceFd: number,
    state: Float64Array,
    entries: Int32Array,
    spans: Int32Array,
    notify: (what: number, arg: Uint8Array | string | Error | undefined, fds: Int32Array | undefined) => void,
  ) => NativeFastPath;
  waylandScan(
    bytes: Uint8Array,
    start: number,
    end: number,
    dir: number,
    checkSince: number,
    maxSize: number,
    maxMessages: number,
    entries: Int32Array,
    spans: Int32Array,
    states: Uint8Array,
    slots: Int32Array,
    versions: Uint32Array,
    pass: Int32Array,
    meta: Int32Array,
    out: Int32Array,
    stopAtDeleteId: number,
  ): void;
}

const require = createRequire(import.meta.url);
const nativeDir = fileURLToPath(new URL("../native/", import.meta.url));

function load(): NativeAddon {
  const tried: string[] = [];
  for (const rel of ["build/Release/crossway_native.node", "build/Debug/crossway_native.node"]) {
    try {
      return require(nativeDir + rel) as NativeAddon;
    } catch (err) {
      tried.push(`${rel}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
    }
  }
  throw new CrosswayError(
    "CW_NATIVE_MISSING",
    `crossway's native addon is not built: run 'npm ci' (or 'npm run build:native') after installing g++, make and python3 (tried ${tried.join("; ")})`,
  );
}

/** The loaded addon (loaded on first import; throws CW_NATIVE_MISSING with an actionable message). */
export const native: NativeAddon = load();
