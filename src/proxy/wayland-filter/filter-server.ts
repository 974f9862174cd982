// The Wayland filter's listener: the socket a VMM's cross-domain channel connects to; one FilterSession per client.
import { unlinkSync } from "node:fs";
import type { ListenFd } from "../../fd/listen-fds.ts";
import { removeStaleSocket } from "../../fd/stale-socket.ts";
import type { Logger } from "../../log.ts";
import { AGAIN, type NativeWatcher, native, POLL_READABLE } from "../../native.ts";
import type { ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";
import type { WlAuditSink } from "./audit.ts";
import type { FilterPolicy } from "./filter-policy.ts";
import { type FilterContext, FilterSession } from "./filter-session.ts";

/** Options of {@link startWaylandFilter}. */
export interface WaylandFilterOptions {
  /** Socket path to create; ignored when `listenFds` is non-empty (systemd socket activation). */
  readonly listenPath?: string;
  readonly listenFds?: readonly ListenFd[];
  /** The compositor's socket. */
  readonly upstreamPath: string;
  readonly policy: FilterPolicy;
  readonly registry: ProtocolRegistry;
  readonly audit: WlAuditSink;
  readonly log: Logger;
}

/** A running filter. */
export interface WaylandFilter {
  /** The socket path created, when not socket-activated. */
  readonly listenPath: string | undefined;
  /** Live connections. */
  readonly sessions: ReadonlySet<FilterSession>;
  /** Stops listening, ends every connection and removes the socket file it created. Idempotent. */
  close(): void;
}

/** Listens (or adopts inherited sockets) and filters every accepted client to its own compositor connection. */
export function startWaylandFilter(opts: WaylandFilterOptions): WaylandFilter {
  const ctx: FilterContext = {
    registry: opts.registry,
    policy: opts.policy,
    audit: opts.audit,
    log: opts.log,
  };
  const inherited = opts.listenFds ?? [];
  let created: number | undefined;
  if (inherited.length === 0) {
    const path = opts.listenPath as string;
    removeStaleSocket(path);
    created = native.unixListen(path, 64);
  }
  const listenFds = created !== undefined ? [created] : inherited.map((l) => l.fd);
  const sessions = new Set<FilterSession>();
  let counter = 0;
  let closed = false;

  const connect = (clientFd: number): void => {
    const tag = `c${++counter}`;
    let up: number;
    try {
      up = native.unixConnect(opts.upstreamPath);
    } catch (err) {
      // The compositor is gone or refuses: this client cannot be served, the others go on.
      native.close(clientFd);
      opts.log.error(
        { vm: opts.policy.name, client: tag, err: (err as Error).message },
        "cannot connect to the compositor",
      );
      return;
    }
    const s = FilterSession.start(clientFd, up, ctx, tag, (done) => sessions.delete(done));
    sessions.add(s);
    opts.log.info({ vm: opts.policy.name, client: tag }, "client connected");
  };

  const watchers: NativeWatcher[] = listenFds.map((lfd) => {
    const w = native.createWatcher(lfd, (status) => {
      if (status < 0 || closed) return;
      for (;;) {
        let fd: number;
        try {
          fd = native.unixAccept(lfd);
        } catch (err) {
          // EMFILE and friends: keep serving existing clients; the next readiness retries.
          opts.log.error({ err: (err as Error).message }, "accept failed");
          return;
        }
        if (fd === AGAIN) return;
        connect(fd);
      }
    });
    w.start(POLL_READABLE);
    return w;
  });

  return {
    listenPath: created !== undefined ? opts.listenPath : undefined,
    sessions,
    close() {
      if (closed) return;
      closed = true;
      for (const w of watchers) {
        w.stop();
        w.close();
      }
      for (const fd of listenFds) native.close(fd);
      for (const s of [...sessions]) s.close("filter shutting down");
      if (created !== undefined) {
        try {
          unlinkSync(opts.listenPath as string);
        } catch {
          // Already gone.
        }
      }
    },
  };
}
