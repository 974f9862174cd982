// The guest Wayland server: listens on the guest's display socket and gives each client its own channel to the host.
import type { ConnectionStatus, SpareChannelsStatus } from "../../control/status-report.ts";
import { CrossDomainChannel } from "../../crossdomain/channel.ts";
import { ChannelReserve } from "../../crossdomain/channel-reserve.ts";
import { openVirtGpu } from "../../crossdomain/open-virtgpu.ts";
import {
  ChannelType,
  type CrossDomainConfig,
  DEFAULT_CONFIG,
  type IdentifierArraySize,
} from "../../crossdomain/protocol.ts";
import { RecentBlobSizes } from "../../crossdomain/recent-blob-sizes.ts";
import { CrosswayError } from "../../errors.ts";
import { Listeners } from "../../fd/accept.ts";
import type { ListenFd } from "../../fd/listen-fds.ts";
import { listenWayland, type WaylandSocket } from "../../fd/wayland-socket.ts";
import type { Logger } from "../../log.ts";
import { native } from "../../native.ts";
import type { ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";
import { ClientSession, type SessionContext } from "./client-session.ts";
import type { GuestConfig } from "./guest-config.ts";

/** Checks a `--device` value early (emulated:PATH, virtgpu or virtgpu:NODE), so a typo fails at start. */
export function checkDeviceSpec(text: string): string {
  if (/^emulated:.+$/.test(text) || text === "virtgpu" || /^virtgpu:.+$/.test(text)) return text;
  throw new CrosswayError(
    "CW_USAGE",
    `crossway guest: --device must be emulated:PATH, virtgpu or virtgpu:NODE, not '${text}'`,
  );
}

/** Channel options for an identifier setting: learn the host's layout, or check a fixed one against the host. */
function channelLayout(ids: IdentifierArraySize | "auto"): {
  probeLayout: "adopt" | "verify";
  config: CrossDomainConfig;
} {
  return ids === "auto"
    ? { probeLayout: "adopt", config: DEFAULT_CONFIG }
    : { probeLayout: "verify", config: { ...DEFAULT_CONFIG, maxIdentifiers: ids } };
}

/** Options of {@link GuestServer.start}. */
export interface GuestServerOptions {
  /** A device spec for openVirtGpu: one context is opened per client. */
  readonly device: string;
  /** Channels kept open ahead of clients (default 1; 0 opens each client's channel when it connects). */
  readonly spareChannels?: number;
  /** Identifier slots per SEND/RECEIVE: a fixed count, or "auto" to learn it from the host (default). */
  readonly identifiers?: IdentifierArraySize | "auto";
  /** Display name or absolute path; default: the first free wayland-N in $XDG_RUNTIME_DIR. */
  readonly socket?: string;
  /** Sockets inherited through systemd socket activation; used instead of creating one. */
  readonly listenFds?: readonly ListenFd[];
  readonly config: GuestConfig;
  readonly registry: ProtocolRegistry;
  readonly log: Logger;
}

/** A running guest proxy. */
export class GuestServer {
  private readonly sessions = new Set<ClientSession>();
  private readonly opening = new Set<number>();
  private readonly listeners: Listeners;
  private counter = 0;
  private closed = false;
  /** The config new clients get (replaced by {@link GuestServer.setConfig}); each session keeps the one it got. */
  private config: GuestConfig;
  private generation = 1;
  private readonly generations = new Map<ClientSession, number>();
  private readonly reserve: ChannelReserve;
  /** Pool sizes this guest's clients used lately: every channel opened asks their requirements ahead. */
  private readonly blobSizes = new RecentBlobSizes();

  private constructor(
    private readonly opts: GuestServerOptions,
    private readonly sockets: WaylandSocket[],
    private readonly inherited: readonly ListenFd[],
  ) {
    this.config = opts.config;
    this.reserve = new ChannelReserve({
      size: opts.spareChannels ?? 1,
      open: (logger) => this.openChannel(logger),
      log: opts.log,
    });
    const fds = [...sockets.map((s) => s.fd), ...inherited.map((l) => l.fd)];
    // EMFILE and friends: keep serving existing clients; the next readiness retries.
    this.listeners = new Listeners(
      fds,
      (fd) => this.connect(fd),
      (err) => this.opts.log.error({ err: err.message }, "accept failed"),
    );
  }

  /** Listens (or adopts inherited sockets) and starts accepting clients. */
  static start(opts: GuestServerOptions): GuestServer {
    if (opts.listenFds !== undefined && opts.listenFds.length > 0)
      return new GuestServer(opts, [], opts.listenFds);
    const sock = listenWayland(opts.socket !== undefined ? { name: opts.socket } : {});
    return new GuestServer(opts, [sock], []);
  }

  /** The socket clients connect to (absolute path), when crossway created it. */
  get socketPath(): string | undefined {
    return this.sockets[0]?.path;
  }

  /** WAYLAND_DISPLAY value for clients. */
  get displayName(): string | undefined {
    return this.sockets[0]?.displayName;
  }

  /** Live client sessions (for diagnostics and tests). */
  get clientCount(): number {
    return this.sessions.size;
  }

  /** Config for clients that connect from now on (SIGHUP reload); connected clients keep theirs. */
  setConfig(config: GuestConfig, generation: number): void {
    this.config = config;
    this.generation = generation;
  }

  /** The spare channels and the requirements asked ahead on them, for `crossway status`. */
  reserveStatus(): SpareChannelsStatus {
    return { ...this.reserve.status(), requirementsAhead: this.blobSizes.status() };
  }

  /** Every live session's figures, for `crossway status`. */
  status(): ConnectionStatus[] {
    return [...this.sessions].map((s) => ({ ...s.status(), policyGeneration: this.generations.get(s) ?? 0 }));
  }

  /** A new channel to the host: its own virtio-gpu context, set up as --identifiers says. */
  private async openChannel(logger: Logger): Promise<CrossDomainChannel> {
    const channel = await CrossDomainChannel.open({
      gpu: openVirtGpu(this.opts.device),
      channelType: ChannelType.WAYLAND,
      ...channelLayout(this.opts.identifiers ?? "auto"),
      logger,
    });
    // While it waits for its client (a spare), or before the client's first pool (opened on demand).
    channel.askLinearAhead(this.blobSizes);
    return channel;
  }

  private connect(clientFd: number): void {
    const tag = `c${++this.counter}`;
    const log = this.opts.log;
    this.opening.add(clientFd);
    // The config is chosen at accept time: a reload while the channel opens does not change this client's.
    const generation = this.generation;
    const config = this.config;
    this.reserve.take(log.child({ client: tag })).then(
      (channel) => {
        this.opening.delete(clientFd);
        if (this.closed) {
          channel.close();
          native.close(clientFd);
          return;
        }
        const ctx: SessionContext = {
          registry: this.opts.registry,
          config,
          // linux-dmabuf only where the host allocates real dmabufs (never on the emulated device).
          policy: { globals: config.globals, dmabuf: channel.caps.supportsDmabuf },
          log,
          blobSizes: this.blobSizes,
        };
        let s: ClientSession;
        try {
          s = ClientSession.start(clientFd, channel, ctx, tag, (ended) => {
            this.sessions.delete(ended);
            this.generations.delete(ended);
          });
        } catch (err) {
          // A session that cannot even start (e.g. a configuration the wire layer refuses) ends this client only.
          channel.close();
          native.close(clientFd);
          log.error({ client: tag, err: (err as Error).message }, "cannot start a session for the client");
          return;
        }
        this.sessions.add(s);
        this.generations.set(s, generation);
        log.info({ client: tag }, "client connected");
      },
      (err: unknown) => {
        this.opening.delete(clientFd);
        native.close(clientFd);
        log.error(
          { client: tag, err: (err as Error).message },
          "cannot open a cross-domain channel for the client",
        );
      },
    );
  }

  /** Stops accepting, ends every session and removes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.stop();
    this.reserve.close();
    for (const s of [...this.sessions]) s.close("proxy shutting down");
    for (const s of this.sockets) s.close();
    for (const l of this.inherited) native.close(l.fd);
  }
}
