// Several readiness watchers on one fd: libuv allows one uv_poll per fd (a second gets EEXIST), so they share it.
import { type NativeWatcher, native, POLL_DISCONNECT } from "../native.ts";

interface Entry {
  readonly native: NativeWatcher;
  /**
   * The handles sharing the fd, copied on every change (rare) and never mutated: a callback that closes or adds a
   * handle does not disturb the dispatch loop iterating the old copy, and a dispatch allocates nothing.
   */
  handles: readonly Handle[];
}

/** fd -> the one native watcher on it and the handles sharing it. Closing the fd must close its handles first. */
const byFd = new Map<number, Entry>();

class Handle implements NativeWatcher {
  events = 0;
  closed = false;

  constructor(
    readonly fd: number,
    readonly callback: (status: number, events: number) => void,
  ) {}

  start(events: number): void {
    if (this.closed) throw new Error(`watcher on fd ${this.fd} is closed`);
    this.events = events;
    update(this.fd);
  }

  stop(): void {
    // Already stopped: nothing to re-arm (an FdWriter stops its writable watch after every flush that drained).
    if (this.closed || this.events === 0) return;
    this.events = 0;
    update(this.fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.events = 0;
    const e = byFd.get(this.fd);
    if (e === undefined) return;
    e.handles = e.handles.filter((x) => x !== this);
    if (e.handles.length === 0) {
      byFd.delete(this.fd);
      e.native.stop();
      e.native.close();
    } else update(this.fd);
  }

  ref(): void {
    byFd.get(this.fd)?.native.ref();
  }

  /**
   * Hands the fd's one native watcher a fast path (it then sees every wake-up on the fd first, for every handle
   * sharing it), or takes it back (null).
   */
  setFastPath(fast: object | null, role: number): void {
    if (!this.closed) byFd.get(this.fd)?.native.setFastPath?.(fast, role);
  }

  unref(): void {
    byFd.get(this.fd)?.native.unref();
  }
}

/** Re-arms the native watcher of `fd` with the union of its handles' interests. */
function update(fd: number): void {
  const e = byFd.get(fd);
  if (e === undefined) return;
  let events = 0;
  for (const h of e.handles) events |= h.events;
  if (events === 0) e.native.stop();
  else e.native.start(events);
}

/**
 * A watcher with {@link NativeWatcher}'s interface that may coexist with others on the same fd (e.g. a socket read
 * by one object and written by another). Each handle is called for the events it asked for; errors and hang-ups
 * (status < 0, POLL_DISCONNECT) reach every active handle so each can notice.
 */
export function createSharedWatcher(
  fd: number,
  callback: (status: number, events: number) => void,
): NativeWatcher {
  const h = new Handle(fd, callback);
  let e = byFd.get(fd);
  if (e === undefined) {
    const entry: Entry = {
      native: native.createWatcher(fd, (status, events) => {
        const handles = entry.handles;
        for (let i = 0; i < handles.length; i++) {
          const x = handles[i]!;
          if (x.closed || x.events === 0) continue;
          if (status < 0 || (events & POLL_DISCONNECT) !== 0 || (events & x.events) !== 0)
            x.callback(status, events);
        }
      }),
      handles: [],
    };
    e = entry;
    byFd.set(fd, e);
  }
  e.handles = [...e.handles, h];
  return h;
}
