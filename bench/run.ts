// Entry of `npm run bench`: micro-benchmarks, then every end-to-end benchmark on every path, interleaved, per placement.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CrosswayError } from "../src/errors.ts";
import { startPipeWire } from "../test/helpers/pipewire.ts";
import { buildClients, type ClientBinaries } from "./lib/build.ts";
import { type IdleClient, runClient, startIdleClient } from "./lib/client.ts";
import { type BenchCompositor, startCompositor } from "./lib/compositor.ts";
import { summarizeCpuProfile } from "./lib/cpuprofile.ts";
import { FIRST_WINDOW_BENCH, runFirstWindow } from "./lib/first-window.ts";
import { writeFlameGraph } from "./lib/flamegraph.ts";
import { gitState, machineInfo, peerVersions } from "./lib/machine.ts";
import { MACRO_BENCHES, type MacroBench, type Mode } from "./lib/macro-benches.ts";
import { type MissedProfile, missedTargetsSection, profilesWanted } from "./lib/missed-targets.ts";
import { PerfRecording, perfSummary, perfUnavailable } from "./lib/perf-profile.ts";
import {
  CAMERA_NODE,
  cameraCommand,
  PW_BENCHES,
  type PwBench,
  waitForCamera,
} from "./lib/pipewire-benches.ts";
import {
  fileSize,
  lastLogComplaint,
  logTail,
  requireCommand,
  spawnPeer,
  useReaper,
} from "./lib/processes.ts";
import { cpusAllowed, processTree, sampleMemory, threadsOf } from "./lib/procfs.ts";
import {
  type BenchReport,
  type CellRecord,
  type MemoryRecord,
  markdown,
  type PathStatus,
  type PipeWireRecord,
  type Placement,
  type PlacementRecord,
} from "./lib/report.ts";
import { fmt, fmtCpu } from "./lib/stats.ts";
import { runMicro } from "./micro/run.ts";
import {
  crossdomainFloorGuestPath,
  crossdomainFloorPath,
  crosswayNativeDevicePath,
} from "./paths/crossdomain-floor.ts";
import { crosswayGuestPath, crosswayPath } from "./paths/crossway.ts";
import { directPath } from "./paths/direct.ts";
import { nodeRelayPath } from "./paths/node-relay.ts";
import { type PwPath, pwDirectPath, pwFilterPath, type RunningPwPath } from "./paths/pipewire.ts";
import { pwGuestChainPath } from "./paths/pipewire-guest.ts";
import { relayPath } from "./paths/relay.ts";
import type { BenchPath, RunningPath } from "./paths/types.ts";
import { crosswayFilterPath, waylandFilterPath } from "./paths/wayland-filter.ts";
import { waypipePath } from "./paths/waypipe.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Every path, in table order. Ratios refer to direct and waypipe; the relay is the floor of any proxy hop. */
const ALL_PATHS: readonly BenchPath[] = [
  directPath,
  relayPath,
  nodeRelayPath,
  waypipePath,
  crosswayPath,
  crosswayGuestPath,
  crossdomainFloorPath,
  crossdomainFloorGuestPath,
  crosswayNativeDevicePath,
  waylandFilterPath,
  crosswayFilterPath,
];
const PLACEMENTS: readonly Placement[] = ["pinned", "unpinned"];
/** PipeWire paths, in table order. */
const PW_PATHS: readonly PwPath[] = [pwDirectPath, pwFilterPath, pwGuestChainPath];
/** Every path id accepted by --paths (PipeWire's direct is the same id as Wayland's). */
const ALL_PATH_IDS = [...new Set([...ALL_PATHS.map((p) => p.id), ...PW_PATHS.map((p) => p.id)])];
/** Every benchmark id accepted by --benches: the Wayland ones, then the PipeWire ones. */
const ALL_BENCH_IDS = [...MACRO_BENCHES.map((b) => b.id), ...PW_BENCHES.map((b) => b.id), FIRST_WINDOW_BENCH];

