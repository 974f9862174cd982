// Accepting every pending connection of a non-blocking listening socket, for the guest's Wayland and PipeWire servers.
import { AGAIN, type NativeWatcher, native, POLL_READABLE } from "../native.ts";

/**
 * Calls `onClient` for each connection waiting on `listenFd` until the backlog is empty (EAGAIN) or `stopped()`.
 * An accept error (EMFILE and friends) goes to `onError` and ends this round: existing clients are kept serving,
 * and the next readiness event retries.
 */
export function acceptPending(
  listenFd: number,
  onClient: (fd: number) => void,
  onError: (err: Error) => void,
  stopped: () => boolean,
): void {
  while (!stopped()) {
    let fd: number;
    try {
      fd = native.unixAccept(listenFd);
    } catch (err) {
      onError(err as Error);
      return;
    }
    if (fd === AGAIN) return;
    onClient(fd);
  }
}

/** Readiness watchers on a set of listening sockets, each accepting with {@link acceptPending}. */
export class Listeners {
  private readonly watchers: NativeWatcher[] = [];
  private stopped = false;

  constructor(fds: readonly number[], onClient: (fd: number) => void, onError: (err: Error) => void) {
    for (const fd of fds) {
      const w = native.createWatcher(fd, () => acceptPending(fd, onClient, onError, () => this.stopped));
      w.start(POLL_READABLE);
      this.watchers.push(w);
    }
  }

  /** Stops and closes the watchers (not the listening fds, which their owners close). Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.watchers) {
      w.stop();
      w.close();
    }
  }
}
