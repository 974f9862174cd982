// The JavaScript floor of a proxy hop: relay.c's job (bytes and fds forwarded, nothing parsed) done in Node with
// crossway's own addon and event-loop watchers, so the gap to the C relay is what Node itself costs per hop.
// usage: node --import tsx bench/clients/node-relay.ts LISTEN_PATH TARGET_PATH  (prints "ready"; runs until killed)
import { unlinkSync } from "node:fs";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../../src/native.ts";

const [listenPath, targetPath] = process.argv.slice(2);
if (listenPath === undefined || targetPath === undefined) {
  process.stderr.write("usage: node-relay LISTEN_PATH TARGET_PATH\n");
  process.exit(2);
}

/** One direction of a connection: what `from` sent that `to` has not taken yet (relay.c blocks there instead). */
class Direction {
  readonly buf = new Uint8Array(65536);
  readonly fdsIn = new Int32Array(MAX_FDS_PER_MSG + 1);
  pendingStart = 0;
  pendingEnd = 0;
  /** The fds received with the pending bytes, sent with their first byte, then closed. */
  pendingFds: number[] | null = null;

  constructor(
    readonly from: number,
    readonly to: number,
    readonly pair: Pair,
  ) {}

  get blocked(): boolean {
    return this.pendingStart < this.pendingEnd;
  }

  /** Moves what `from` has to `to` until `from` is empty or `to` is full. */
  pump(): void {
    for (;;) {
      if (!this.drain()) return;
      let n: number;
      try {
        n = native.recvmsg(this.from, this.buf, 0, this.buf.length, this.fdsIn);
      } catch {
        this.pair.end();
        return;
      }
      if (n === AGAIN) return;
      if (n === 0) {
        this.pair.end();
        return;
      }
      const count = this.fdsIn[0] as number;
      this.pendingFds = count > 0 ? Array.from(this.fdsIn.subarray(1, 1 + count)) : null;
      this.pendingStart = 0;
      this.pendingEnd = n;
      if (n < this.buf.length) {
        this.drain();
        return;
      }
    }
  }

  /** Sends the pending bytes; false when `to` cannot take them all now (the pair then watches it for room). */
  drain(): boolean {
    while (this.pendingStart < this.pendingEnd) {
      let w: number;
      try {
        w = native.sendmsg(
          this.to,
          this.buf,
          this.pendingStart,
          this.pendingEnd - this.pendingStart,
          this.pendingFds,
        );
      } catch {
        this.pair.end();
        return false;
      }
      if (w === AGAIN) {
        this.pair.rearm();
        return false;
      }
      this.closePendingFds();
      this.pendingStart += w;
    }
    return true;
  }

  closePendingFds(): void {
    if (this.pendingFds === null) return;
    for (const fd of this.pendingFds) native.close(fd);
    this.pendingFds = null;
  }
}

/** A client and its compositor connection, one watcher per fd (libuv allows one poll handle per fd). */
class Pair {
  private readonly up: Direction;
  private readonly down: Direction;
  private readonly clientWatcher: NativeWatcher;
  private readonly targetWatcher: NativeWatcher;
  private ended = false;

  constructor(
    private readonly client: number,
    private readonly target: number,
  ) {
    this.up = new Direction(client, target, this);
    this.down = new Direction(target, client, this);
    this.clientWatcher = native.createWatcher(client, (status, events) =>
      this.onEvents(status, events, this.up, this.down),
    );
    this.targetWatcher = native.createWatcher(target, (status, events) =>
      this.onEvents(status, events, this.down, this.up),
    );
    this.rearm();
  }

  /** `reading` is the direction out of the fd, `writing` the one into it. */
  private onEvents(status: number, events: number, reading: Direction, writing: Direction): void {
    if (status < 0) {
      this.end();
      return;
    }
    if ((events & POLL_WRITABLE) !== 0 && writing.drain()) {
      this.rearm();
      writing.pump();
    }
    if (!this.ended && (events & POLL_READABLE) !== 0) reading.pump();
  }

  /** Reads from a fd only while what it sent last has left; watches it for room while bytes wait for it. */
  rearm(): void {
    if (this.ended) return;
    this.clientWatcher.start((this.up.blocked ? 0 : POLL_READABLE) | (this.down.blocked ? POLL_WRITABLE : 0));
    this.targetWatcher.start((this.down.blocked ? 0 : POLL_READABLE) | (this.up.blocked ? POLL_WRITABLE : 0));
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.clientWatcher.close();
    this.targetWatcher.close();
    this.up.closePendingFds();
    this.down.closePendingFds();
    native.close(this.client);
    native.close(this.target);
  }
}

function connectPair(client: number): void {
  let target: number;
  try {
    target = native.unixConnect(targetPath as string);
  } catch (err) {
    process.stderr.write(`node-relay: dropping a connection: ${(err as Error).message}\n`);
    native.close(client);
    return;
  }
  new Pair(client, target);
}

try {
  unlinkSync(listenPath);
} catch {
  // Not there: nothing stale to remove.
}
const listenFd = native.unixListen(listenPath, 128);
native
  .createWatcher(listenFd, () => {
    for (;;) {
      const client = native.unixAccept(listenFd);
      if (client === AGAIN) return;
      connectPair(client);
    }
  })
  .start(POLL_READABLE);
process.stdout.write("ready\n");