const USAGE = `Usage: npm run bench -- [options]

  --quick                 short run (3 repetitions, smaller counts; < 2 min)
  --reps N                repetitions per benchmark and path (default 5, quick 3)
  --paths a,b             of: ${ALL_PATH_IDS.join(", ")} (default all)
  --benches a,b           of: ${ALL_BENCH_IDS.join(", ")} (default all)
  --placements a,b        of: ${PLACEMENTS.join(", ")} (default both)
  --idle-clients N        idle clients for the memory figure (default 20, quick 10)
  --no-micro              skip the micro-benchmarks
  --micro-only            only the micro-benchmarks
  --out DIR               where results go (default bench/results)
  --render FILE.json      print the markdown tables of an earlier run and exit
  --profile               run Node-based proxies with --cpu-prof; top functions in <out>/profile-<mode>/<placement>.md
                          (profile one benchmark at a time: --profile --benches roundtrip --paths crossway)

Results: bench/results/latest-<mode>.{json,md} and run-<mode>-<time>.{json,md}.
Environment: CROSSWAY_KEEP_BENCH_DIRS=1 keeps the compositor and proxy logs; CROSSWAY_BENCH_CLI=/path/to/bin/crossway.js
measures another checkout's crossway; CROSSWAY_BENCH_APPS=foot,qt limits first-window to those apps;
CROSSWAY_FAST_PATH=0 runs crossway's guest without its native fast path (A/B).
Prerequisites (scripts/setup.sh): weston, waypipe, gcc, pkgconf, libwayland-dev, wayland-protocols, pipewire,
wireplumber, dbus-daemon, gstreamer1.0-tools, gstreamer1.0-pipewire.`;

function list<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (value === undefined) return [...allowed];
  const items = value.split(",").filter((s) => s !== "");
  for (const i of items) {
    if (!(allowed as readonly string[]).includes(i)) {
      throw new CrosswayError("CW_USAGE", `unknown ${what} '${i}' (expected ${allowed.join(", ")})`);
    }
  }
  return items as T[];
}

function int(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CrosswayError("CW_USAGE", `--${what} needs a positive integer`);
  return n;
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Things to stop, and scratch directories to remove, if the run is interrupted. */
const live = new Set<{ stop(): Promise<void> }>();
const liveDirs = new Set<string>();
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`bench: ${sig}, stopping peers`);
    void Promise.allSettled([...live].map((l) => l.stop())).then(() => {
      if (process.env.CROSSWAY_KEEP_BENCH_DIRS !== "1") {
        for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
      }
      process.exit(130);
    });
  });
}

interface RunOptions {
  /** Where CPU profiles of Node-based proxies go (`--profile`), one directory per placement. */
  profileRoot?: string;
  /** How the profile summary links its flame graphs (default: the placement's directory, beside the summary). */
  profileLinkDir?: string;
  /** Measure idle-client memory after the benchmarks (default true). */
  memory?: boolean;
  /** When set, `perf record` samples every proxy process during the benchmarks, its data kept in this directory. */
  perfDir?: string;
  mode: Mode;
  reps: number;
  idleClients: number;
  benches: readonly MacroBench[];
  bins: ClientBinaries;
}

/**
 * Summarizes every .cpuprofile of a placement into <profileDir>.md (flame graphs linked as `linkDir`/name.svg), logs
 * where it is, and returns the summary; undefined when no profile was written.
 */
function writeProfileSummary(
  profileDir: string,
  placement: Placement,
  linkDir = basename(profileDir),
  sinceUs?: number,
): string | undefined {
  const files = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length === 0) {
    log(
      `[${placement}] profile: no .cpuprofile written (no Node-based proxy ran, or it did not exit cleanly)`,
    );
    return undefined;
  }
  const parts = [`## CPU profiles (${placement})`, ""];
  for (const f of files.sort()) {
    parts.push(summarizeCpuProfile(join(profileDir, f), 15, sinceUs), "");
    const stem = f.replace(/\.cpuprofile$/, "");
    writeFlameGraph(join(profileDir, f), join(profileDir, stem), `${stem} (${placement})`, sinceUs);
    parts.push(`Flame graph: [${stem}.svg](${linkDir}/${stem}.svg) (folded stacks beside it).`, "");
  }
  const md = parts.join("\n");
  writeFileSync(`${profileDir}.md`, md);
  log(
    `[${placement}] profile: ${profileDir}.md, flame graphs and raw profiles (Chrome DevTools) in ${profileDir}/`,
  );
  return md;
}

