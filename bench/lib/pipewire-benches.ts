// PipeWire benchmarks: pw-cli info 0, pw-dump, and a camera stream's start to first frame, run as real clients.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { CrosswayError } from "../../src/errors.ts";
import { TEST_SINK, testCameraArgs } from "../../src/harness/pipewire.ts";
import { writeTone } from "../../test/helpers/audio.ts";
import type { Mode } from "./macro-benches.ts";
import type { Env } from "./processes.ts";
import { cpuDeltaNs, sampleCpu } from "./procfs.ts";
import { median } from "./stats.ts";

/** The camera node every stack gets (a GStreamer videotestsrc providing a Video/Source). */
export const CAMERA_NODE = "crossway-bench-cam";
/** 60 fps keeps a 300-frame stream at 5 s; the camera is live, so frames are paced by it on every path. */
export const CAMERA_FPS = 60;

/** The command line of the fake camera (connected straight to the daemon on every path). */
export function cameraCommand(): [string, string[]] {
  return [
    "gst-launch-1.0",
    testCameraArgs({ node: CAMERA_NODE, width: 640, height: 480, fps: CAMERA_FPS, description: "BenchCam" }),
  ];
}

/** One run of a PipeWire benchmark on one path. */
export interface PwRun {
  readonly value: number;
  readonly extras: Record<string, number>;
  readonly cpuNs: number;
  readonly cpuExact: boolean;
  /** What cpuNs is divided by (invocations, frames). */
  readonly units: number;
  readonly raw: Record<string, unknown>;
}

/** What a run needs: the client environment (with PIPEWIRE_REMOTE) and the proxy to charge. */
export interface PwRunContext {
  readonly env: Env;
  /** The daemon's own environment (unproxied): for observers such as pw-profiler. */
  readonly daemonEnv: Env;
  readonly proxyPids: readonly number[];
  readonly mode: Mode;
  /**
   * Starts the camera (straight to the daemon) and resolves once its node is listed. Each stream gets a fresh
   * camera: pipewiresink in provide mode stopped delivering to the third consumer in a row now and then.
   */
  startCamera(): Promise<{ stop(): Promise<void> }>;
}

/** One PipeWire benchmark. */
export interface PwBench {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  readonly cpuPer: string;
  readonly extras: readonly { id: string; label: string; unit: string }[];
  /** A filter profile the benchmark needs other than camera (the path's `remotes` key). */
  readonly profile?: string;
  run(ctx: PwRunContext): Promise<PwRun>;
}

interface Finished {
  ms: number;
  stdout: string;
}

/** Runs a command to completion; rejects on a non-zero exit or after `timeoutMs`. `onLine` sees stdout lines. */
function timed(
  cmd: string,
  args: readonly string[],
  env: Env,
  timeoutMs: number,
  onLine?: (line: string, ms: number) => void,
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    if (onLine !== undefined) {
      createInterface({ input: child.stdout }).on("line", (l) => onLine(l, performance.now() - t0));
    } else {
      child.stdout.setEncoding("utf8").on("data", (s: string) => {
        out += s;
      });
    }
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      err += s;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new CrosswayError("CW_BENCH_FAILED", `cannot run ${cmd}: ${e.message}`, {}, { cause: e }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code !== 0) {
        const why = signal !== null ? `killed by ${signal}` : `exit status ${code}`;
        reject(
          new CrosswayError("CW_BENCH_FAILED", `${cmd} ${args.join(" ")}: ${why}: ${err.trim().slice(-300)}`),
        );
      } else {
        resolve({ ms, stdout: out });
      }
    });
  });
}

