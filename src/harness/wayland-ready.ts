// Readiness of a Wayland server as a protocol answer: a wl_display.sync round trip, not "the socket exists".
import { connect } from "node:net";
import { CrosswayError } from "../errors.ts";
import { sleep } from "./processes.ts";

/** What one successful round trip saw: the interface names of the globals the server announced. */
export interface WaylandRoundtrip {
  globals: string[];
}

// Object ids the probe allocates: 1 is wl_display, 2 its wl_registry, 3 the wl_callback of the sync.
const DISPLAY = 1;
const REGISTRY = 2;
const CALLBACK = 3;

/**
 * Connects to `socketPath`, sends wl_display.get_registry + wl_display.sync and waits for wl_callback.done. A server
 * answers only from its dispatch loop, so this proves it is past its start-up (weston 10 creates its socket, then
 * loads modules and only then rejects bad options: the socket alone says nothing). Rejects with the reason when the
 * connection fails, closes, or does not answer within `timeoutMs`.
 */
export function waylandRoundtrip(socketPath: string, timeoutMs = 10_000): Promise<WaylandRoundtrip> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    const globals: string[] = [];
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err === undefined) resolve({ globals });
      else reject(err);
    };
    const timer = setTimeout(
      () => finish(new Error(`no wl_callback.done from ${socketPath} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on("connect", () => {
      const req = Buffer.alloc(24);
      req.writeUInt32LE(DISPLAY, 0);
      req.writeUInt32LE((12 << 16) | 1, 4); // wl_display.get_registry(new_id)
      req.writeUInt32LE(REGISTRY, 8);
      req.writeUInt32LE(DISPLAY, 12);
      req.writeUInt32LE((12 << 16) | 0, 16); // wl_display.sync(new_id)
      req.writeUInt32LE(CALLBACK, 20);
      sock.write(req);
    });
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 8) {
        const id = buf.readUInt32LE(0);
        const sizeOpcode = buf.readUInt32LE(4);
        const size = sizeOpcode >>> 16;
        const opcode = sizeOpcode & 0xffff;
        if (size < 8) return finish(new Error(`malformed message from ${socketPath}: size ${size}`));
        if (buf.length < size) break;
        if (id === DISPLAY && opcode === 0) {
          // wl_display.error(object, code, message)
          const code = size >= 16 ? buf.readUInt32LE(12) : -1;
          return finish(new Error(`${socketPath} answered with wl_display.error code ${code}`));
        }
        if (id === REGISTRY && opcode === 0 && size >= 16) {
          // wl_registry.global(name, interface, version): the string's length includes its NUL.
          const len = buf.readUInt32LE(12);
          if (len > 0 && 16 + len <= size) globals.push(buf.toString("utf8", 16, 16 + len - 1));
        }
        if (id === CALLBACK && opcode === 0) return finish(undefined);
        buf = buf.subarray(size);
      }
    });
    sock.on("error", (e) => finish(new Error(`${socketPath}: ${e.message} before wl_callback.done`)));
    sock.on("close", () => finish(new Error(`${socketPath} closed the connection before wl_callback.done`)));
  });
}

/**
 * Waits until the server at `socketPath` completes a round trip. `abort()` names a reason to stop early (the
 * process exited); `explain()` adds the peer's log to the error. Connection errors while the server is still
 * starting (no socket yet, refused) are retried until `timeoutMs`.
 */
export async function waitForWaylandRoundtrip(
  what: string,
  socketPath: string,
  opts: { timeoutMs?: number; abort?: () => string | undefined; explain?: () => string },
): Promise<WaylandRoundtrip> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last = "";
  for (;;) {
    const why = opts.abort?.();
    if (why !== undefined) throw startError(`${what}: ${why}`, opts.explain);
    const left = deadline - Date.now();
    if (left <= 0) throw startError(`timed out waiting for ${what} (last: ${last})`, opts.explain);
    try {
      return await waylandRoundtrip(socketPath, left);
    } catch (err) {
      last = (err as Error).message;
      // The reason may be that the process just died: report that rather than the closed socket.
      const died = opts.abort?.();
      if (died !== undefined) throw startError(`${what}: ${died}`, opts.explain);
      await sleep(20);
    }
  }
}

function startError(message: string, explain: (() => string) | undefined): CrosswayError {
  const e = explain?.();
  return new CrosswayError("CW_HARNESS_START", e === undefined || e === "" ? message : `${message}\n${e}`);
}
