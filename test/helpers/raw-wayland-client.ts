// A minimal Wayland client on the native addon, for tests that need exact control of the bytes a client sends.
import { AGAIN, MAX_FDS_PER_MSG, type NativeWatcher, native, POLL_READABLE } from "../../src/native.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";

/** wl_display requests and events (wayland.xml): opcodes by declaration order. */
const DISPLAY_ID = 1;
const DISPLAY_SYNC = 0;
const DISPLAY_GET_REGISTRY = 1;
const DISPLAY_EVENT_ERROR = 0;
const DISPLAY_EVENT_DELETE_ID = 1;
const CALLBACK_EVENT_DONE = 0;
const REGISTRY_EVENT_GLOBAL = 0;
const REGISTRY_BIND = 0;
const SHM_CREATE_POOL = 0;
const POOL_CREATE_BUFFER = 0;

/** One event as read off the socket: header fields and the raw body. */
export interface RawEvent {
  objectId: number;
  opcode: number;
  body: Uint8Array;
}

/** A wl_display.error the server sent. */
export interface DisplayError {
  objectId: number;
  code: number;
  message: string;
}

function readString(body: Uint8Array, offset: number): { value: string; next: number } {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const len = dv.getUint32(offset, true);
  const value = new TextDecoder().decode(body.subarray(offset + 4, offset + 4 + Math.max(0, len - 1)));
  return { value, next: offset + 4 + ((len + 3) & ~3) };
}

/**
 * A raw client connection. Reading is on by default (events are framed and kept); pass `read: false` to build a
 * client that never reads. Every fd the server sends is closed at once (these tests never need them).
 */
export class RawWaylandClient {
  readonly fd: number;
  /** Every event received, in order. */
  readonly events: RawEvent[] = [];
  /** wl_registry.global events seen on the registry made by getRegistry(): name -> interface, version. */
  readonly globals = new Map<number, { iface: string; version: number }>();
  /** wl_display.error, if the server sent one. */
  displayError: DisplayError | undefined;
  /** True once the server closed the connection (EOF or ECONNRESET). */
  eof = false;
  private watcher: NativeWatcher | undefined;
  private readonly inbuf = new Uint8Array(1 << 16);
  private inLen = 0;
  private readonly fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
  private nextId = 2;
  private registryId = 0;
  private readonly doneWaiters = new Map<number, () => void>();
  private readonly eofWaiters: Array<() => void> = [];
  private closed = false;

  private constructor(socketPath: string, read: boolean) {
    this.fd = native.unixConnect(socketPath);
    if (read) {
      this.watcher = native.createWatcher(this.fd, (status) => this.onReadable(status));
      this.watcher.start(POLL_READABLE);
    }
  }

  /** Connects to a Wayland socket by absolute path. */
  static connect(socketPath: string, opts: { read?: boolean } = {}): RawWaylandClient {
    return new RawWaylandClient(socketPath, opts.read ?? true);
  }

  /** Allocates the next client object id (ids are never reused by this client). */
  newId(): number {
    return this.nextId++;
  }

  /** Connects and asks for the registry; resolves once the server hangs up (within `timeoutMs`), then closes. */
  static async refusedAtOnce(socketPath: string, timeoutMs = 5000): Promise<void> {
    const c = RawWaylandClient.connect(socketPath);
    try {
      c.getRegistry();
      await c.waitEof(timeoutMs);
    } finally {
      c.close();
    }
  }

  /** Sends wl_display.get_registry; globals then arrive in `globals`. */
  getRegistry(): number {
    this.registryId = this.newId();
    this.send(
      new MessageWriter().begin(DISPLAY_ID, DISPLAY_GET_REGISTRY).uint(this.registryId).end().bytes(),
    );
    return this.registryId;
  }

  /** wl_registry.bind of the first advertised global named `iface` (call after getRegistry + roundTrip). */
  bind(iface: string, version: number): number {
    const g = [...this.globals].find(([, v]) => v.iface === iface);
    if (g === undefined) throw new Error(`no ${iface} global advertised`);
    const id = this.newId();
    // wl_registry.bind(name, new_id) with an untyped new_id: interface string, version, id (wayland.xml).
    const w = new MessageWriter().begin(this.registryId, REGISTRY_BIND).uint(g[0]).string(iface);
    this.send(w.uint(version).uint(id).end().bytes());
    return id;
  }

  /**
   * wl_shm.create_pool on a fresh memfd of `size` bytes, then one wl_shm_pool.create_buffer covering it (ARGB8888,
   * `width` pixels wide). The memfd is closed here once sent. Returns the pool and buffer ids.
   */
  createShmPool(shmId: number, size: number, width = 16): { pool: number; buffer: number } {
    const memfd = native.memfdCreate("raw-client-pool", 0);
    try {
      native.ftruncate(memfd, size);
      const pool = this.newId();
      const buffer = this.newId();
      const stride = width * 4;
      const w = new MessageWriter();
      w.begin(shmId, SHM_CREATE_POOL).uint(pool).fd(memfd).int(size).end();
      w.begin(pool, POOL_CREATE_BUFFER)
        .uint(buffer)
        .int(0)
        .int(width)
        .int(Math.floor(size / stride));
      w.int(stride).uint(0).end();
      const bytes = w.bytes();
      const n = native.sendmsg(this.fd, bytes, 0, bytes.length, [memfd]);
      if (n !== bytes.length) throw new Error(`create_pool: short send (${n} of ${bytes.length})`);
      return { pool, buffer };
    } finally {
      native.close(memfd);
    }
  }