/** Runs `cmd` `n` times in a row; the value is the median wall time. */
async function repeated(
  ctx: PwRunContext,
  n: number,
  cmd: string,
  args: readonly string[],
  inspect?: (stdout: string) => Record<string, number>,
): Promise<PwRun> {
  const before = sampleCpu(ctx.proxyPids);
  const ms: number[] = [];
  let last: Finished | undefined;
  for (let i = 0; i < n; i++) {
    last = await timed(cmd, args, ctx.env, 15_000);
    ms.push(last.ms);
  }
  const cpu = cpuDeltaNs(before, sampleCpu(ctx.proxyPids));
  return {
    value: median(ms),
    extras: inspect !== undefined && last !== undefined ? inspect(last.stdout) : {},
    cpuNs: ctx.proxyPids.length > 0 ? cpu.ns : 0,
    cpuExact: cpu.exact,
    units: n,
    raw: { ms },
  };
}

/** The PipeWire benchmarks, in run order. */
export const PW_BENCHES: readonly PwBench[] = [
  {
    id: "pw-audio",
    label: "48 kHz stereo playback, client signal to finish per quantum",
    unit: "µs",
    cpuPer: "s of audio",
    profile: "audio-playback",
    extras: [
      { id: "quantum", label: "quantum", unit: "µs" },
      { id: "cycles", label: "cycles", unit: "" },
    ],
    run: audioStream,
  },
  {
    id: "pw-info",
    label: "pw-cli info 0",
    unit: "ms",
    cpuPer: "invocation",
    extras: [],
    run: (ctx) => repeated(ctx, ctx.mode === "full" ? 10 : 4, "pw-cli", ["info", "0"]),
  },
  {
    id: "pw-dump",
    label: "pw-dump",
    unit: "ms",
    cpuPer: "invocation",
    extras: [{ id: "objects", label: "objects", unit: "" }],
    run: (ctx) =>
      repeated(ctx, ctx.mode === "full" ? 5 : 2, "pw-dump", [], (stdout) => {
        const objects: unknown = JSON.parse(stdout);
        return { objects: Array.isArray(objects) ? objects.length : Number.NaN };
      }),
  },
  {
    id: "pw-camera",
    label: `camera stream, start to first frame`,
    unit: "ms",
    cpuPer: "frame",
    extras: [
      { id: "fps", label: "stream", unit: "fps" },
      { id: "frames", label: "frames", unit: "" },
    ],
    run: async (ctx) => {
      const frames = ctx.mode === "full" ? 300 : 30;
      const times: number[] = [];
      const camera = await ctx.startCamera();
      const before = sampleCpu(ctx.proxyPids);
      // -v with a non-silent fakesink prints one "chain ***" line per buffer; stdbuf makes gst-launch's stdout
      // line-buffered so each line arrives when its buffer does.
      await timed(
        "stdbuf",
        [
          "-oL",
          "gst-launch-1.0",
          "-v",
          "pipewiresrc",
          `target-object=${CAMERA_NODE}`,
          `num-buffers=${frames}`,
          "!",
          "video/x-raw,format=RGBx",
          "!",
          "fakesink",
          "silent=false",
        ],
        ctx.env,
        10_000 + (frames * 2000) / CAMERA_FPS,
        (line, ms) => {
          if (/chain\s+\*+/.test(line)) times.push(ms);
        },
      ).finally(() => camera.stop());
      const cpu = cpuDeltaNs(before, sampleCpu(ctx.proxyPids));
      const first = times[0];
      const lastT = times[times.length - 1];
      if (first === undefined || lastT === undefined || times.length !== frames) {
        throw new CrosswayError(
          "CW_BENCH_FAILED",
          `camera stream: ${times.length} of ${frames} frames arrived`,
        );
      }
      return {
        value: first,
        extras: { fps: (times.length - 1) / ((lastT - first) / 1000), frames: times.length },
        cpuNs: ctx.proxyPids.length > 0 ? cpu.ns : 0,
        cpuExact: cpu.exact,
        units: frames,
        raw: { firstMs: first, lastMs: lastT },
      };
    },
  },
];

