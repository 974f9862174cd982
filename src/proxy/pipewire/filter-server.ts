// The pipewire-filter listener: accepts guest connections on a Unix socket and runs one FilterSession each.
import { unlinkSync } from "node:fs";
import { removeStaleSocket } from "../../fd/stale-socket.ts";
import { componentLogger } from "../../log.ts";
import { AGAIN, type NativeWatcher, native, POLL_READABLE } from "../../native.ts";
import { type AuditSink, pinoAuditSink } from "./audit.ts";
import { PROFILES, type ProfileName } from "./policy.ts";
import { DEFAULT_LIMITS, type FilterConfig, type FilterLimits, FilterSession } from "./session.ts";

/** Options of {@link startPipeWireFilter}. */
export interface PipeWireFilterOptions {
  readonly listenPath: string;
  readonly upstreamPath: string;
  readonly profile: ProfileName;
  readonly targets?: readonly string[];
  readonly tag?: string;
  readonly cameraControls?: boolean;
  readonly limits?: Partial<FilterLimits>;
  readonly audit?: AuditSink;
  /** See {@link FilterConfig.tap}. */
  readonly tap?: FilterConfig["tap"];
}

/** A running filter. */
export interface PipeWireFilter {
  readonly listenPath: string;
  /** Live connections. */
  readonly sessions: ReadonlySet<FilterSession>;
  /** Stops listening, closes every connection and removes the socket file. */
  close(): void;
}

/** Starts listening on `listenPath`; each accepted client gets its own restricted upstream connection. */
export function startPipeWireFilter(opts: PipeWireFilterOptions): PipeWireFilter {
  const log = componentLogger("pipewire-filter");
  const cfg: FilterConfig = {
    upstreamPath: opts.upstreamPath,
    profile: PROFILES[opts.profile],
    targets: opts.targets ?? [],
    tag: opts.tag ?? "guest.",
    cameraControls: opts.cameraControls ?? false,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    audit: opts.audit ?? pinoAuditSink,
    log,
    ...(opts.tap !== undefined ? { tap: opts.tap } : {}),
  };
  removeStaleSocket(opts.listenPath);
  const lfd = native.unixListen(opts.listenPath, 16);
  const sessions = new Set<FilterSession>();
  let counter = 0;
  let closed = false;
  const watcher: NativeWatcher = native.createWatcher(lfd, (status) => {
    if (status < 0 || closed) return;
    for (;;) {
      const fd = native.unixAccept(lfd);
      if (fd === AGAIN) break;
      const s = new FilterSession(`c${++counter}`, fd, cfg, (done) => sessions.delete(done));
      sessions.add(s);
      try {
        s.start();
      } catch (err) {
        sessions.delete(s);
        log.error(
          { conn: s.name, err: err instanceof Error ? err.message : String(err) },
          "connection refused",
        );
      }
    }
  });
  watcher.start(POLL_READABLE);
  log.info(
    { listen: opts.listenPath, upstream: opts.upstreamPath, profile: opts.profile },
    "pipewire-filter listening",
  );
  return {
    listenPath: opts.listenPath,
    sessions,
    close() {
      if (closed) return;
      closed = true;
      watcher.stop();
      watcher.close();
      native.close(lfd);
      for (const s of [...sessions]) s.close();
      try {
        unlinkSync(opts.listenPath);
      } catch {
        // Already gone.
      }
    },
  };
}
