// A typed Wayland client for tests (parses events with crossway's own wire engine; libwayland is not involved).
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../../src/native.ts";
import { NEED_MORE } from "../../src/wire/wayland/framer.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { type DecodedMessage, Direction, WireConnection } from "../../src/wire/wayland/wire-connection.ts";

/** One event, copied out of the reused decoder state so tests can keep it. */
export interface TestEvent {
  objectId: number;
  iface: string;
  name: string;
  /** Arguments: numbers for scalars and fds, strings, Uint8Array for arrays, null for null. */
  args: (number | string | Uint8Array | null)[];
}

let sharedRegistry: ProtocolRegistry | undefined;

/** A connected raw client. Every fd it receives is closed by {@link WaylandTestClient.close} unless taken. */
export class WaylandTestClient {
  readonly conn: WireConnection;
  readonly events: TestEvent[] = [];
  readonly globals = new Map<number, { iface: string; version: number }>();
  private readonly fds = new Int32Array(MAX_FDS_PER_MSG + 1);
  private readonly buf = new Uint8Array(65536);
  private readonly watcher: NativeWatcher;
  private readonly receivedFds = new Set<number>();
  /** Requests not yet written (the socket was full), oldest first. */
  private readonly out: Array<{ bytes: Uint8Array; fds: number[] }> = [];
  private nextIdValue = 2;
  private waiters: Array<() => void> = [];
  private closed = false;
  error: string | null = null;
  eof = false;

  private constructor(readonly fd: number) {
    sharedRegistry ??= ProtocolRegistry.fromGenerated();
    this.conn = new WireConnection(sharedRegistry, { name: "raw-test-client" });
    this.watcher = native.createWatcher(fd, (status, events) => {
      if ((events & POLL_WRITABLE) !== 0) this.flushOut();
      if ((events & POLL_READABLE) !== 0 || status < 0) this.onReadable();
    });
    this.watcher.start(POLL_READABLE);
  }

  /** Connects to a Wayland socket path. */
  static connect(path: string): WaylandTestClient {
    return new WaylandTestClient(native.unixConnect(path));
  }

  /** A fresh client-side object id (ids are never reused by this client). */
  newId(): number {
    return this.nextIdValue++;
  }

  /** Builds and sends one request; `fds` ride with it. The object map learns of it as libwayland's would. */
  request(
    objectId: number,
    iface: string,
    name: string,
    build: (w: MessageWriter) => void,
    fds: number[] = [],
  ): void {
    const desc = this.conn.registry.get(iface)?.requests.find((r) => r.name === name);
    if (desc === undefined) throw new Error(`no request ${iface}.${name}`);
    const w = new MessageWriter();
    w.begin(objectId, desc.opcode);
    build(w);
    w.end();
    const bytes = w.bytes();
    // Feed our own request through the connection so ids and destructors are tracked.
    this.conn.framer(Direction.REQUEST).push(bytes);
    for (const f of fds) this.conn.fdQueue(Direction.REQUEST).push(f);
    const m = this.conn.next(Direction.REQUEST);
    if (m === NEED_MORE) throw new Error("own request did not frame");
    this.send(bytes, fds);
  }

  /**
   * Writes bytes (with fds on the first byte), or queues them while the socket is full: a proxy under load may
   * not have read yet. Queued fds are dups, so the caller may close its own at once.
   */
  private send(bytes: Uint8Array, fds: readonly number[]): void {
    if (this.batching !== null && fds.length === 0) {
      this.batching.push(bytes.slice());
      return;
    }
    if (this.out.length > 0) {
      this.out.push({ bytes: bytes.slice(), fds: fds.map((f) => native.dup(f)) });
      return;
    }
    let off = 0;
    while (off < bytes.length) {
      const n = native.sendmsg(
        this.fd,
        bytes,
        off,
        bytes.length - off,
        off === 0 && fds.length > 0 ? fds : null,
      );
      if (n === AGAIN) {
        this.out.push({ bytes: bytes.slice(off), fds: off === 0 ? fds.map((f) => native.dup(f)) : [] });
        this.watcher.start(POLL_READABLE | POLL_WRITABLE);
        return;
      }
      off += n;
    }
  }

  /** Requests made inside `fn` (without fds) leave in one write, as a client's buffered requests do. */
  batch(fn: () => void): void {
    this.batching = [];
    let all: Uint8Array;
    try {
      fn();
    } finally {
      all = new Uint8Array(Buffer.concat(this.batching));
      this.batching = null;
    }
    this.send(all, []);
  }

  private batching: Uint8Array[] | null = null;

  /** Bytes of requests the client's socket has not taken yet (queued until it drains). */
  get unsentBytes(): number {
    let n = 0;
    for (const p of this.out) n += p.bytes.length;
    return n;
  }

  private flushOut(): void {
    while (this.out.length > 0) {
      const p = this.out[0] as { bytes: Uint8Array; fds: number[] };
      const n = native.sendmsg(this.fd, p.bytes, 0, p.bytes.length, p.fds.length > 0 ? p.fds : null);
      if (n === AGAIN) return;
      for (const f of p.fds) native.close(f);
      p.fds = [];
      if (n < p.bytes.length) p.bytes = p.bytes.subarray(n);
      else this.out.shift();
    }
    if (!this.eof) this.watcher.start(POLL_READABLE);
  }

