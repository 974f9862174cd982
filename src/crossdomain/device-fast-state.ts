// The state a device context shares with its native fast path (native/src/device_fast_path.cc): one Float64Array.
//
// JavaScript owns every field's meaning: the frame socket, the host socket's writer and the cross-domain context
// publish into it whether they are idle, and the context keeps its POLL queue's length and head and its worker's
// armed flag here instead of in properties, so the native code, which runs only between JavaScript's turns on the
// same thread, acts exactly when the JavaScript path would act the same way. Indexes must match the State enum of
// device_fast_path.cc (test/unit/native/fast-path-layout.test.ts holds them against the addon's).

/** Field indexes. */
export const DeviceFastState = {
  /** 1 while the native fast path may act on the context. */
  ENABLED: 0,
  /** The guest side's frame socket has nothing queued either way and is not paused or dispatching. */
  GUEST_IDLE: 1,
  /** The host socket's writer has nothing queued and the context does not hold the guest's submissions back. */
  HOST_OUT_IDLE: 2,
  /**
   * CONTEXT_INIT done, the channel's host socket connected and its ring mapped and attached, the worker running, no
   * POLL owed to the QEMU quirk: what the native code may assume of the context.
   */
  CONTEXT_READY: 3,
  /** CONTEXT_INIT's poll_rings_mask. */
  POLL_MASK: 4,
  /** The worker's sources are watched (CrossDomainContext's `armed`). */
  ARMED: 5,
  /** POLL fences waiting for a ring message. */
  POLL_COUNT: 6,
  /** The one the host answers next (valid while POLL_COUNT > 0). */
  POLL_HEAD: 7,
  /** The SEND/RECEIVE header size of the configured identifier array. */
  HDR_SIZE: 8,
  /** Usable bytes of the channel ring. */
  RING_BYTES: 9,
  /** Counters the native side keeps (for tests): SUBMIT frames, SEND bytes, RECEIVEs, FENCEs it handled. */
  SUBMITS: 10,
  SEND_BYTES: 11,
  RECEIVES: 12,
  FENCES: 13,
  SIZE: 14,
} as const;

/** A fresh state array: nothing idle, fast path off. */
export function newDeviceFastState(): Float64Array {
  return new Float64Array(DeviceFastState.SIZE);
}

/**
 * The worker's outstanding POLL fences, FIFO, with the length and the head in the shared state (the native side
 * answers the head or queues a first fence when it may) and the rest, rarely any, in an array.
 */
export class PollQueue {
  private readonly rest: number[] = [];

  constructor(private readonly st: Float64Array) {}

  get length(): number {
    return this.st[DeviceFastState.POLL_COUNT]!;
  }

  /** The fence the host answers next, or undefined. */
  get head(): number | undefined {
    return this.length > 0 ? this.st[DeviceFastState.POLL_HEAD] : undefined;
  }

  push(fence: number): void {
    const n = this.length;
    if (n === 0) this.st[DeviceFastState.POLL_HEAD] = fence;
    else this.rest.push(fence);
    this.st[DeviceFastState.POLL_COUNT] = n + 1;
  }

  /** Takes the head; undefined when empty. */
  shift(): number | undefined {
    const n = this.length;
    if (n === 0) return undefined;
    const fence = this.st[DeviceFastState.POLL_HEAD]!;
    if (n > 1) this.st[DeviceFastState.POLL_HEAD] = this.rest.shift()!;
    this.st[DeviceFastState.POLL_COUNT] = n - 1;
    return fence;
  }

  clear(): void {
    this.rest.length = 0;
    this.st[DeviceFastState.POLL_COUNT] = 0;
  }
}
