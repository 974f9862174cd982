// `crossway trace` in front of headless weston: real clients' WAYLAND_DEBUG output equals the tracer's, line for line.
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { logTail, requireCommand, spawnTracked, type TrackedProcess, waitFor } from "../helpers/processes.ts";
import { compareWithClientDebug } from "../helpers/wayland-fixtures.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const CLI = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "crossway-trace-test-"));
let weston: Compositor;
let tracer: TrackedProcess;
let traceOut = "";
const traceSock = join(scratch, "trace.sock");

/** Runs a client against the tracer with WAYLAND_DEBUG=1 and returns its stderr. */
function runClient(argv: string[], interruptWhen?: () => boolean): Promise<string> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...weston.env, WAYLAND_DISPLAY: traceSock, WAYLAND_DEBUG: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const err: Buffer[] = [];
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    // Interrupt on what the trace shows, not after a time: a loaded machine may not have drawn a frame in 700 ms.
    const watch =
      interruptWhen === undefined
        ? undefined
        : setInterval(() => {
            if (interruptWhen()) {
              clearInterval(watch);
              child.kill("SIGINT");
            }
          }, 20);
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(killer);
      clearInterval(watch);
      resolve(Buffer.concat(err).toString("utf8"));
    });
  });
}

/**
 * True once the tracer reported connection `conn` closed. The reason depends on which side the relay notices
 * first when a client exits: its EOF ("eof"), or EPIPE while forwarding an event the compositor sent meanwhile.
 */
function closedLine(conn: string): true | undefined {
  return linesOf(conn).some((l) => /^closed \((eof|EPIPE|ECONNRESET)[^)]*\)$/.test(l)) ? true : undefined;
}

/** The tracer's lines for connection `tag#n`, without the tag. */
function linesOf(conn: string): string[] {
  const prefix = `${conn} `;
  return traceOut
    .split("\n")
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
}

beforeAll(async () => {
  requireCommand("wayland-info", "wayland-utils");
  requireCommand("weston-simple-shm", "weston");
  weston = await startWeston();
  const log = join(scratch, "trace.log");
  const logFd = openSync(log, "a");
  try {
    tracer = spawnTracked(
      "crossway trace",
      process.execPath,
      [CLI, "trace", "--socket", traceSock, "--upstream", weston.socketPath, "--tag", "t"],
      { env: { ...weston.env }, logFd, pipeStdout: true },
    );
  } finally {
    closeSync(logFd);
  }
  tracer.child.stdout?.on("data", (b: Buffer) => {
    traceOut += b.toString("utf8");
  });
  await waitFor(
    "crossway trace's ready line",
    () => (logTail(log).includes("listening on") ? true : undefined),
    {
      timeoutMs: 60_000,
      abort: () => (tracer.running ? undefined : "crossway trace exited"),
      explain: () => logTail(log),
    },
  );
});

afterAll(async () => {
  await tracer?.stop();
  await weston?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe("crossway trace in front of headless weston", () => {
  it("prints wayland-info's messages exactly as its own WAYLAND_DEBUG=1 does", async () => {
    const debug = await runClient(["wayland-info"]);
    await waitFor("the trace of connection 1 to close", () => closedLine("t#1"), {
      timeoutMs: 60_000,
    });
    const lines = linesOf("t#1");
    expect(lines[0]).toBe("connected");
    const cmp = compareWithClientDebug(lines, debug);
    expect(cmp.problems).toEqual([]);
    expect(cmp.matched).toBeGreaterThan(40);
    expect(lines.some((l) => l.includes("wl_registry@2.bind(") && l.includes("new id [unknown]@"))).toBe(
      true,
    );
  });

  it("prints weston-simple-shm's messages (with fds) exactly as its own WAYLAND_DEBUG=1 does", async () => {
    // Interrupted once the trace shows two buffer releases (frames drawn, committed and given back).
    const debug = await runClient(
      ["weston-simple-shm"],
      () => linesOf("t#2").filter((l) => /wl_buffer@\d+\.release\(\)/.test(l)).length >= 2,
    );
    await waitFor("the trace of connection 2 to close", () => closedLine("t#2"), {
      timeoutMs: 60_000,
    });
    const lines = linesOf("t#2");
    // weston-simple-shm is stopped with SIGINT mid-run: events already on its socket are never dispatched.
    const cmp = compareWithClientDebug(lines, debug, { interrupted: true });
    expect(cmp.problems).toEqual([]);
    expect(cmp.matched).toBeGreaterThan(60);
    // The pool's fd passed through (the client drew, so the compositor got a usable memfd).
    expect(lines.some((l) => /wl_shm@\d+\.create_pool\(new id wl_shm_pool@\d+, fd \d+, \d+\)/.test(l))).toBe(
      true,
    );
    expect(lines.some((l) => /wl_buffer@\d+\.release\(\)/.test(l))).toBe(true);
  });

  it("reports a client's malformed header with its error and wl_display.error, and keeps relaying others", async () => {
    const fd = native.unixConnect(traceSock);
    try {
      // wl_display@1 with a header size of 6: not a multiple of 4 and below the header size.
      const bad = new Uint8Array(new Uint32Array([1, (6 << 16) >>> 0]).buffer);
      expect(native.write(fd, bad, 0, bad.length)).toBe(8);
      await waitFor("the tracer's error line", () =>
        linesOf("t#3").find((l) => l.startsWith("error ")) !== undefined ? true : undefined,
      );
      expect(linesOf("t#3").find((l) => l.startsWith("error "))).toBe(
        'error CW_WIRE_BAD_HEADER: malformed message header: size 6 is smaller than the 8-byte header (object 1, opcode 0) (wl_display.error 3: "malformed message header: size 6 is smaller than the 8-byte header (object 1, opcode 0)"); no longer tracing this connection',
      );
    } finally {
      native.close(fd);
    }
    // A later client is still traced.
    const debug = await runClient(["wayland-info"]);
    await waitFor("the trace of connection 4 to close", () => closedLine("t#4"), {
      timeoutMs: 60_000,
    });
    expect(compareWithClientDebug(linesOf("t#4"), debug).problems).toEqual([]);
  });
});