  /**
   * Fills `batch` with wl_display.sync requests, one per 12 bytes, each with a fresh callback id, without sending
   * them: floods reuse one buffer instead of encoding each message.
   */
  fillSyncs(batch: Uint8Array): void {
    const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    for (let at = 0; at + 12 <= batch.length; at += 12) {
      dv.setUint32(at, DISPLAY_ID, true);
      dv.setUint32(at + 4, (12 << 16) | DISPLAY_SYNC, true);
      dv.setUint32(at + 8, this.newId(), true);
    }
  }

  /** Encodes wl_display.sync(new id) without sending it; returns the bytes and the callback id. */
  syncBytes(): { bytes: Uint8Array; id: number } {
    const id = this.newId();
    return { bytes: new MessageWriter().begin(DISPLAY_ID, DISPLAY_SYNC).uint(id).end().bytes(), id };
  }

  /**
   * wl_display.sync and wait for its wl_callback.done: proves the whole path (proxy, channel, compositor) answers.
   * Rejects on EOF, a display error, or after `timeoutMs`.
   */
  roundTrip(timeoutMs = 30_000): Promise<void> {
    const { bytes, id } = this.syncBytes();
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.doneWaiters.delete(id);
        reject(new Error(`no wl_callback.done for sync ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.doneWaiters.set(id, () => {
        clearTimeout(timer);
        if (this.eof && this.doneWaiters.has(id)) {
          this.doneWaiters.delete(id);
          reject(
            new Error(
              `connection closed before wl_callback.done for sync ${id}${this.displayError !== undefined ? ` (display error: ${this.displayError.message})` : ""}`,
            ),
          );
          return;
        }
        resolve();
      });
    });
    if (this.eof) this.wakeAll();
    else this.send(bytes);
    return done;
  }

  /** Resolves when the server has closed the connection; rejects after `timeoutMs`. */
  waitEof(timeoutMs = 30_000): Promise<void> {
    if (this.eof) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not close the connection within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.eofWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Writes all of `bytes` (blocking-style: retries on EAGAIN for up to `timeoutMs`). Returns the number of bytes
   * written, which is less than asked when the socket stayed full (a server not reading) or the server hung up
   * (EPIPE/ECONNRESET: then `eof` is set, as a real client would see it on its next read).
   */
  send(bytes: Uint8Array, timeoutMs = 0): number {
    let off = 0;
    const deadline = Date.now() + timeoutMs;
    while (off < bytes.length) {
      let n: number;
      try {
        n = native.sendmsg(this.fd, bytes, off, bytes.length - off, null);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== "EPIPE" && code !== "ECONNRESET") throw err;
        this.markEof();
        return off;
      }
      if (n === AGAIN) {
        if (Date.now() >= deadline) return off;
        continue;
      }
      off += n;
    }
    return off;
  }

  /** Stops reading and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.stop();
    this.watcher?.close();
    native.close(this.fd);
  }

  private onReadable(status: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.markEof();
      return;
    }
    for (;;) {
      let n: number;
      try {
        n = native.recvmsg(this.fd, this.inbuf, this.inLen, this.inbuf.length - this.inLen, this.fdsOut);
      } catch {
        this.markEof(); // ECONNRESET
        return;
      }
      for (let k = 0; k < (this.fdsOut[0] as number); k++) native.close(this.fdsOut[1 + k] as number);
      if (n === AGAIN) return;
      if (n === 0) {
        this.markEof();
        return;
      }
      this.inLen += n;
      this.parse();
    }
  }

  private markEof(): void {
    this.eof = true;
    this.watcher?.stop();
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const w of [...this.doneWaiters.values()]) w();
    for (const w of this.eofWaiters.splice(0)) w();
  }

  private parse(): void {
    let off = 0;
    const dv = new DataView(this.inbuf.buffer);
    while (this.inLen - off >= 8) {
      const objectId = dv.getUint32(off, true);
      const word = dv.getUint32(off + 4, true);
      const size = word >>> 16;
      const opcode = word & 0xffff;
      if (size < 8) throw new Error(`server sent a message of size ${size}`);
      if (this.inLen - off < size) break;
      const body = this.inbuf.slice(off + 8, off + size);
      off += size;
      this.events.push({ objectId, opcode, body });
      this.onEvent(objectId, opcode, body);
    }
    this.inbuf.copyWithin(0, off, this.inLen);
    this.inLen -= off;
  }

  private onEvent(objectId: number, opcode: number, body: Uint8Array): void {
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    if (objectId === DISPLAY_ID && opcode === DISPLAY_EVENT_ERROR) {
      const message = readString(body, 8).value;
      this.displayError = { objectId: dv.getUint32(0, true), code: dv.getUint32(4, true), message };
    } else if (objectId === DISPLAY_ID && opcode === DISPLAY_EVENT_DELETE_ID) {
      // Ids are never reused here, so there is nothing to free.
    } else if (objectId === this.registryId && opcode === REGISTRY_EVENT_GLOBAL) {
      const name = dv.getUint32(0, true);
      const s = readString(body, 4);
      this.globals.set(name, { iface: s.value, version: dv.getUint32(s.next, true) });
    } else if (opcode === CALLBACK_EVENT_DONE) {
      const w = this.doneWaiters.get(objectId);
      if (w !== undefined) {
        this.doneWaiters.delete(objectId);
        w();
      }
    }
  }
}
