// A hostile guest's transport for tests: raw bytes from a local socket go over a cross-domain channel unparsed.
//
// `crossway guest` parses and polices everything; a compromised guest would not run it. This bridge stands for
// that guest: whatever a RawWaylandClient writes reaches the device (and the host filter behind it) byte for byte.
// Fds become what a guest kernel could send: a pipe's write end a read-pipe item, any other fd a host blob of
// its size (contents not copied: attacks only need the size).

import type { SendItem } from "../../src/crossdomain/channel.ts";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openVirtGpu } from "../../src/crossdomain/open-virtgpu.ts";
import { ChannelType, DrmFormat } from "../../src/crossdomain/protocol.ts";
import { FdOutputQueue } from "../../src/fd/fd-output-queue.ts";
import { removeStaleSocket } from "../../src/fd/stale-socket.ts";
import {
  AGAIN,
  MAX_FDS_PER_MSG,
  type NativeWatcher,
  native,
  POLL_READABLE,
  POLL_WRITABLE,
} from "../../src/native.ts";

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;

/** One accepted raw client and its channel. */
class BridgedClient {
  private readonly out: FdOutputQueue;
  private readonly watcher: NativeWatcher;
  private readonly buf = new Uint8Array(65536);
  private readonly fdsIn = new Int32Array(MAX_FDS_PER_MSG + 1);
  private busy: Promise<void> = Promise.resolve();
  private sending = 0;
  private paused = false;
  closed = false;

  constructor(
    private readonly fd: number,
    private readonly channel: CrossDomainChannel,
    private readonly onDone: (c: BridgedClient) => void,
  ) {
    this.out = new FdOutputQueue(fd);
    this.watcher = native.createWatcher(fd, (status, events) => this.onEvent(status, events));
    channel.onReceive = (data, items) => {
      const fds: number[] = [];
      for (const it of items) if ("fd" in it) fds.push(it.fd);
      this.out.append(data.slice(), fds);
      try {
        if (this.out.flush() === "blocked") {
          // A client that does not read: stop reading the device, so the host side sees it as not reading.
          this.paused = true;
          this.rearm();
          return "pause";
        }
      } catch {
        this.close();
      }
      return "continue";
    };
    channel.onClose = () => this.close();
    channel.onDrain = () => this.rearm();
    this.rearm();
  }

  private rearm(): void {
    if (this.closed) return;
    this.watcher.start((this.sending === 0 ? POLL_READABLE : 0) | (this.out.pending > 0 ? POLL_WRITABLE : 0));
  }

  private onEvent(status: number, events: number): void {
    if (this.closed) return;
    try {
      if (status < 0) throw new Error("client socket error");
      if ((events & POLL_WRITABLE) !== 0 && this.out.flush() === "done" && this.paused) {
        this.paused = false;
        this.channel.resume();
      }
      if ((events & POLL_READABLE) !== 0 && this.sending === 0) this.read();
      this.rearm();
    } catch {
      this.close();
    }
  }

  private read(): void {
    const n = native.recvmsg(this.fd, this.buf, 0, this.buf.length, this.fdsIn);
    if (n === AGAIN) return;
    const fds = Array.from(this.fdsIn.subarray(1, 1 + (this.fdsIn[0] as number)));
    if (n === 0) {
      for (const f of fds) native.close(f);
      this.close();
      return;
    }
    const bytes = this.buf.slice(0, n);
    this.sending++;
    // In order: a chunk with fds waits for its blobs, and later chunks wait for it.
    this.busy = this.busy
      .then(async () => {
        const items: SendItem[] = [];
        for (const f of fds) items.push(await this.toItem(f));
        if (!this.closed) this.channel.send(bytes, items);
      })
      .catch(() => this.close())
      .finally(() => {
        this.sending--;
        this.rearm();
      });
  }

  private async toItem(fd: number): Promise<SendItem> {
    const st = native.fstat(fd);
    if ((st.mode & S_IFMT) === S_IFIFO) return { kind: "read-pipe", fd };
    try {
      const size = Math.max(4096, st.size);
      const reqs = await this.channel.imageRequirements(size, 1, DrmFormat.R8);
      const blob = await this.channel.createHostBlob(reqs);
      return { kind: "blob", resourceId: blob.resourceId };
    } finally {
      native.close(fd);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.watcher.close();
    this.out.discard();
    native.close(this.fd);
    this.channel.close();
    this.onDone(this);
  }
}

/**
 * A listening bridge: each client gets its own WAYLAND channel on `deviceSpec` (`emulated:PATH` for the emulated
 * device, `virtgpu` inside a VM: what any guest process that can open the DRM node can do).
 */
export class RawChannelBridge {
  private readonly listenFd: number;
  private readonly watcher: NativeWatcher;
  private readonly clients = new Set<BridgedClient>();
  private readonly opening = new Set<Promise<void>>();
  private closed = false;

  constructor(
    readonly socketPath: string,
    private readonly deviceSpec: string,
  ) {
    removeStaleSocket(socketPath);
    this.listenFd = native.unixListen(socketPath, 16);
    this.watcher = native.createWatcher(this.listenFd, () => this.accept());
    this.watcher.start(POLL_READABLE);
  }

  private accept(): void {
    for (;;) {
      const fd = native.unixAccept(this.listenFd);
      if (fd === AGAIN) return;
      const p = CrossDomainChannel.open({
        gpu: openVirtGpu(this.deviceSpec),
        channelType: ChannelType.WAYLAND,
        // The host's SEND/RECEIVE header has 4 or 28 identifier slots (rutabaga 0.1.2: 4): a guest that assumed
        // 28 against a 4-slot host read its RECEIVEs' data from the wrong offset (zeros: a size-0 Wayland frame).
        probeLayout: "adopt",
      }).then(
        (channel) => {
          if (this.closed) {
            channel.close();
            native.close(fd);
            return;
          }
          this.clients.add(new BridgedClient(fd, channel, (c) => this.clients.delete(c)));
        },
        () => native.close(fd),
      );
      this.opening.add(p);
      void p.finally(() => this.opening.delete(p));
    }
  }

  /** Resolves once every bridged client has ended (their channels close asynchronously after the client). */
  async idle(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.clients.size > 0 || this.opening.size > 0) {
      if (Date.now() > deadline)
        throw new Error(`${this.clients.size} bridged clients still open after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops listening and ends every bridged client. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.watcher.close();
    native.close(this.listenFd);
    await Promise.all([...this.opening]);
    for (const c of [...this.clients]) c.close();
    removeStaleSocket(this.socketPath);
  }
}
