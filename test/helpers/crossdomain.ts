// Test helpers for cross-domain: a real `crossway device` process and a test-owned host peer socket (native addon).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";
import { decodeFrameHeader, FRAME_HEADER_SIZE } from "../../src/crossdomain/device-protocol.ts";
import { AGAIN, MAX_FDS_PER_MSG, type NativeWatcher, native, POLL_READABLE } from "../../src/native.ts";

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

/** A running `crossway device` child. */
export interface DeviceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly socket: string;
  /** Everything the device wrote to stderr (its log). */
  stderr(): string;
  stop(): Promise<void>;
}

/** Spawns `node bin/crossway.js device --listen DIR/device.sock ...extra` and waits for its ready line. */
export async function startDeviceProcess(dir: string, extra: readonly string[]): Promise<DeviceProcess> {
  const socket = join(dir, "device.sock");
  // CROSSWAY_TEST_PAGE_SIZE plays a guest of that page size (rings of one page): the 16 KiB transport run sets it.
  const page = process.env.CROSSWAY_TEST_PAGE_SIZE;
  const pageArgs = page !== undefined && !extra.includes("--page-size") ? ["--page-size", page] : [];
  const child = spawn(process.execPath, [BIN, "device", "--listen", socket, ...pageArgs, ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CROSSWAY_LOG: process.env.CROSSWAY_LOG ?? "warn" },
  });
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`crossway device did not start in 20 s: ${err}`)),
      20_000,
    );
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`crossway device exited with ${code}: ${err}`));
    });
  });
  return {
    child,
    pid: child.pid!,
    socket,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A Unix server standing in for the host compositor: hands out accepted connections in order. */
export class HostServer {
  readonly fd: number;
  private readonly watcher: NativeWatcher;
  private readonly accepted: number[] = [];
  private readonly waiting: Array<(fd: number) => void> = [];

  constructor(readonly path: string) {
    this.fd = native.unixListen(path, 8);
    this.watcher = native.createWatcher(this.fd, () => {
      for (;;) {
        const c = native.unixAccept(this.fd);
        if (c === AGAIN) return;
        const w = this.waiting.splice(0, 1)[0];
        if (w !== undefined) w(c);
        else this.accepted.push(c);
      }
    });
    this.watcher.start(POLL_READABLE);
  }

  /** The next accepted connection (the device's connect on INIT). */
  next(): Promise<number> {
    const c = this.accepted.splice(0, 1)[0];
    if (c !== undefined) return Promise.resolve(c);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  close(): void {
    this.watcher.stop();
    this.watcher.close();
    native.close(this.fd);
    for (const c of this.accepted) native.close(c);
  }
}

/** Reads from a peer socket until `bytes` bytes have arrived; returns the data and every fd, per recvmsg. */
export function readPeer(
  fd: number,
  bytes: number,
): Promise<{ data: Uint8Array; fds: number[]; fdBatches: number[] }> {
  return new Promise((resolve, reject) => {
    const data = new Uint8Array(bytes);
    let got = 0;
    const fds: number[] = [];
    const fdBatches: number[] = [];
    const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
    const w = native.createWatcher(fd, () => {
      for (;;) {
        let n: number;
        try {
          n = native.recvmsg(fd, data, got, bytes - got, fdsOut);
        } catch (err) {
          w.stop();
          w.close();
          reject(err);
          return;
        }
        if (fdsOut[0]! > 0) fdBatches.push(fdsOut[0]!);
        for (let i = 0; i < fdsOut[0]!; i++) fds.push(fdsOut[1 + i]!);
        if (n === AGAIN) return;
        if (n === 0) {
          w.stop();
          w.close();
          reject(new Error(`peer EOF after ${got} of ${bytes} bytes`));
          return;
        }
        got += n;
        if (got === bytes) {
          w.stop();
          w.close();
          resolve({ data, fds, fdBatches });
          return;
        }
      }
    });
    w.start(POLL_READABLE);
  });
}

/** Writes all of `data` to a non-blocking fd (pipe or socket), waiting for room; fds ride on the first byte. */
export async function writeAll(fd: number, data: Uint8Array, fds: number[] | null = null): Promise<void> {
  let off = 0;
  let first = fds;
  while (off < data.length) {
    const n =
      first !== null
        ? native.sendmsg(fd, data, off, data.length - off, first)
        : native.write(fd, data, off, data.length - off);
    if (n === AGAIN) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    first = null;
    off += n;
  }
}

/** Reads a non-blocking fd until EOF. */
export async function readToEof(fd: number, limit = 64 << 20): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = native.read(fd, buf, 0, buf.length);
    if (n === AGAIN) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    if (n === 0) break;
    chunks.push(buf.slice(0, n));
    total += n;
    if (total > limit) throw new Error("readToEof: over limit");
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Deterministic pseudo-random bytes. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Byte equality without vitest's slow deep-equal on large arrays; the message says where they differ. */
export function sameBytes(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  const i = Buffer.from(a.buffer, a.byteOffset, a.length).compare(
    Buffer.from(b.buffer, b.byteOffset, b.length),
  );
  if (i === 0) return "equal";
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return `first difference at byte ${k}`;
  return "equal";
}

/**
 * A `crossway device --wayland <host>` in front of a HostServer, for the tests of one file: started in beforeAll,
 * stopped (with its temporary directory) in afterAll. Read `device` and `host` inside tests only.
 */
export function useDeviceAndHost(
  prefix: string,
  extra: readonly string[] = [],
): {
  readonly device: DeviceProcess;
  readonly host: HostServer;
} {
  let tmp: { dir: string; remove(): void } | undefined;
  let device: DeviceProcess | undefined;
  let host: HostServer | undefined;
  beforeAll(async () => {
    tmp = tempDir(prefix);
    host = new HostServer(join(tmp.dir, "wayland-host"));
    device = await startDeviceProcess(tmp.dir, ["--wayland", host.path, ...extra]);
  });
  afterAll(async () => {
    await device?.stop();
    host?.close();
    tmp?.remove();
  });
  return {
    get device() {
      if (device === undefined) throw new Error("useDeviceAndHost: read the device inside a test");
      return device;
    },
    get host() {
      if (host === undefined) throw new Error("useDeviceAndHost: read the host inside a test");
      return host;
    },
  };
}

/** Rejects with a message naming `what` unless `p` settles within `ms` (a protocol answer's deadline). */
export function within<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Frames from a raw device connection, one at a time (blocking on a nonblocking socket, retried). */
export async function nextDeviceFrame(
  fd: number,
  buf: { data: Uint8Array; len: number },
): Promise<{ type: number; payload: Uint8Array }> {
  const fds = new Int32Array(MAX_FDS_PER_MSG + 1);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const h = decodeFrameHeader(buf.data, 0, buf.len);
    if (h !== null && buf.len >= FRAME_HEADER_SIZE + h.payloadLength) {
      const payload = buf.data.slice(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + h.payloadLength);
      buf.data.copyWithin(0, FRAME_HEADER_SIZE + h.payloadLength, buf.len);
      buf.len -= FRAME_HEADER_SIZE + h.payloadLength;
      return { type: h.type, payload };
    }
    const n = native.recvmsg(fd, buf.data, buf.len, buf.data.length - buf.len, fds);
    for (let i = 0; i < fds[0]!; i++) native.close(fds[1 + i]!);
    if (n === 0) throw new Error("device closed the connection");
    if (n !== AGAIN) buf.len += n;
    else if (Date.now() > deadline) throw new Error("no frame from the device");
    else await new Promise((r) => setTimeout(r, 1));
  }
}
