// The guest PipeWire proxy end to end with real PipeWire + WirePlumber: guest client → crossway guest →
// cross-domain (emulated device, libkrun flavour) → crossway pipewire-filter → daemon.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPipeWireGuestChain } from "../../src/harness/pipewire-guest-stack.ts";
import { analyseTone, readLeft, writeTone } from "../helpers/audio.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire, TEST_SINK } from "../helpers/pipewire.ts";
import { run, spawnTracked, type TrackedProcess } from "../helpers/processes.ts";
import { CAMERA_H, CAMERA_NODE, CAMERA_W, startTestCamera } from "../helpers/test-camera.ts";

useFdLeakCheck();

/** The test daemon's default.clock.quantum (PipeWire's stock pipewire.conf): one quantum at 48 kHz. */
const QUANTUM = 1024;
/** A client run through the whole chain on a loaded 2-core machine. */
const CLIENT_TIMEOUT_MS = 30_000;

let stack: PipeWireStack;
let camera: TrackedProcess;
let dir: string;

beforeAll(async () => {
  stack = await startPipeWire();
  dir = mkdtempSync(join(tmpdir(), "cw-pwg-"));
  writeTone(join(dir, "tone.wav"), 440, 2);
  camera = await startTestCamera(stack);
}, 90_000);

afterAll(async () => {
  await camera?.stop();
  await stack?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Records the null sink's monitor on the host (unfiltered) while `body` runs. */
async function recordMonitor(path: string, body: () => Promise<void>): Promise<void> {
  const recorder = spawnTracked(
    "monitor-recorder",
    "pw-cat",
    [
      "--record",
      "-P",
      "{ stream.capture.sink=true }",
      "--target",
      TEST_SINK,
      "--rate",
      "48000",
      "--channels",
      "2",
      "--format",
      "s16",
      path,
    ],
    { env: stack.env },
  );
  try {
    await body();
  } finally {
    await recorder.stop();
  }
}

describe("crossway guest --pipewire through the filter", () => {
  it("plays a 440 Hz tone from a guest pw-cat (audio-playback), recorded dominant and gap-free on the host", async () => {
    const chain = await startPipeWireGuestChain(stack, { profile: "audio-playback", targets: [TEST_SINK] });
    const rec = join(dir, "monitor.wav");
    try {
      await recordMonitor(rec, async () => {
        const r = await run("pw-cat", ["--playback", "--target", TEST_SINK, join(dir, "tone.wav")], {
          env: chain.env,
          timeoutMs: CLIENT_TIMEOUT_MS,
        });
        expect(r.timedOut, r.stderr.toString()).toBe(false);
        expect(r.code, `${r.stderr.toString()}\nguest:\n${chain.log("guest").slice(-3000)}`).toBe(0);
      });
    } finally {
      await chain.stop();
    }
    const t = analyseTone(readLeft(rec));
    console.log(`playback through the guest chain: ${JSON.stringify(t)}`);
    expect(t.peak).toBeGreaterThan(6000);
    expect(t.dominance).toBeGreaterThan(0.9);
    expect(t.longestGap).toBeLessThanOrEqual(QUANTUM);
    // About 2 s of tone reached the sink (a quantum of slack either side).
    expect(t.last - t.first).toBeGreaterThan(2 * 48000 - 2 * QUANTUM);
  });
});
