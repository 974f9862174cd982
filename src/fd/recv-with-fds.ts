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
  const nfds = recvFds[0] as number;
  for (let k = 0; k < nfds; k++) {
    try {
      fdq.push(recvFds[1 + k] as number);
    } catch (err) {
      for (let j = k; j < nfds; j++) native.close(recvFds[1 + j] as number);
      throw overflow(fdq, err);
    }
  }
  return n;
}
