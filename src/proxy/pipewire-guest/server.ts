// The guest PipeWire server: listens on the guest's pipewire-0 and gives each client its own cross-domain context.
import { CrossDomainChannel } from "../../crossdomain/channel.ts";
import { openVirtGpu } from "../../crossdomain/open-virtgpu.ts";
import { ChannelType, type CrossDomainConfig, type HostFlavor } from "../../crossdomain/protocol.ts";
import type { VirtGpu } from "../../crossdomain/virtgpu.ts";
import { CrosswayError } from "../../errors.ts";
import { Listeners } from "../../fd/accept.ts";
import type { ListenFd } from "../../fd/listen-fds.ts";
import { listenWayland, type WaylandSocket } from "../../fd/wayland-socket.ts";
import type { Logger } from "../../log.ts";
import { native } from "../../native.ts";
import { GuestPipeWireSession } from "./session.ts";

/** PipeWire's default socket name (pw-doc protocol.dox "Making a connection"). */
export const DEFAULT_PIPEWIRE_SOCKET = "pipewire-0";

/** Options of {@link GuestPipeWireServer.start}. */
export interface GuestPipeWireOptions {
  /** A device spec for openVirtGpu: one context per client. */
  readonly device: string;
  /** Socket name (in $XDG_RUNTIME_DIR) or absolute path; default pipewire-0. */
  readonly socket?: string;
  /** Inherited listening sockets (systemd LISTEN_FDS) meant for PipeWire; used instead of creating one. */
  readonly listenFds?: readonly ListenFd[];
  /**
   * The host's flavour. libkrun: the 24-byte INIT (protocol_version 1), which libkrun needs for its PipeWire
   * channel and eventfd items; crosvm/upstream: the portable 20-byte INIT (upstream rejects 24 bytes, §3.3).
   */
  readonly flavor: HostFlavor;
  readonly log: Logger;
}

/** A running guest PipeWire proxy. */
export class GuestPipeWireServer {
  private readonly sessions = new Set<GuestPipeWireSession>();
  private readonly listeners: Listeners;
  private counter = 0;
  private closed = false;

  private constructor(
    private readonly opts: GuestPipeWireOptions,
    private readonly socket: WaylandSocket | undefined,
    private readonly inherited: readonly ListenFd[],
  ) {
    const fds = socket !== undefined ? [socket.fd] : inherited.map((l) => l.fd);
    // EMFILE and friends: keep serving existing clients; the next readiness retries.
    this.listeners = new Listeners(
      fds,
      (fd) => this.connect(fd),
      (err) => this.opts.log.error({ err: err.message }, "PipeWire accept failed"),
    );
  }

  /**
   * Listens on `socket` with a `NAME.lock` taken by flock, as PipeWire's own module-protocol-native does (the same
   * scheme as libwayland's), or adopts inherited sockets.
   */
  static start(opts: GuestPipeWireOptions): GuestPipeWireServer {
    if (opts.listenFds !== undefined && opts.listenFds.length > 0) {
      return new GuestPipeWireServer(opts, undefined, opts.listenFds);
    }
    const name = opts.socket ?? DEFAULT_PIPEWIRE_SOCKET;
    let sock: WaylandSocket;
    try {
      sock = listenWayland({ name });
    } catch (err) {
      throw new CrosswayError(
        "CW_PWG_SOCKET",
        `cannot listen on PipeWire socket '${name}': ${(err as Error).message.replace(/another Wayland server is using display .*$/, "another server is using it")}`,
        { arg: "pipewire", value: name },
        { cause: err },
      );
    }
    return new GuestPipeWireServer(opts, sock, []);
  }

  /** Absolute path of the socket, when crossway created it. */
  get socketPath(): string | undefined {
    return this.socket?.path;
  }

  /** Live client sessions. */
  get clientCount(): number {
    return this.sessions.size;
  }

  private connect(clientFd: number): void {
    const tag = `pw${++this.counter}`;
    const log = this.opts.log;
    let gpu: VirtGpu;
    try {
      gpu = openVirtGpu(this.opts.device);
    } catch (err) {
      native.close(clientFd);
      log.error(
        { client: tag, err: (err as Error).message },
        "cannot open a virtio-gpu context for the client",
      );
      return;
    }
    const libkrun = this.opts.flavor === "libkrun";
    const config: CrossDomainConfig = { flavor: this.opts.flavor, maxIdentifiers: 28 };
    CrossDomainChannel.open({
      gpu,
      channelType: ChannelType.PIPEWIRE,
      config,
      initForm: libkrun ? "libkrun" : "v1",
      logger: log.child({ client: tag }),
    }).then(
      (channel) => {
        if (this.closed) {
          channel.close();
          native.close(clientFd);
          return;
        }
        const s = GuestPipeWireSession.start(clientFd, channel, { log }, tag, (ended) =>
          this.sessions.delete(ended),
        );
        this.sessions.add(s);
        log.info({ client: tag }, "PipeWire client connected");
      },
      (err: unknown) => {
        native.close(clientFd);
        log.error(
          { client: tag, err: (err as Error).message },
          "cannot open a PipeWire channel for the client",
        );
      },
    );
  }

  /** Stops accepting, ends every session, removes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.stop();
    for (const s of [...this.sessions]) s.close("proxy shutting down");
    this.socket?.close();
    for (const l of this.inherited) native.close(l.fd);
  }
}