  /**
   * Sends a request to an object of an interface our tables do not describe (e.g. wlroots' virtual keyboard),
   * encoded by hand. `newId` records the object it creates, so later ids stay valid for the object map.
   */
  requestUnlisted(
    objectId: number,
    opcode: number,
    build: (w: MessageWriter) => void,
    fds: number[] = [],
    newId?: { id: number; iface: string; version: number },
  ): void {
    const w = new MessageWriter();
    w.begin(objectId, opcode);
    build(w);
    w.end();
    if (newId !== undefined) {
      this.conn.objects.insert(newId.id, this.conn.registry.getOrPlaceholder(newId.iface), newId.version);
    }
    this.send(w.bytes(), fds);
  }

  /**
   * wl_registry.bind of the first global named `iface` for an interface our tables do not describe (e.g. wlroots'
   * virtual input protocols), encoded by hand; returns the new id. Throws if the compositor offers no such global.
   */
  bindUnlisted(registry: number, iface: string, version: number): number {
    const name = [...this.globals.entries()].find(([, g]) => g.iface === iface)?.[0];
    if (name === undefined) throw new Error(`compositor has no ${iface}`);
    const id = this.newId();
    this.requestUnlisted(registry, 0, (w) => w.uint(name).string(iface).uint(version).uint(id), [], {
      id,
      iface,
      version,
    });
    return id;
  }

  /** wl_display.get_registry, then a round trip: fills {@link WaylandTestClient.globals}. */
  async getRegistry(): Promise<number> {
    const reg = this.newId();
    this.request(1, "wl_display", "get_registry", (w) => w.uint(reg));
    await this.roundtrip();
    return reg;
  }

  /** wl_registry.bind of the first global named `iface` at `version`; returns the new id. */
  bind(registry: number, iface: string, version: number): number {
    const entry = [...this.globals.entries()].find(([, g]) => g.iface === iface);
    if (entry === undefined) throw new Error(`no global ${iface}`);
    const id = this.newId();
    this.request(registry, "wl_registry", "bind", (w) =>
      w.uint(entry[0]).string(iface).uint(version).uint(id),
    );
    return id;
  }

  /** wl_display.sync and wait for its done event. */
  async roundtrip(timeoutMs = 30_000): Promise<void> {
    const cb = this.newId();
    this.request(1, "wl_display", "sync", (w) => w.uint(cb));
    await this.waitFor((e) => e.objectId === cb && e.name === "done", timeoutMs);
  }

  /** Waits for the first event (already received or future) matching `pred`. */
  async waitFor(pred: (e: TestEvent) => boolean, timeoutMs = 30_000): Promise<TestEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(pred);
      if (found !== undefined) return found;
      if (this.error !== null) throw new Error(`connection failed: ${this.error}`);
      if (this.eof) throw new Error("server closed the connection");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for an event");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Takes ownership of a received fd (so close() leaves it open for the caller). */
  takeFd(fd: number): number {
    this.receivedFds.delete(fd);
    return fd;
  }

  private onReadable(): void {
    try {
      for (;;) {
        const n = native.recvmsg(this.fd, this.buf, 0, this.buf.length, this.fds);
        if (n === AGAIN) break;
        const count = this.fds[0] as number;
        for (let i = 0; i < count; i++) {
          const f = this.fds[1 + i] as number;
          this.receivedFds.add(f);
          this.conn.fdQueue(Direction.EVENT).push(f);
        }
        if (n === 0) {
          this.eof = true;
          this.watcher.stop();
          break;
        }
        this.conn.framer(Direction.EVENT).push(this.buf, 0, n);
        for (;;) {
          const m = this.conn.next(Direction.EVENT);
          if (m === NEED_MORE) break;
          if (m.desc !== null) this.record(m);
        }
      }
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.watcher.stop();
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private record(m: DecodedMessage): void {
    const desc = m.desc;
    if (desc === null || m.iface === null) return;
    const args: TestEvent["args"] = [];
    for (let i = 0; i < desc.kinds.length; i++) {
      const k = desc.kinds[i];
      if (k === 3) args.push(m.args.string(i));
      else if (k === 6) args.push(m.args.array(i).slice());
      else if (k === 0) args.push(m.args.int(i));
      else args.push(m.args.uint(i));
    }
    const e = { objectId: m.objectId, iface: m.iface.name, name: desc.name, args };
    if (e.iface === "wl_registry" && e.name === "global") {
      this.globals.set(args[0] as number, { iface: args[1] as string, version: args[2] as number });
    }
    if (e.iface === "wl_display" && e.name === "error") this.error = `wl_display.error ${String(args[2])}`;
    this.events.push(e);
  }

  /** Closes the socket and every received fd not taken. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.watcher.close();
    for (const p of this.out) for (const f of p.fds) native.close(f);
    this.out.length = 0;
    native.close(this.fd);
    // Queued fds are also in receivedFds: empty the queue, then close each received fd once.
    this.conn.drainFds();
    for (const f of this.receivedFds) native.close(f);
    this.receivedFds.clear();
  }
}