/**
 * One 48 kHz stereo s16 playback of `seconds` through the path, observed by pw-profiler on the daemon itself: per
 * graph cycle, the client node's time from being signalled to finishing (pw-profiler's follower columns: id,
 * signal, awake, finish relative to the driver's signal, in µs; 8 columns per follower after 4 for the driver,
 * src/tools/pw-profiler.c dump_point). That is the latency the path adds per quantum: every cycle the daemon's
 * eventfd must reach the client and the client's must come back. CPU is the proxies' per second of audio.
 */
async function audioStream(ctx: PwRunContext): Promise<PwRun> {
  const seconds = ctx.mode === "full" ? 4 : 2;
  const dir = mkdtempSync(join(tmpdir(), "crossway-bench-audio-"));
  const wav = join(dir, "tone.wav");
  const logPath = join(dir, "profiler.log");
  writeTone(wav, 440, seconds);
  // cwd: pw-profiler also writes gnuplot scripts (Timing*.plot) into its working directory.
  const profiler = spawn("pw-profiler", ["-o", logPath], { env: ctx.daemonEnv, stdio: "ignore", cwd: dir });
  const exited = new Promise<void>((r) => profiler.on("close", () => r()));
  try {
    // Ready when the daemon lists the profiler as a client (protocol answer, not the log file appearing).
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { stdout } = await timed("pw-cli", ["ls", "Client"], ctx.daemonEnv, 5000);
      if (stdout.includes("pw-profiler")) break;
      if (Date.now() > deadline) throw new CrosswayError("CW_BENCH_FAILED", "pw-profiler did not connect");
      await new Promise((r) => setTimeout(r, 50));
    }
    const before = sampleCpu(ctx.proxyPids);
    await timed("pw-cat", ["--playback", "--target", TEST_SINK, wav], ctx.env, 15_000 + seconds * 2000);
    const cpu = cpuDeltaNs(before, sampleCpu(ctx.proxyPids));
    profiler.kill("SIGINT");
    await exited;
    const { perCycle, quantumUs, ids } = parseProfilerLog(readFileSync(logPath, "utf8"));
    if (ids.size !== 1 || perCycle.length < 10) {
      throw new CrosswayError(
        "CW_BENCH_FAILED",
        `pw-profiler saw followers [${[...ids].join(", ")}] over ${perCycle.length} cycles (want one client node)`,
      );
    }
    return {
      value: median(perCycle),
      extras: { quantum: quantumUs, cycles: perCycle.length },
      cpuNs: ctx.proxyPids.length > 0 ? cpu.ns : 0,
      cpuExact: cpu.exact,
      units: seconds,
      raw: { perCycle },
    };
  } finally {
    if (profiler.exitCode === null) profiler.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Follower signal→finish µs per cycle (the first 5 cycles, start-up, skipped), the quantum, the follower ids. */
export function parseProfilerLog(text: string): { perCycle: number[]; quantumUs: number; ids: Set<string> } {
  const perCycle: number[] = [];
  const ids = new Set<string>();
  let quantumUs = 0;
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  for (const [n, line] of lines.entries()) {
    const cols = line.split("\t");
    quantumUs = Number(cols[3]);
    for (let at = 4; at + 8 <= cols.length; at += 8) {
      const id = (cols[at] as string).trim();
      if (id === "") continue;
      ids.add(id);
      const signal = Number(cols[at + 1]);
      const finish = Number(cols[at + 3]);
      if (n >= 5 && finish > 0) perCycle.push(finish - signal);
    }
  }
  return { perCycle, quantumUs, ids };
}

/** Waits until the daemon lists the camera node (`pw-cli ls Node`), at most `timeoutMs`. */
export async function waitForCamera(env: Env, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout } = await timed("pw-cli", ["ls", "Node"], env, 5000);
    if (stdout.includes(`"${CAMERA_NODE}"`)) return;
    if (Date.now() > deadline) {
      throw new CrosswayError(
        "CW_BENCH_FAILED",
        `the camera node ${CAMERA_NODE} did not appear in ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
