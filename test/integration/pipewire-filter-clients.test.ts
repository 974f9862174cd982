// Real clients through crossway pipewire-filter against a real PipeWire + WirePlumber daemon: GStreamer camera
// consumer (the CLI as its own process), pw-cat playback and record, and pw-dump's restricted view.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startPipeWireFilter } from "../../src/proxy/pipewire/filter-server.ts";
import { pod } from "../../src/wire/pipewire/pod-types.ts";
import { analyseTone, monitorRecordArgs, readLeft, writeTone } from "../helpers/audio.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire, TEST_SINK } from "../helpers/pipewire.ts";
import { pwDump, waitForActiveLinks } from "../helpers/pipewire-daemon.ts";
import { EACCES, field, type RawEvent, RawPipeWireClient } from "../helpers/pipewire-raw-client.ts";
import { run, spawnTracked, type TrackedProcess, waitFor } from "../helpers/processes.ts";
import { CAMERA_H, CAMERA_W, startTestCamera } from "../helpers/test-camera.ts";

useFdLeakCheck();

let stack: PipeWireStack;
let camera: TrackedProcess;
let dir: string;
const W = CAMERA_W;
const H = CAMERA_H;

/** Peak |sample| of the recording so far (left channel). */
function wavPeak(path: string): number {
  return analyseTone(readLeft(path)).peak;
}