async function measureMemory(
  id: string,
  rp: RunningPath,
  c: BenchCompositor,
  bins: ClientBinaries,
  pinned: boolean,
  n: number,
): Promise<MemoryRecord> {
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));
  await settle();
  const before = sampleMemory(rp.proxyPids);
  const idle: IdleClient[] = [];
  try {
    for (let i = 0; i < n; i++)
      idle.push(await startIdleClient(bins.idle, { ...c.env, WAYLAND_DISPLAY: rp.display }, pinned));
    await settle();
    const after = sampleMemory(rp.proxyPids);
    return {
      path: id,
      idleClients: n,
      before,
      after,
      rssKiBPerClient: (after.rssKiB - before.rssKiB) / n,
      pssKiBPerClient: (after.pssKiB - before.pssKiB) / n,
    };
  } finally {
    await Promise.all(idle.map((i) => i.stop()));
  }
}

async function runPlacement(
  placement: Placement,
  paths: readonly BenchPath[],
  opts: RunOptions,
): Promise<PlacementRecord> {
  const pinned = placement === "pinned";
  const profileDir = opts.profileRoot === undefined ? undefined : join(opts.profileRoot, placement);
  if (profileDir !== undefined) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const rec: PlacementRecord = { placement, paths: [], cells: [], memory: [], affinity: {} };
  const workDir = mkdtempSync(join(tmpdir(), `crossway-bench-${placement}-`));
  liveDirs.add(workDir);
  const running = new Map<string, RunningPath>();
  const pathOf = new Map(paths.map((p) => [p.id, p]));
  let compositor: BenchCompositor | undefined;
  const status = (id: string): PathStatus => rec.paths.find((s) => s.id === id) as PathStatus;
  let measuredFromUs: number | undefined;
  let perf: { rec: PerfRecording; roles: Map<number, string> } | undefined;
  try {
    compositor = await startCompositor(pinned);
    live.add(compositor);
    rec.affinity.weston = [cpusAllowed(compositor.pid)];
    for (const path of paths) {
      const st: PathStatus = { id: path.id, label: path.label, status: "ran" };
      rec.paths.push(st);
      const reason = await path.available({ repoRoot: REPO_ROOT });
      if (reason !== undefined) {
        st.status = "not available";
        st.reason = reason;
        log(`[${placement}] ${path.id}: not available: ${reason}`);
        continue;
      }
      try {
        const dir = join(workDir, path.id);
        mkdirSync(dir);
        const rp = await path.start({
          compositorSocket: compositor.socketPath,
          env: compositor.env,
          workDir: dir,
          pinned,
          repoRoot: REPO_ROOT,
          bins: opts.bins,
          ...(profileDir !== undefined ? { profileDir } : {}),
        });
        running.set(path.id, rp);
        live.add(rp);
        rec.affinity[path.id] = rp.proxyPids.map(cpusAllowed);
      } catch (err) {
        st.status = "failed";
        st.reason = `did not start: ${errMsg(err)}`;
        log(`[${placement}] ${path.id}: ${st.reason}`);
      }
    }
    const c = compositor;
    // Profiles are summarized from here on: the proxies' start-up is not what a benchmark measures.
    measuredFromUs = Number(process.hrtime.bigint() / 1000n);
    if (opts.perfDir !== undefined) {
      const roles = new Map<number, string>();
      const pids: number[] = [];
      for (const [id, rp] of running) {
        for (const root of rp.proxyPids) {
          const role = rp.guestSidePids?.includes(root) === true ? `${id} guest side` : `${id} host side`;
          for (const pid of processTree([root])) {
            pids.push(pid);
            // Every thread by its id too: perf reports threads (libuv's and V8's workers) under their own ids.
            for (const tid of threadsOf(pid)) roles.set(tid, role);
          }
        }
      }
      perf = { rec: PerfRecording.start(pids, opts.perfDir), roles };
      await perf.rec.enable();
    }
    for (const bench of opts.benches) {
      // Interleaved: A B C A B C ..., so drift and noise from other load spread over every path alike.
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const [id, rp] of running) {
          const st = status(id);
          if (st.status !== "ran") continue;
          if (!(pathOf.get(id)?.benches?.includes(bench.id) ?? true)) continue;
          let cell = rec.cells.find((x) => x.bench === bench.id && x.path === id);
          if (cell === undefined) {
            cell = { bench: bench.id, path: id, reps: [] } satisfies CellRecord;
            rec.cells.push(cell);
          }
          if (cell.error !== undefined) continue;
          if (!c.running()) {
            throw new CrosswayError("CW_BENCH_FAILED", `weston exited; log:\n${logTail(c.logPath)}`);
          }
          const dead = rp.health();
          if (dead !== undefined) {
            st.status = "failed";
            st.reason = dead;
            continue;
          }
          const logStart = rp.logPaths.map(fileSize);
          try {
            const run = await runClient(opts.bins[bench.client], bench.args(opts.mode), {
              env: { ...c.env, WAYLAND_DISPLAY: rp.display },
              pinned,
              proxyPids: rp.proxyPids,
              ...(rp.guestSidePids !== undefined ? { guestSidePids: rp.guestSidePids } : {}),
              timeoutMs: bench.timeoutMs,
            });
            const units = bench.cpuUnits(run.result);
            const cpu = rp.proxyPids.length > 0 ? run.proxyCpuNs / units : null;
            const guestCpu = run.guestCpuNs === null ? null : run.guestCpuNs / units;
            const value = bench.value(run.result);
            cell.reps.push({
              rep,
              value,
              extras: Object.fromEntries(bench.extras.map((e) => [e.id, e.get(run.result)])),
              cpuNsPerUnit: cpu,
              guestCpuNsPerUnit: guestCpu,
              cpuExact: run.proxyCpuExact,
              result: run.result,
            });
            log(
              `[${placement}] ${bench.id} ${rep}/${opts.reps} ${id}: ${fmt(value)} ${bench.unit}` +
                (cpu === null ? "" : `, proxy ${fmtCpu(cpu)}/${bench.cpuPer}`) +
                (guestCpu === null ? "" : ` (guest side ${fmtCpu(guestCpu)})`),
            );
          } catch (err) {
            // Give the proxy's own explanation: the client usually only sees a closed socket.
            await new Promise((r) => setTimeout(r, 100));
            const said = rp.logPaths
              .map((p, i) => lastLogComplaint(p, logStart[i]))
              .filter((x) => x !== undefined);
            cell.error =
              said.length > 0
                ? `proxy log: ${[...new Set(said)].join("; ")}; client: ${errMsg(err)}`
                : errMsg(err);
            log(`[${placement}] ${bench.id} ${rep}/${opts.reps} ${id}: FAILED ${cell.error}`);
            const gone = rp.health();
            if (gone !== undefined) {
              st.status = "failed";
              st.reason = gone;
            }
          }
        }
      }
    }
    if (perf !== undefined) {
      await perf.rec.disable();
      await perf.rec.stop();
      rec.profileSummary = perfSummary(perf.rec.dataFile, perf.roles);
    }
    for (const [id, rp] of running) {
      if (opts.memory === false) break;
      if (status(id).status !== "ran" || rp.proxyPids.length === 0) continue;
      try {
        const m = await measureMemory(id, rp, c, opts.bins, pinned, opts.idleClients);
        rec.memory.push(m);
        log(
          `[${placement}] memory ${id}: ${fmt(m.rssKiBPerClient)} KiB VmRSS, ${fmt(m.pssKiBPerClient)} KiB PSS per idle client`,
        );
      } catch (err) {
        log(`[${placement}] memory ${id}: FAILED ${errMsg(err)}`);
      }
    }
  } catch (err) {
    rec.error = errMsg(err);
    log(`[${placement}] FAILED: ${rec.error}`);
  } finally {
    await perf?.rec.stop();
    for (const rp of running.values()) {
      await rp.stop();
      live.delete(rp);
    }
    if (compositor !== undefined) {
      await compositor.stop();
      live.delete(compositor);
    }
    if (profileDir !== undefined) {
      const md = writeProfileSummary(profileDir, placement, opts.profileLinkDir, measuredFromUs);
      if (md !== undefined) rec.profileSummary = md;
    }
    if (process.env.CROSSWAY_KEEP_BENCH_DIRS === "1") log(`[${placement}] logs kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
  return rec;
}

/** Repetitions of a benchmark run under the profiler for a missed target. */
const MISSED_PROFILE_REPS = 3;

/**
 * For each target crossway missed, runs its benchmark again on crossway alone under a profiler, after the measured
 * runs (a profiler slows what it watches), so that the run's report says where the time goes (missed-targets.ts).
 * `perf record` of guest and device when perf runs here: it sees the kernel and the native fast path, where a round
 * trip's time goes; else `node --cpu-prof`, which sees JavaScript only. cpu-prof profiles and flame graphs go to
 * <out>/missed-<mode>/<bench>/<placement>/ (earlier ones are removed); perf's data stays in a scratch directory.
 */
async function profileMissedTargets(
  report: BenchReport,
  opts: { mode: Mode; bins: ClientBinaries; outDir: string },
): Promise<MissedProfile[]> {
  const root = join(opts.outDir, `missed-${opts.mode}`);
  rmSync(root, { recursive: true, force: true });
  const noPerf = perfUnavailable();
  const out: MissedProfile[] = [];
  for (const want of profilesWanted(report)) {
    if (interrupted) break;
    const bench = MACRO_BENCHES.find((b) => b.id === want.bench) as MacroBench;
    const tool = noPerf === undefined ? "perf" : "cpu-prof";
    log(`bench: profiling crossway on ${want.bench} (${want.placement}) with ${tool}, for a missed target`);
    const profileRoot = join(root, want.bench);
    const dir = relative(opts.outDir, join(profileRoot, want.placement));
    const perfDir = tool === "perf" ? mkdtempSync(join(tmpdir(), "crossway-bench-perf-")) : undefined;
    if (perfDir !== undefined) liveDirs.add(perfDir);
    try {
      const rec = await runPlacement(want.placement, [crosswayPath], {
        mode: opts.mode,
        reps: MISSED_PROFILE_REPS,
        idleClients: 0,
        benches: [bench],
        bins: opts.bins,
        memory: false,
        ...(perfDir !== undefined ? { perfDir } : { profileRoot, profileLinkDir: dir }),
      });
      const failure = rec.error ?? rec.cells.find((c) => c.error !== undefined)?.error;
      out.push({
        placement: want.placement,
        bench: want.bench,
        reps: MISSED_PROFILE_REPS,
        tool,
        ...(tool === "cpu-prof" ? { dir, perfMissing: noPerf as string } : {}),
        ...(rec.profileSummary !== undefined ? { summary: rec.profileSummary } : {}),
        ...(failure !== undefined ? { error: failure } : {}),
      });
    } finally {
      if (perfDir !== undefined) {
        rmSync(perfDir, { recursive: true, force: true });
        liveDirs.delete(perfDir);
      }
    }
  }
  return out;
}

async function runPipeWire(
  paths: readonly PwPath[],
  benches: readonly PwBench[],
  opts: { mode: Mode; reps: number },
): Promise<PipeWireRecord> {
  const rec: PipeWireRecord = { paths: [], cells: [] };
  const workDir = mkdtempSync(join(tmpdir(), "crossway-bench-pipewire-"));
  liveDirs.add(workDir);
  const running = new Map<string, RunningPwPath>();
  const stoppables: { stop(): Promise<void> }[] = [];
  try {
    requireCommand("gst-launch-1.0", "gstreamer1.0-tools");
    requireCommand("stdbuf", "coreutils");
    requireCommand("pw-dump", "pipewire-bin");
    const stack = await startPipeWire();
    stoppables.push(stack);
    live.add(stack);
    const startCamera = async (): Promise<{ stop(): Promise<void> }> => {
      const [camCmd, camArgs] = cameraCommand();
      const camera = spawnPeer("camera", camCmd, camArgs, {
        env: stack.env,
        pinned: false,
        logPath: join(workDir, "camera.log"),
      });
      try {
        await waitForCamera(stack.env);
      } catch (err) {
        await camera.stop();
        throw err;
      }
      return camera;
    };
    for (const path of paths) {
      const st: PathStatus = { id: path.id, label: path.label, status: "ran" };
      rec.paths.push(st);
      const reason = await path.available(REPO_ROOT);
      if (reason !== undefined) {
        st.status = "not available";
        st.reason = reason;
        log(`[pipewire] ${path.id}: not available: ${reason}`);
        continue;
      }
      try {
        const dir = join(workDir, path.id);
        mkdirSync(dir);
        const rp = await path.start({
          upstream: stack.socketPath,
          env: stack.env,
          workDir: dir,
          repoRoot: REPO_ROOT,
          cameraNode: CAMERA_NODE,
        });
        running.set(path.id, rp);
        stoppables.unshift(rp);
        live.add(rp);
      } catch (err) {
        st.status = "failed";
        st.reason = `did not start: ${errMsg(err)}`;
        log(`[pipewire] ${path.id}: ${st.reason}`);
      }
    }
    for (const bench of benches) {
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const [id, rp] of running) {
          const st = rec.paths.find((x) => x.id === id) as PathStatus;
          if (st.status !== "ran") continue;
          let cell = rec.cells.find((x) => x.bench === bench.id && x.path === id);
          if (cell === undefined) {
            cell = { bench: bench.id, path: id, reps: [] } satisfies CellRecord;
            rec.cells.push(cell);
          }
          if (cell.error !== undefined) continue;
          try {
            const remote =
              (bench.profile !== undefined ? rp.remotes?.[bench.profile] : undefined) ?? rp.remote;
            const r = await bench.run({
              env: { ...stack.env, PIPEWIRE_REMOTE: remote },
              daemonEnv: stack.env,
              proxyPids: rp.proxyPids,
              mode: opts.mode,
              startCamera,
            });
            const cpu = rp.proxyPids.length > 0 ? r.cpuNs / r.units : null;
            cell.reps.push({
              rep,
              value: r.value,
              extras: r.extras,
              cpuNsPerUnit: cpu,
              cpuExact: r.cpuExact,
              result: r.raw,
            });
            log(
              `[pipewire] ${bench.id} ${rep}/${opts.reps} ${id}: ${fmt(r.value)} ${bench.unit}` +
                (cpu === null ? "" : `, proxy ${fmtCpu(cpu)}/${bench.cpuPer}`),
            );
          } catch (err) {
            cell.error = errMsg(err);
            log(`[pipewire] ${bench.id} ${rep}/${opts.reps} ${id}: FAILED ${cell.error}`);
            const gone = rp.health();
            if (gone !== undefined) {
              st.status = "failed";
              st.reason = gone;
            }
          }
        }
      }
    }
  } catch (err) {
    rec.error = errMsg(err);
    log(`[pipewire] FAILED: ${rec.error}`);
  } finally {
    // Proxies first, then the daemon stack.
    for (const s of stoppables) {
      await s.stop();
      live.delete(s);
    }
    if (process.env.CROSSWAY_KEEP_BENCH_DIRS === "1") log(`[pipewire] logs kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
  return rec;
}

/** node:util parseArgs, with its option errors turned into CW_USAGE. */
function parseOptions(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        quick: { type: "boolean" },
        reps: { type: "string" },
        paths: { type: "string" },
        benches: { type: "string" },
        placements: { type: "string" },
        "idle-clients": { type: "string" },
        "no-micro": { type: "boolean" },
        "micro-only": { type: "boolean" },
        out: { type: "string" },
        render: { type: "string" },
        profile: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (err) {
    throw new CrosswayError("CW_USAGE", `${errMsg(err)} (see npm run bench -- --help)`, {}, { cause: err });
  }
}

async function main(argv: string[]): Promise<number> {
  const { values: o } = parseOptions(argv);
  if (o.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (o.render !== undefined) {
    // Re-renders the tables of an earlier run without measuring anything.
    const earlier = JSON.parse(readFileSync(o.render, "utf8")) as BenchReport;
    process.stdout.write(`${markdown(earlier, missedTargetsSection(earlier))}\n`);
    return 0;
  }
  const started = performance.now();
  const mode: Mode = o.quick === true ? "quick" : "full";
  const reps = int(o.reps, mode === "quick" ? 3 : 5, "reps");
  const idleClients = int(o["idle-clients"], mode === "quick" ? 10 : 20, "idle-clients");
  const pathIds = list(o.paths, ALL_PATH_IDS, "path");
  const benchIds = list(o.benches, ALL_BENCH_IDS, "benchmark");
  const placements = list(o.placements, PLACEMENTS, "placement");
  const microOnly = o["micro-only"] === true;
  const outDir = resolve(o.out ?? join(REPO_ROOT, "bench/results"));

  const report: BenchReport = {
    schema: 1,
    mode,
    date: new Date().toISOString(),
    durationS: 0,
    machine: machineInfo(),
    versions: peerVersions(),
    git: gitState(REPO_ROOT),
    config: { reps, idleClients, benches: benchIds, paths: pathIds, placements },
    micro: [],
    placements: [],
  };
  let bins: ClientBinaries | undefined;
  if (!microOnly) {
    log("bench: building the C clients");
    bins = await buildClients(
      join(REPO_ROOT, "bench/clients"),
      join(REPO_ROOT, "node_modules/.cache/crossway-bench"),
    );
    useReaper(bins.reap);
  }
  if (o["no-micro"] !== true) {
    log("bench: micro-benchmarks");
    report.micro = await runMicro({ maxTime: mode === "quick" ? 0.25 : 1, log });
  }
  if (bins !== undefined && MACRO_BENCHES.some((b) => benchIds.includes(b.id))) {
    const paths = ALL_PATHS.filter((p) => pathIds.includes(p.id));
    const benches = MACRO_BENCHES.filter((b) => benchIds.includes(b.id));
    for (const placement of placements) {
      if (interrupted) break;
      log(`bench: ${placement} placement`);
      report.placements.push(
        await runPlacement(placement, paths, {
          mode,
          reps,
          idleClients,
          benches,
          bins,
          ...(o.profile === true ? { profileRoot: join(outDir, `profile-${mode}`) } : {}),
        }),
      );
    }
  }
  // A full run explains the targets it missed with a profile (issue 15); --profile runs are profiles already.
  if (bins !== undefined && mode === "full" && o.profile !== true && !interrupted) {
    report.missedProfiles = await profileMissedTargets(report, { mode, bins, outDir });
  }
  const pwBenches = PW_BENCHES.filter((b) => benchIds.includes(b.id));
  if (!microOnly && pwBenches.length > 0 && !interrupted) {
    log("bench: PipeWire");
    const pwPaths = PW_PATHS.filter((p) => pathIds.includes(p.id));
    report.pipewire = await runPipeWire(pwPaths, pwBenches, { mode, reps });
  }
  if (!microOnly && benchIds.includes(FIRST_WINDOW_BENCH) && !interrupted) {
    log("bench: time to first window (sway; direct vs crossway)");
    // An app's start is short (40-200 ms) and its spread here is 10-30% from one start to the next (foot's 11 starts
    // through crossway in one full run: 45.8-90.8 ms), so the median stands on more starts than the other benchmarks
    // take: four times the repetitions plus one in a full run (21, about 2 minutes more than 11), twice plus one quick.
    report.firstWindow = await runFirstWindow(reps * (mode === "full" ? 4 : 2) + 1, log);
  }
  report.durationS = (performance.now() - started) / 1000;

  const md = markdown(report, missedTargetsSection(report));
  mkdirSync(outDir, { recursive: true });
  const stamp = report.date.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  for (const name of [`run-${mode}-${stamp}`, `latest-${mode}`]) {
    writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(outDir, `${name}.md`), md);
  }
  process.stdout.write(`\n${md}\n`);
  log(`bench: results in ${join(outDir, `latest-${mode}.{json,md}`)} (${fmt(report.durationS)} s)`);
  const failed = report.placements.some(
    (p) =>
      p.error !== undefined || p.paths.some((s) => s.status === "failed") || p.cells.some((c) => c.error),
  );
  return failed ? 1 : 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof CrosswayError) {
    log(`bench: ${err.message}`);
    process.exitCode = err.code === "CW_USAGE" ? 2 : 1;
  } else {
    throw err;
  }
}
