// A real PipeWire client that allocates its own memfd buffers (PW_STREAM_FLAG_ALLOC_BUFFERS), run as a guest app:
// guest client → crossway guest → cross-domain (emulated device, libkrun) → the real daemon, consumed on the host.
// No filter in this chain: crossway's filter strips SPA_PORT_FLAG_CAN_ALLOC_BUFFERS, so behind it the daemon never
// asks a guest client to allocate (checked below too); libkrun's own PipeWire channel goes straight to the daemon.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPipeWireGuestChain } from "../../src/harness/pipewire-guest-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire } from "../helpers/pipewire.ts";
import { buildPipeWireClient } from "../helpers/pipewire-c-client.ts";
import {
  pipewirePid,
  settleFdCount,
  steadyFdCount,
  waitForNodeWithPort,
} from "../helpers/pipewire-daemon.ts";
import { run, spawnTracked, type TrackedProcess, waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

/** test/clients/pw-alloc-source.c: 64x48 RGBx frames of one colour. */
const W = 64;
const H = 48;
const COLOUR = [32, 128, 192];
const FRAMES = 10;
/** A client run through the whole chain on a loaded 2-core machine. */
const CLIENT_TIMEOUT_MS = 60_000;

let stack: PipeWireStack;
let dir: string;
let bin: string;

beforeAll(async () => {
  bin = buildPipeWireClient("pw-alloc-source");
  stack = await startPipeWire();
  dir = mkdtempSync(join(tmpdir(), "cw-pwg-alloc-"));
}, 90_000);

afterAll(async () => {
  await stack?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Starts the source with `env` (guest or host side) and waits until its node and port are in the daemon's graph. */
async function startSource(
  node: string,
  env: Record<string, string>,
): Promise<{ p: TrackedProcess; err: () => string }> {
  const p = spawnTracked(node, bin, [node, ...COLOUR.map(String)], { env, pipeStderr: true });
  let text = "";
  p.child.stderr?.on("data", (d: Buffer) => {
    text += d.toString();
  });
  try {
    await waitForNodeWithPort(stack.env, node, {
      timeoutMs: CLIENT_TIMEOUT_MS,
      abort: () => (p.running ? undefined : `${node} exited: ${text}`),
    });
  } catch (err) {
    await p.stop();
    throw err;
  }
  return { p, err: () => text };
}

/** A host GStreamer consumer takes FRAMES frames of `node`; every frame must be the source's colour. */
async function consume(node: string, out: string, what: () => string): Promise<void> {
  const r = await run(
    "gst-launch-1.0",
    [
      "-q",
      "pipewiresrc",
      `target-object=${node}`,
      `num-buffers=${FRAMES}`,
      "!",
      "video/x-raw,format=RGBx",
      "!",
      "filesink",
      `location=${out}`,
    ],
    { env: stack.env, timeoutMs: CLIENT_TIMEOUT_MS },
  );
  expect(r.timedOut, `${r.stderr.toString()}\n${what()}`).toBe(false);
  expect(r.code, `${r.stderr.toString()}\n${what()}`).toBe(0);
  const frames = readFileSync(out);
  expect(frames.length).toBe(FRAMES * W * H * 4);
  // Every pixel of every frame (the copy is the whole buffer: a partial one would leave zeros somewhere).
  for (let i = 0; i < frames.length; i += 4) {
    if (frames[i] !== COLOUR[0] || frames[i + 1] !== COLOUR[1] || frames[i + 2] !== COLOUR[2]) {
      throw new Error(
        `pixel ${i / 4} of frame ${Math.floor(i / 4 / (W * H))} is ${[...frames.subarray(i, i + 3)]}`,
      );
    }
  }
}

describe("a guest client's own memfd buffers through crossway guest to the real daemon", () => {
  it("a guest video source that allocates its buffers reaches a host consumer, every pixel checked; fd counts flat", async () => {
    const chain = await startPipeWireGuestChain(stack, { profile: null });
    /** One guest source streaming to one host consumer; returns the guest's end-of-session counters for it. */
    const round = async (i: number): Promise<Record<string, number>> => {
      const node = `cw-alloc-guest-${i}`;
      const src = await startSource(node, chain.env);
      try {
        await consume(
          node,
          join(dir, `guest-${i}.raw`),
          () => `source:\n${src.err()}\nguest:\n${chain.log("guest").slice(-3000)}`,
        );
        // The client really allocated (the daemon asked it to), and the guest really carried its buffers.
        expect(src.err()).toMatch(/memfd buffer 0/);
        expect(src.err()).not.toMatch(/daemon buffer/);
      } finally {
        await src.p.stop();
      }
      const ends = await waitFor(
        "the guest's end-of-session line",
        () => {
          const e = chain.records("guest").filter((r) => r.msg === "guest PipeWire client ended");
          return e.length > i ? e : undefined;
        },
        { timeoutMs: CLIENT_TIMEOUT_MS, intervalMs: 50 },
      );
      return ends.at(-1) as Record<string, number>;
    };
    try {
      const first = await round(0);
      console.log(`client-allocated buffers through the guest: ${JSON.stringify(first)}`);
      expect(first.carried).toBeGreaterThanOrEqual(2);
      // One copy per data per signal of the node: at least one per frame the consumer took.
      expect(first.copies).toBeGreaterThanOrEqual(FRAMES);
      // Two more sources, one after the other: the guest's, the device's and the daemon's fds (the daemon imports
      // the blobs) come back to where they were.
      const daemon = pipewirePid(stack.pids);
      const before = {
        guest: await steadyFdCount(chain.pids.guest),
        device: await steadyFdCount(chain.pids.device),
        daemon: await steadyFdCount(daemon),
      };
      for (let i = 1; i <= 2; i++) await round(i);
      expect(await settleFdCount(chain.pids.guest, before.guest)).toBe(before.guest);
      expect(await settleFdCount(chain.pids.device, before.device)).toBe(before.device);
      expect(await settleFdCount(daemon, before.daemon)).toBe(before.daemon);
    } finally {
      await chain.stop();
    }
  });
});
