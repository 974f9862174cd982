// Captures a real libwayland client's traffic (bytes + fd counts per direction) and its own WAYLAND_DEBUG output.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SocketRelay } from "../../src/trace/socket-relay.ts";
import type { Compositor } from "./compositor.ts";
import { requireCommand } from "./processes.ts";

/** One recvmsg chunk as the relay saw it. */
export interface CapturedChunk {
  /** c2s: client → compositor (requests); s2c: compositor → client (events). */
  readonly d: "c2s" | "s2c";
  /** Number of fds that arrived with this chunk. */
  readonly fds: number;
  readonly b64: string;
}

/** A stored capture (test/fixtures/wayland/*.json). */
export interface WaylandFixture {
  readonly name: string;
  readonly argv: readonly string[];
  readonly compositor: string;
  readonly packages: Readonly<Record<string, string>>;
  readonly chunks: readonly CapturedChunk[];
  /** The client's own stderr with WAYLAND_DEBUG=1 (libwayland's lines, timestamps included). */
  readonly debug: string;
}

/** Options of {@link captureClient}. */
export interface CaptureOptions {
  /** Send SIGINT after this long (for clients that run until interrupted, e.g. weston-simple-shm). */
  readonly interruptAfterMs?: number;
  /** Debian package of the client, named when the command is missing. */
  readonly debPackage: string;
  readonly timeoutMs?: number;
}

/**
 * Runs `argv` against `compositor` through a capturing relay with WAYLAND_DEBUG=1 and returns what crossed the
 * socket (each recvmsg chunk with its fd count) plus the client's stderr. Only the first connection is recorded.
 */
export async function captureClient(
  name: string,
  compositor: Compositor,
  argv: readonly string[],
  opts: CaptureOptions,
): Promise<Omit<WaylandFixture, "packages" | "compositor">> {
  const [cmd, ...args] = argv as [string, ...string[]];
  requireCommand(cmd, opts.debPackage);
  const dir = mkdtempSync(join(tmpdir(), "crossway-capture-"));
  const chunks: CapturedChunk[] = [];
  let closed!: () => void;
  const connectionClosed = new Promise<void>((r) => {
    closed = r;
  });
  const relay = new SocketRelay(join(dir, "relay.sock"), compositor.socketPath, {
    onChunk: (id, d, bytes, fds) => {
      if (id === 1) chunks.push({ d, fds: fds.length, b64: Buffer.from(bytes).toString("base64") });
    },
    onClose: (id) => {
      if (id === 1) closed();
    },
  });
  try {
    const child = spawn(cmd, args, {
      env: { ...compositor.env, WAYLAND_DISPLAY: relay.socketPath, WAYLAND_DEBUG: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const err: Buffer[] = [];
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
    const timers: NodeJS.Timeout[] = [];
    if (opts.interruptAfterMs !== undefined)
      timers.push(setTimeout(() => child.kill("SIGINT"), opts.interruptAfterMs));
    timers.push(setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 15_000));
    await exited;
    for (const t of timers) clearTimeout(t);
    await Promise.race([connectionClosed, new Promise((r) => setTimeout(r, 2000))]);
    return { name, argv, chunks, debug: Buffer.concat(err).toString("utf8") };
  } finally {
    relay.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
