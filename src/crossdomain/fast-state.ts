// The state a guest connection shares with its native fast path (native/src/fast_path.cc): one Float64Array.
//
// JavaScript owns every field's meaning. The channel, its emulated backend, the device socket and the client session
// keep the fields below in this array instead of in properties, or publish into it whether they are idle, so that
// the native code, which runs only between JavaScript's turns on the same thread, acts exactly when the JavaScript
// path would act the same way. Indexes must match fast_path.cc's State enum.

/** Field indexes. */
export const FastState = {
  /** 1 while a native fast path may act on the connection. */
  ENABLED: 0,
  /** The session reads requests as they come: open, no hook awaited, host not blocking, no partial request. */
  CLIENT_IDLE: 1,
  /** The session forwards events as they come: open, nothing queued for the client, no partial event. */
  EVENTS_IDLE: 2,
  /** The device socket has nothing queued either way and is not paused or dispatching. */
  SOCKET_IDLE: 3,
  /** The channel and its backend are open. */
  CHANNEL_OPEN: 4,
  POLL_OUTSTANDING: 5,
  POLL_RIDING: 6,
  CHANNEL_PAUSED: 7,
  CHANNEL_DISPATCHING: 8,
  BACKLOGGED: 9,
  /** performance.now() of the oldest request waiting for the host; 0 when none. */
  AWAITING_SINCE: 10,
  ANSWER_TIMER_ARMED: 11,
  RIDE_SINCE: 12,
  RIDE_TIMER_ARMED: 13,
  /** The emulated backend's next fence id. */
  NEXT_FENCE: 14,
  /** How many entries of the backend's polled-fence array are in use. */
  POLLED_COUNT: 15,
  /** Fences with buffer objects not signalled yet. */
  FENCES_WITH_BOS: 16,
  /** The SEND/RECEIVE header size of the channel's layout. */
  HDR_SIZE: 17,
  CHECK_EVENT_SINCE: 18,
  MAX_MESSAGE_SIZE: 19,
  /** performance.now() minus libuv's monotonic clock in ms: the native side's clock in performance.now() terms. */
  CLOCK_OFFSET: 20,
  CHANNEL_RING: 21,
  /** Counters the native side keeps (for tests and `crossway status`). */
  REQUEST_RUNS: 22,
  REQUEST_MESSAGES: 23,
  EVENT_RUNS: 24,
  EVENT_MESSAGES: 25,
  /**
   * Nonzero while the session acts on some wl_display.delete_id (a shm pool recreated on a destroyed id): the native
   * scan then leaves every delete_id to JavaScript.
   */
  DELETE_ID_WATCHED: 26,
  /** RECEIVEs whose events the client's socket did not take whole (counter). */
  CLIENT_REMAINDERS: 27,
  /** How long a riding POLL waits for a SEND (the channel's pollRideMs): the native ride timer's time. */
  RIDE_MS: 28,
  SIZE: 29,
} as const;

/** A fresh state array: nothing idle, fast path off. */
export function newFastState(): Float64Array {
  return new Float64Array(FastState.SIZE);
}

/**
 * Whether the native fast paths are used: a guest connection's on the emulated backend (only that backend has one)
 * and the emulated device's. On unless `CROSSWAY_FAST_PATH=0` (for A/B measurements and for bisecting a fault to them).
 */
export function fastPathWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CROSSWAY_FAST_PATH !== "0";
}
