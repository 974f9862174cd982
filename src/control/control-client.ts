// Asks a running command's control socket for its status (the client side of control-server.ts).
import { connect } from "node:net";
import { CrosswayError } from "../errors.ts";
import type { StatusReport } from "./status-report.ts";

/**
 * Sends `{"cmd":"status"}` (with `"gc":true` to have the command collect garbage before reading its memory) and
 * resolves with the report; CW_CONTROL names the socket and what went wrong.
 */
export function requestStatus(path: string, timeoutMs: number, gc = false): Promise<StatusReport> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let done = false;
    const sock = connect(path);
    const fail = (what: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      reject(new CrosswayError("CW_CONTROL", `crossway status: ${path}: ${what}`, { value: path }));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () =>
      sock.write(`${JSON.stringify(gc ? { cmd: "status", gc: true } : { cmd: "status" })}\n`),
    );
    sock.on("data", (d: string) => {
      buf += d;
    });
    sock.on("error", (err: NodeJS.ErrnoException) =>
      fail(
        err.code === "ENOENT"
          ? "no such socket (is the command running with --control?)"
          : err.code === "ECONNREFUSED"
            ? "refuses connections (the command is gone; a stale socket)"
            : err.message,
      ),
    );
    sock.on("end", () => {
      if (done) return;
      let msg: { status?: StatusReport; error?: string };
      try {
        msg = JSON.parse(buf) as typeof msg;
      } catch {
        fail(`answer is not JSON: ${JSON.stringify(buf.slice(0, 80))}`);
        return;
      }
      if (msg.status === undefined) {
        fail(msg.error ?? "answer has no status");
        return;
      }
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(msg.status);
    });
  });
}
