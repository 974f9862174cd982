// One recvmsg from a Wayland peer into a reserved framer region, its fds into the connection's fd queue: the read
// the guest proxy's and the host filter's sessions both make, with the rule for a peer that floods fds in one place.
import { AGAIN, native } from "../native.ts";
import type { FdQueue } from "../wire/wayland/fd-queue.ts";

/**
 * Reads once from `fd` into `region` (from MessageFramer.reserve; the caller commits what it reads) and queues the
 * fds that came with it on `fdq`. Returns the byte count (0: the peer closed) or AGAIN. If `fdq` is full (a peer
 * sending fds no message takes), the fds it could not take are closed here and `overflow`'s error is thrown, so
 * none leaks whatever the caller does next. `recvFds` is the caller's scratch array ([count, fd...]).
 */
export function recvWithFds(
  fd: number,
  region: { bytes: Uint8Array; offset: number; length: number },
  fdq: FdQueue,
  recvFds: Int32Array,
  overflow: (fdq: FdQueue, cause: unknown) => Error,
): number {
  const n = native.recvmsg(fd, region.bytes, region.offset, region.length, recvFds);
  if (n === AGAIN) return AGAIN;
  queueReceivedFds(fdq, recvFds, 1, recvFds[0] as number, overflow);
  return n;
}

/**
 * Queues `count` received fds, `fds[from ..]`, on `fdq`; if it is full, closes those it could not take and throws
 * `overflow`'s error (see {@link recvWithFds}). Also for fds a native reader received (the guest's fast path).
 */
export function queueReceivedFds(
  fdq: FdQueue,
  fds: ArrayLike<number>,
  from: number,
  count: number,
  overflow: (fdq: FdQueue, cause: unknown) => Error,
): void {
  for (let k = 0; k < count; k++) {
    try {
      fdq.push(fds[from + k] as number);
    } catch (err) {
      for (let j = k; j < count; j++) native.close(fds[from + j] as number);
      throw overflow(fdq, err);
    }
  }
}
