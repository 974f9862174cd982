// The tracing relay behind `crossway trace`: relays clients to upstream unchanged and prints every message.
import { CrosswayError } from "../errors.ts";
import { formatDebugLine } from "../wire/wayland/debug-format.ts";
import { NEED_MORE } from "../wire/wayland/framer.ts";
import type { ProtocolRegistry } from "../wire/wayland/protocol-registry.ts";
import { Direction, WireConnection } from "../wire/wayland/wire-connection.ts";
import { SocketRelay } from "./socket-relay.ts";

/** Options of {@link startTracer}. */
export interface TracerOptions {
  readonly socketPath: string;
  readonly upstreamPath: string;
  readonly registry: ProtocolRegistry;
  /** Prefix of each connection's tag: lines start with `${tag}#${n} ` (n counts clients from 1). */
  readonly tag?: string;
  readonly maxMessageSize?: number;
  /** Receives output text (whole lines, each ending in "\n"). */
  readonly write: (text: string) => void;
  /** Clock for the "[ms.us]" stamps, in realtime microseconds (default: the system clock). */
  readonly nowMicros?: () => number;
}

/** A running tracer. */
export interface Tracer {
  readonly socketPath: string;
  /** Connections currently open. */
  readonly connections: number;
  close(): void;
}

const realtimeMicros = (): number => (performance.timeOrigin + performance.now()) * 1000;

/**
 * Listens on `socketPath`; each client gets its own upstream connection, and bytes and fds pass through unchanged
 * (the relay never waits for parsing). Each message is printed in libwayland's WAYLAND_DEBUG client format. A
 * message the engine rejects is reported once with its error and wl_display.error; that connection is still
 * relayed, untraced, because the tracer must not change what the peers see.
 */
export function startTracer(opts: TracerOptions): Tracer {
  const tag = opts.tag ?? "client";
  const now = opts.nowMicros ?? realtimeMicros;
  const conns = new Map<number, WireConnection | null>();
  const relay = new SocketRelay(opts.socketPath, opts.upstreamPath, {
    onConnect: (id) => {
      conns.set(
        id,
        new WireConnection(opts.registry, {
          name: `${tag}#${id}`,
          unknownInterfaces: "skip",
          ...(opts.maxMessageSize !== undefined ? { maxMessageSize: opts.maxMessageSize } : {}),
        }),
      );
      opts.write(`${tag}#${id} connected\n`);
    },
    onChunk: (id, d, bytes, fds) => {
      const conn = conns.get(id);
      if (conn === undefined || conn === null) return;
      const dir = d === "c2s" ? Direction.REQUEST : Direction.EVENT;
      let out = "";
      try {
        conn.framer(dir).push(bytes);
        for (const fd of fds) conn.fdQueue(dir).push(fd);
        for (;;) {
          const m = conn.next(dir);
          if (m === NEED_MORE) break;
          out += `${tag}#${id} ${formatDebugLine(m, now())}\n`;
        }
      } catch (err) {
        conns.set(id, null);
        conn.drainFds(); // numbers only: the relay owns and closes the fds
        if (err instanceof CrosswayError) {
          const de =
            "displayError" in err
              ? (err as { displayError: { code: number; message: string } }).displayError
              : null;
          out += `${tag}#${id} error ${err.code}: ${err.message}${de !== null ? ` (wl_display.error ${de.code}: "${de.message}")` : ""}; no longer tracing this connection\n`;
        } else throw err;
      }
      if (out !== "") opts.write(out);
    },
    onClose: (id, why) => {
      conns.delete(id);
      opts.write(`${tag}#${id} closed (${why})\n`);
    },
  });
  return {
    socketPath: relay.socketPath,
    get connections() {
      return relay.connections;
    },
    close: () => relay.close(),
  };
}
