// Runs one request/answer exchange over a Unix socket with a named timeout: the doctor's probe of a live server.
import { connect } from "node:net";

/** How a round trip on a socket ended. */
export type RoundTripResult<T> =
  | { readonly kind: "answer"; readonly value: T }
  | { readonly kind: "connect-failed"; readonly code: string; readonly message: string }
  | { readonly kind: "closed"; readonly message: string }
  | { readonly kind: "timeout"; readonly ms: number };

/**
 * Connects to `path`, writes `request`, and feeds what comes back to `push` until it returns a value. Fds the
 * server might send are not accepted (node:net reads without SCM_RIGHTS, so the kernel closes them).
 */
export function socketRoundTrip<T>(
  path: string,
  request: Uint8Array,
  push: (bytes: Uint8Array) => T | undefined,
  timeoutMs: number,
): Promise<RoundTripResult<T>> {
  return new Promise((resolve) => {
    let settled = false;
    const sock = connect(path);
    const finish = (r: RoundTripResult<T>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ kind: "timeout", ms: timeoutMs }), timeoutMs);
    sock.on("connect", () => sock.write(request));
    sock.on("data", (b: Buffer) => {
      try {
        const v = push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
        if (v !== undefined) finish({ kind: "answer", value: v });
      } catch (err) {
        finish({ kind: "closed", message: `malformed answer: ${(err as Error).message}` });
      }
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      const connected = sock.bytesWritten > 0;
      finish(
        connected
          ? { kind: "closed", message: err.message }
          : { kind: "connect-failed", code: err.code ?? "?", message: err.message },
      );
    });
    sock.on("close", () => finish({ kind: "closed", message: "the server closed the connection" }));
  });
}
