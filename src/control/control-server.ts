// A command's control socket: answers one JSON request per connection (`{"cmd":"status"}`) with one JSON line.
import { chmodSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { CrosswayError } from "../errors.ts";
import { removeStaleSocket } from "../fd/stale-socket.ts";
import type { Logger } from "../log.ts";
import type { StatusReport } from "./status-report.ts";

/** Longest request line accepted; a status request is a few bytes, so anything longer is not one. */
const MAX_REQUEST_BYTES = 4096;

/** What a status request may ask for besides the report itself. */
export interface StatusRequest {
  /** Run a full garbage collection before reading memory (`crossway status --gc`). */
  readonly gc: boolean;
}

/** A listening control socket. */
export interface ControlServer {
  readonly path: string;
  /** Stops listening, ends open control connections and removes the socket file. Idempotent. */
  close(): void;
}

/**
 * Listens on `path` (mode 0600: only the command's user may ask) and answers `status` with `report()`.
 * Resolves once the socket accepts connections, so a ready line printed after it is true.
 */
export async function startControlServer(
  path: string,
  report: (request: StatusRequest) => StatusReport,
  log: Logger,
): Promise<ControlServer> {
  removeStaleSocket(path, "--control");
  const open = new Set<Socket>();
  const server: Server = createServer((sock) => {
    open.add(sock);
    sock.on("close", () => open.delete(sock));
    sock.on("error", () => sock.destroy());
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0 && buf.length <= MAX_REQUEST_BYTES) return;
      sock.removeAllListeners("data");
      sock.end(`${JSON.stringify(answer(nl < 0 ? null : buf.slice(0, nl), report))}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new CrosswayError("CW_CONFIG", `--control ${path}: cannot listen (${err.message})`, { value: path }),
      ),
    );
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  server.on("error", (err) => log.error({ err: err.message }, "control socket failed"));
  let closed = false;
  return {
    path,
    close() {
      if (closed) return;
      closed = true;
      server.close();
      for (const s of open) s.destroy();
      try {
        unlinkSync(path);
      } catch {
        // Already gone.
      }
    },
  };
}

/** The answer to one request line: the report, or an error naming what was wrong with the request. */
function answer(line: string | null, report: (request: StatusRequest) => StatusReport): unknown {
  if (line === null) return { error: `request longer than ${MAX_REQUEST_BYTES} bytes without a newline` };
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { error: `request is not JSON: ${JSON.stringify(line.slice(0, 80))}` };
  }
  if (typeof req !== "object" || req === null || Array.isArray(req)) {
    return { error: `request is not a JSON object: ${JSON.stringify(line.slice(0, 80))}` };
  }
  const { cmd, gc } = req as { cmd?: unknown; gc?: unknown };
  if (cmd !== "status") return { error: `unknown request ${JSON.stringify(cmd ?? null)} (known: status)` };
  if (gc !== undefined && typeof gc !== "boolean") {
    return { error: `"gc" must be true or false, not ${JSON.stringify(gc)}` };
  }
  return { status: report({ gc: gc === true }) };
}
