// The pipewire-filter listener: accepts guest connections on a Unix socket and runs one FilterSession each.
import { unlinkSync } from "node:fs";
import type { ConnectionStatus } from "../../control/status-report.ts";
import { removeStaleSocket } from "../../fd/stale-socket.ts";
import { componentLogger } from "../../log.ts";
import { AGAIN, type NativeWatcher, native, POLL_READABLE } from "../../native.ts";
import { type AuditSink, pinoAuditSink } from "./audit.ts";
import { PROFILES, type ProfileName } from "./policy.ts";
import type { PipeWirePolicy } from "./policy-file.ts";
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
  /** Policy for connections accepted from now on (SIGHUP reload); connected clients keep theirs. */
  setPolicy(policy: PipeWirePolicy, generation: number): void;
  /** Every live connection's figures, for `crossway status`. */
  status(): ConnectionStatus[];
  /** Stops listening, closes every connection and removes the socket file. */
  close(): void;
}

/** Starts listening on `listenPath`; each accepted client gets its own restricted upstream connection. */
export function startPipeWireFilter(opts: PipeWireFilterOptions): PipeWireFilter {
  const log = componentLogger("pipewire-filter");
  let cfg: FilterConfig = {
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
  const generations = new Map<FilterSession, number>();
  let generation = 1;
  let counter = 0;
  let closed = false;
  const watcher: NativeWatcher = native.createWatcher(lfd, (status) => {
    if (status < 0 || closed) return;
    for (;;) {
      const fd = native.unixAccept(lfd);
      if (fd === AGAIN) break;
      const s = new FilterSession(`c${++counter}`, fd, cfg, (done) => {
        sessions.delete(done);
        generations.delete(done);
      });
      sessions.add(s);
      generations.set(s, generation);
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
    setPolicy(p, gen) {
      cfg = {
        ...cfg,
        profile: PROFILES[p.profile],
        targets: p.targets,
        tag: p.tag,
        cameraControls: p.cameraControls,
      };
      generation = gen;
      log.info({ profile: p.profile, generation: gen }, "policy replaced for new connections");
    },
    status() {
      return [...sessions].map((s) => ({ ...s.status(), policyGeneration: generations.get(s) ?? 0 }));
    },
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