beforeAll(async () => {
  stack = await startPipeWire();
  dir = mkdtempSync(join(tmpdir(), "cw-pwf-"));
  writeTone(join(dir, "tone.wav"));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

// A fresh camera for every test: GStreamer's pipewiresink (mode=provide) on PipeWire 0.3.65 stops delivering frames
// after a few consumers have come and gone (measured: the 5th consumer got a running link and no frame, twice in a
// row; under load already the 2nd), while a fresh provider served 16 of 16 consumers.
beforeEach(async () => {
  // The fake camera of environment.md §4: a Video/Source node named testcam, unfiltered.
  camera = await startTestCamera(stack);
});

afterEach(async () => {
  await camera?.stop();
  // The next test's camera must not be mistaken for this one's node, which the daemon removes asynchronously.
  await waitFor(
    "the testcam node to go",
    async () =>
      (await pwDump(stack.env)).some((o) => o.type === "Node" && o.props["node.name"] === "testcam")
        ? undefined
        : true,
    { timeoutMs: 60_000, intervalMs: 100 },
  );
});

describe("pipewire-filter passes real clients", () => {
  it("delivers 30 camera frames to GStreamer pipewiresrc (camera profile, CLI process)", async () => {
    const listen = join(stack.runtimeDir, "filter-camera");
    const filter = spawnTracked(
      "pipewire-filter",
      process.execPath,
      [
        "bin/crossway.js",
        "pipewire-filter",
        "--listen",
        listen,
        "--upstream",
        stack.socketPath,
        "--profile",
        "camera",
        "--target",
        "testcam",
      ],
      { env: { ...stack.env, CROSSWAY_LOG: "error" }, pipeStdout: true },
    );
    let printed = "";
    filter.child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      printed += d;
    });
    try {
      await waitFor("the filter's ready line", () => (printed.includes("listening on") ? true : undefined), {
        timeoutMs: 60_000,
        abort: () => (filter.running ? undefined : "the filter exited"),
      });
      const out = join(dir, "frames.raw");
      const t0 = Date.now();
      const r = await run(
        "gst-launch-1.0",
        [
          "-q",
          "pipewiresrc",
          "target-object=testcam",
          "num-buffers=30",
          "!",
          "video/x-raw,format=RGBx",
          "!",
          "filesink",
          `location=${out}`,
        ],
        { env: { ...stack.env, PIPEWIRE_REMOTE: listen }, timeoutMs: 60_000 },
      );
      expect(r.timedOut, r.stderr.toString()).toBe(false);
      expect(r.code, r.stderr.toString()).toBe(0);
      const frames = readFileSync(out);
      expect(frames.length).toBe(30 * W * H * 4);
      // videotestsrc pattern=red: RGBx 255,0,0.
      expect([...frames.subarray(0, 3)]).toEqual([255, 0, 0]);
      console.log(`camera: 30 frames through the filter in ${Date.now() - t0} ms`);
    } finally {
      await filter.stop();
    }
  });

  it("delivers camera frames with the screencast profile too (same consumer, role Screen)", async () => {
    const listen = join(stack.runtimeDir, "filter-screencast");
    const filter = startPipeWireFilter({
      listenPath: listen,
      upstreamPath: stack.socketPath,
      profile: "screencast",
      targets: ["testcam"],
      audit: () => {},
    });
    try {
      const r = await run(
        "gst-launch-1.0",
        [
          "-q",
          "pipewiresrc",
          "target-object=testcam",
          "num-buffers=10",
          "!",
          "video/x-raw,format=RGBx",
          "!",
          "fakesink",
        ],
        { env: { ...stack.env, PIPEWIRE_REMOTE: listen }, timeoutMs: 60_000 },
      );
      expect(r.code, r.stderr.toString()).toBe(0);
    } finally {
      await waitFor("the filter to drop its connections", () =>
        filter.sessions.size === 0 ? true : undefined,
      );
      filter.close();
    }
  });

  it("shows pw-dump only what the camera profile allows", async () => {
    const listen = join(stack.runtimeDir, "filter-dump");
    const filter = startPipeWireFilter({
      listenPath: listen,
      upstreamPath: stack.socketPath,
      profile: "camera",
      audit: () => {},
    });
    try {
      const objs = await pwDump({ ...stack.env, PIPEWIRE_REMOTE: listen });
      const all = await pwDump(stack.env);
      const camNode = all.find((o) => o.type === "Node" && o.props["node.name"] === "testcam");
      const camPorts = all
        .filter((o) => o.type === "Port" && o.props["node.id"] === camNode?.id)
        .map((o) => o.id);
      const allowedIds = new Set([0, camNode?.id, ...camPorts]);
      for (const o of objs) {
        if (o.type === "Factory") expect(o.props["factory.name"] ?? "client-node").toBe("client-node");
        else if (o.type === "Client") expect(o.props["application.name"]).toBe("pw-dump");
        else
          expect(allowedIds.has(o.id), `${o.id} ${o.type} ${JSON.stringify(o.props).slice(0, 120)}`).toBe(
            true,
          );
      }
      expect(objs.some((o) => o.id === camNode?.id)).toBe(true);
      expect(objs.filter((o) => o.type === "Client").length).toBe(1);
      // The daemon has far more: WirePlumber's client, modules, the sink, the drivers, metadata.
      expect(all.length).toBeGreaterThan(objs.length + 10);
    } finally {
      filter.close();
      await waitFor("the filter to drop its connections", () =>
        filter.sessions.size === 0 ? true : undefined,
      );
    }
  });

  it("forwards camera controls only with --camera-controls, and never nested params", async () => {
    const listen = join(stack.runtimeDir, "filter-controls");
    const filter = startPipeWireFilter({
      listenPath: listen,
      upstreamPath: stack.socketPath,
      profile: "camera",
      targets: ["testcam"],
      cameraControls: true,
      audit: () => {},
    });
    const c = new RawPipeWireClient(listen);
    try {
      c.handshake({ "application.name": "controls" });
      c.send(0, 5, pod.struct(pod.int(3), pod.int(2)));
      expect(await c.sync()).toBe(true);
      const cam = c.events.find(
        (e) => e.id === 2 && e.opcode === 0 && field(e, 2) === "PipeWire:Interface:Node",
      );
      expect(cam).toBeDefined();
      c.send(
        2,
        1,
        pod.struct(
          pod.int(field(cam as RawEvent, 0) as number),
          pod.string("PipeWire:Interface:Node"),
          pod.int(3),
          pod.int(3),
        ),
      );
      // brightness (SPA_PROP_brightness 0x20001) as Int: passed to the daemon.
      c.send(
        3,
        3,
        pod.struct(
          pod.id(2),
          pod.int(0),
          pod.object(0x40002, 2, [{ key: 0x20001, flags: 0, value: pod.int(5) }]),
        ),
      );
      expect(await c.sync()).toBe(true);
      expect(c.errors(3).filter((e) => field(e, 2) === EACCES)).toEqual([]);
      const nested = pod.object(0x40002, 2, [
        { key: 0x80001, flags: 0, value: pod.struct(pod.string("a"), pod.struct()) },
      ]);
      c.send(3, 3, pod.struct(pod.id(2), pod.int(0), nested));
      expect(await c.sync()).toBe(true);
      expect(c.errors(3).filter((e) => field(e, 2) === EACCES).length).toBe(1);
    } finally {
      c.close();
      await waitFor("the filter to drop the connection", () =>
        filter.sessions.size === 0 ? true : undefined,
      );
      filter.close();
    }
  });

  it("plays audio with pw-cat --playback (audio-playback profile)", async () => {
    const listen = join(stack.runtimeDir, "filter-play");
    const filter = startPipeWireFilter({
      listenPath: listen,
      upstreamPath: stack.socketPath,
      profile: "audio-playback",
      targets: [TEST_SINK],
      audit: () => {},
    });
    const rec = join(dir, "monitor.wav");
    const recorder = spawnTracked("recorder", "pw-cat", monitorRecordArgs(TEST_SINK, rec), {
      env: stack.env,
    });
    try {
      await waitForActiveLinks(stack.env, TEST_SINK, "pw-cat", 2);
      const r = await run("pw-cat", ["--playback", "--target", TEST_SINK, join(dir, "tone.wav")], {
        env: { ...stack.env, PIPEWIRE_REMOTE: listen },
        timeoutMs: 60_000,
      });
      expect(r.code, r.stderr.toString()).toBe(0);
      await waitFor("the tone in the recording", () => (wavPeak(rec) > 6000 ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 50,
      });
    } finally {
      await recorder.stop();
      filter.close();
    }
    expect(wavPeak(rec)).toBeGreaterThan(6000);
  });

  it("records audio with pw-cat --record (audio-capture profile)", async () => {
    const listen = join(stack.runtimeDir, "filter-rec");
    const filter = startPipeWireFilter({
      listenPath: listen,
      upstreamPath: stack.socketPath,
      profile: "audio-capture",
      targets: [TEST_SINK],
      audit: () => {},
    });
    const rec = join(dir, "filtered.wav");
    const recorder = spawnTracked("filtered-recorder", "pw-cat", monitorRecordArgs(TEST_SINK, rec), {
      env: { ...stack.env, PIPEWIRE_REMOTE: listen },
    });
    try {
      // The filter names its clients' nodes "guest.<name>".
      await waitForActiveLinks(stack.env, TEST_SINK, "guest.pw-cat", 2);
      const r = await run("pw-cat", ["--playback", "--target", TEST_SINK, join(dir, "tone.wav")], {
        env: stack.env,
        timeoutMs: 60_000,
      });
      expect(r.code, r.stderr.toString()).toBe(0);
      await waitFor("the tone in the recording", () => (wavPeak(rec) > 6000 ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 50,
      });
    } finally {
      await recorder.stop();
      filter.close();
    }
    expect(wavPeak(rec)).toBeGreaterThan(6000);
  });
});
