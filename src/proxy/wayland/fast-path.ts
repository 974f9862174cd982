// Attaches a guest connection's native fast path (native/src/fast_path.cc) on the emulated backend, and takes it off.
import type { CrossDomainChannel } from "../../crossdomain/channel.ts";
import { FastState } from "../../crossdomain/fast-state.ts";
import { type NativeFastPath, type NativeWatcher, native } from "../../native.ts";
import type { FastScanTable } from "../../wire/wayland/fast-scan-table.ts";
import type { WireConnection } from "../../wire/wayland/wire-connection.ts";

/** What the native side asks of JavaScript after its own work (fast_path.cc Notice). */
export const FastNotice = {
  ARM_ANSWER_TIMER: 1,
  /** The native ride timer expired while the device socket had bytes queued: the channel sends the POLL. */
  RIDE_EXPIRED: 2,
  /** Events the client's socket did not take: queue them (and pause the channel if the client is not reading). */
  CLIENT_REMAINDER: 3,
  /** The end of a SUBMIT frame the device's socket did not take: queue it. */
  DEVICE_REMAINDER: 4,
  /** Something the native side cannot explain: end the connection with the message. */
  FAULT: 5,
  /** Bytes and fds it read from the client and did not take: handle them as if read here. */
  CLIENT_BYTES: 6,
  /** Bytes and fds it read from the device socket that it does not handle: the socket's reader takes them. */
  DEVICE_BYTES: 7,
  /** The client sent more fds than one message may carry: `arg` is the error native.recvmsg throws for it. */
  CLIENT_ERROR: 8,
} as const;

/** A session's attached fast path. */
export interface AttachedFastPath {
  /** Takes the fast path off both sockets and forgets its arrays. Idempotent. */
  detach(): void;
  /** Bytes the device's socket did not take of a SUBMIT the native side began: true while some still wait. */
  queueDeviceRemainder(bytes: Uint8Array): boolean;
  /** Bytes and fds the native side read from the device socket, for its reader (see FastNotice.DEVICE_BYTES). */
  deviceBytes(bytes: Uint8Array, fds: Int32Array | undefined): void;
}

/**
 * Attaches a fast path to a session's client watcher and its channel's device socket, or returns null when the
 * channel's backend has none. `notify` receives {@link FastNotice}s. The session must keep
 * FastState.CLIENT_IDLE and EVENTS_IDLE up to date and set ENABLED to 0 before anything is torn down.
 */
export function attachFastPath(options: {
  clientFd: number;
  clientWatcher: NativeWatcher;
  channel: CrossDomainChannel;
  conn: WireConnection;
  table: FastScanTable;
  notify: (what: number, arg: Uint8Array | string | Error | undefined, fds: Int32Array | undefined) => void;
}): AttachedFastPath | null {
  const { channel, conn, table } = options;
  const support = channel.fastPathSupport();
  if (support === null || options.clientWatcher.setFastPath === undefined) return null;
  const st = channel.fast;
  const fp: NativeFastPath = new native.FastPath(
    options.clientFd,
    support.deviceFd,
    st,
    table.entries,
    table.registry.spans,
    options.notify,
  );
  const objects = conn.objects;
  const giveObjects = () =>
    fp.setObjects(
      objects.clientStates,
      objects.clientSlots,
      objects.clientVersions,
      objects.passIfaces,
      objects.clientMeta,
    );
  giveObjects();
  objects.onClientGrow = giveObjects;
  fp.setRing(channel.channelRingBytes);
  fp.setPolledFences(support.polledFences((fences) => fp.setPolledFences(fences)));
  st[FastState.MAX_MESSAGE_SIZE] = conn.framer(0).maxMessageSize;
  st[FastState.CHECK_EVENT_SINCE] = 0;
  st[FastState.RIDE_MS] = channel.rideMs;
  // performance.now() and libuv's uv_hrtime (process.hrtime) read the same monotonic clock.
  st[FastState.CLOCK_OFFSET] = performance.now() - Number(process.hrtime.bigint()) / 1e6;
  options.clientWatcher.setFastPath(fp, 0);
  support.setFastPath(fp);
  st[FastState.ENABLED] = 1;
  let attached = true;
  return {
    detach() {
      if (!attached) return;
      attached = false;
      st[FastState.ENABLED] = 0;
      objects.onClientGrow = null;
      options.clientWatcher.setFastPath?.(null, 0);
      support.setFastPath(null);
      fp.detach();
    },
    queueDeviceRemainder: (bytes) => support.queueFrameRemainder(bytes),
    deviceBytes: (bytes, fds) => support.received(bytes, fds),
  };
}
