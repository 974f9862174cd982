// PipeWire benchmarks: pw-cli info 0, pw-dump, and a camera stream's start to first frame, run as real clients.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { CrosswayError } from "../../src/errors.ts";
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
    [
      "-q",
      "videotestsrc",
      "is-live=true",
      "pattern=red",
      "!",
      `video/x-raw,format=RGBx,width=640,height=480,framerate=${CAMERA_FPS}/1`,
      "!",
      "pipewiresink",
      "mode=provide",
      `client-name=${CAMERA_NODE}`,
      `stream-properties=props,media.class=Video/Source,node.name=${CAMERA_NODE},node.description=BenchCam`,
    ],
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
