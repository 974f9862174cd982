// A raw PipeWire native-protocol client for attack tests: crafts any message with our own framing and POD encoder.
import { AGAIN, type NativeWatcher, native, POLL_READABLE } from "../../src/native.ts";
import { decodePayload, encodeHeader, encodeMessage, Framer } from "../../src/wire/pipewire/framing.ts";
import type { PodLimits } from "../../src/wire/pipewire/pod-reader.ts";
import { type Pod, pod } from "../../src/wire/pipewire/pod-types.ts";

/** A received event, decoded. `body` is null when the payload did not decode (never expected from a daemon). */
export interface RawEvent {
  readonly id: number;
  readonly opcode: number;
  readonly seq: number;
  readonly body: (Pod & { t: "struct" }) | null;
  readonly nFds: number;
  /** The event's fds, kept only by a client made with `keepFds` (the test closes them); otherwise []. */
  readonly fds: number[];
}

const LENIENT: PodLimits = {
  maxDepth: 32,
  maxPods: 1 << 20,
  maxString: 1 << 20,
  maxElements: 1 << 16,
  allowSequence: true,
  allowPointer: true,
};

/** Core.Error's res for EACCES, as the filter and the daemon send it. */
export const EACCES = -13;

/**
 * A connected raw client. Every fd it receives is closed at once (tests only look at message bodies), unless it
 * was made with `keepFds`: then each event owns its fds and the test closes them.
 */
export class RawPipeWireClient {
  readonly events: RawEvent[] = [];
  private readonly fd: number;
  private readonly framer = new Framer(1 << 24);
  private readonly watcher: NativeWatcher;
  private readonly fdsIn = new Int32Array(29);
  private waiters: Array<() => void> = [];
  seq = 0;
  closed = false;

  constructor(
    path: string,
    private readonly opts: { keepFds?: boolean } = {},
  ) {
    this.fd = native.unixConnect(path);
    this.watcher = native.createWatcher(this.fd, (status) => this.onReadable(status));
    this.watcher.start(POLL_READABLE);
  }

  private onReadable(status: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.markClosed();
      return;
    }
    for (;;) {
      const r = this.framer.reserve(65536);
      let n: number;
      try {
        n = native.recvmsg(this.fd, r.buf, r.offset, r.length, this.fdsIn);
      } catch {
        this.markClosed();
        return;
      }
      if (n === AGAIN) break;
      const fds = Array.from(this.fdsIn.subarray(1, 1 + (this.fdsIn[0] as number)));
      if (this.opts.keepFds !== true) for (const fd of fds) native.close(fd);
      if (n === 0) {
        this.markClosed();
        return;
      }
      this.framer.commit(n, this.opts.keepFds === true ? fds : fds.map(() => -1));
      for (let f = this.framer.next(); f !== null; f = this.framer.next()) {
        let body: (Pod & { t: "struct" }) | null = null;
        try {
          body = decodePayload(f.payload, f.nFds, LENIENT).body;
        } catch {
          body = null;
        }
        const kept = f.fds.filter((fd) => fd >= 0);
        this.events.push({ id: f.id, opcode: f.opcode, seq: f.seq, body, nFds: f.nFds, fds: kept });
      }
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.watcher.close();
    for (const fd of this.framer.drainFds()) if (fd >= 0) native.close(fd);
    native.close(this.fd);
    this.wake();
  }

  /** Sends raw bytes with optional fds (the caller keeps ownership of its fds). Returns false once the peer is gone. */
  sendRaw(bytes: Uint8Array, fds: number[] | null = null): boolean {
    if (this.closed) return false;
    let off = 0;
    let first = true;
    while (off < bytes.length) {
      let n: number;
      try {
        n = native.sendmsg(this.fd, bytes, off, bytes.length - off, first ? fds : null);
      } catch {
        return false;
      }
      if (n === AGAIN) return false;
      first = false;
      off += n;
    }
    return true;
  }

  /** Sends a message with the next seq; `nFdsField` overrides the header's n_fds (for lies about fds). */
  send(
    id: number,
    opcode: number,
    body: Pod,
    opts: { fds?: number[]; nFdsField?: number; footer?: Pod } = {},
  ): boolean {
    const fds = opts.fds ?? [];
    const msg = encodeMessage(id, opcode, this.seq, opts.nFdsField ?? fds.length, body, opts.footer);
    this.seq++;
    return this.sendRaw(msg, fds.length > 0 ? fds : null);
  }

  /** Sends a header plus an arbitrary payload (for malformed PODs). */
  sendPayload(id: number, opcode: number, payload: Uint8Array, nFdsField = 0): boolean {
    const msg = new Uint8Array(16 + payload.length);
    msg.set(encodeHeader(id, opcode, payload.length, this.seq, nFdsField), 0);
    msg.set(payload, 16);
    this.seq++;
    return this.sendRaw(msg);
  }

  /** Core.CreateObject("client-node", ClientNode v4, props, newId), as pw_stream does. */
  createClientNode(props: Array<readonly [string, string]>, newId: number): boolean {
    return this.send(
      0,
      6,
      pod.struct(
        pod.string("client-node"),
        pod.string("PipeWire:Interface:ClientNode"),
        pod.int(4),
        pod.dict(props),
        pod.int(newId),
      ),
    );
  }

  /** Hello + Client.UpdateProperties, as libpipewire does on connect. */
  handshake(props: Record<string, string> = { "application.name": "crossway-raw-test" }): void {
    this.send(0, 1, pod.struct(pod.int(3)));
    this.send(1, 2, pod.struct(pod.dict(Object.entries(props))));
  }

  /** Waits until `pred` matches an event (returned), or the connection closes / times out (null). */
  async waitFor(pred: (e: RawEvent) => boolean, timeoutMs = 30_000): Promise<RawEvent | null> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.events.length; seen++) {
        const e = this.events[seen] as RawEvent;
        if (pred(e)) return e;
      }
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Core.Sync round trip: resolves true on the matching Done, false if the connection closed first. */
  async sync(timeoutMs = 30_000): Promise<boolean> {
    const token = 0x40000000 | this.seq;
    if (!this.send(0, 2, pod.struct(pod.int(0), pod.int(token)))) return false;
    const done = await this.waitFor((e) => e.id === 0 && e.opcode === 1 && field(e, 1) === token, timeoutMs);
    return done !== null;
  }

  /** Resolves when the peer has closed the connection (true) or after the timeout (false). */
  async waitClosed(timeoutMs = 30_000): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.closed;
  }

  /** Core.Error events addressed to `id` (any id when omitted). */
  errors(id?: number): RawEvent[] {
    return this.events.filter(
      (e) => e.id === 0 && e.opcode === 3 && (id === undefined || field(e, 0) === id),
    );
  }

  close(): void {
    this.markClosed();
  }
}

/** Field `i` of an event's Struct as a number or string (Int/Id/String), or undefined. */
export function field(e: RawEvent, i: number): number | string | undefined {
  const f = e.body?.fields[i];
  if (f === undefined) return undefined;
  if (f.t === "int" || f.t === "id") return f.v;
  if (f.t === "string") return f.v;
  return undefined;
}
