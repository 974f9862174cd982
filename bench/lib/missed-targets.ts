// The targets a run missed, and what the same run says about why: the native floor's figure, where crossway's time
// and CPU go per unit, and a CPU profile of guest and device taken after the measured runs (issue 15's acceptance).
import { MACRO_BENCHES } from "./macro-benches.ts";
import {
  type BenchReport,
  type CellSummary,
  cellOf,
  evaluateTargets,
  type Placement,
  type PlacementRecord,
  summarize,
  type TargetOutcome,
} from "./report.ts";
import { fmt, fmtCpu, fmtRatio } from "./stats.ts";

/** A CPU profile of crossway taken for a missed target (one per placement and benchmark). */
export interface MissedProfile {
  readonly placement: Placement;
  readonly bench: string;
  /** Repetitions of the benchmark run under the profiler. */
  readonly reps: number;
  /** `perf record` of the processes (kernel, native code and JavaScript), or V8's profiler (JavaScript only). */
  readonly tool: "perf" | "cpu-prof";
  /** Why perf was not used (cpu-prof only). */
  readonly perfMissing?: string;
  /** Where cpu-prof's flame graphs and raw profiles are, relative to the results directory. */
  readonly dir?: string;
  /** The profile's markdown summary; absent if profiling failed. */
  readonly summary?: string;
  readonly error?: string;
}

/** The targets crossway ran for and missed, in table order. */
export function missedTargets(report: BenchReport): TargetOutcome[] {
  return evaluateTargets(report).filter((o) => o.value !== undefined && !o.met);
}

/** The (placement, benchmark) pairs a missed target's profile should cover: macro benchmarks only, once each. */
export function profilesWanted(report: BenchReport): Array<{ placement: Placement; bench: string }> {
  const out: Array<{ placement: Placement; bench: string }> = [];
  for (const m of missedTargets(report)) {
    if (m.bench === "" || !MACRO_BENCHES.some((b) => b.id === m.bench)) continue;
    if (out.some((x) => x.placement === m.placement && x.bench === m.bench)) continue;
    out.push({ placement: m.placement, bench: m.bench });
  }
  return out;
}

/** "92.0 µs (guest 35.1 µs, device 36.4 µs)": a path's CPU per unit split into its guest and host sides. */
function cpuSplit(s: CellSummary): string {
  if (s.cpuNsPerUnit === null) return "not measured";
  if (s.guestCpuNsPerUnit === null) return fmtCpu(s.cpuNsPerUnit);
  return `${fmtCpu(s.cpuNsPerUnit)} (guest ${fmtCpu(s.guestCpuNsPerUnit)}, device ${fmtCpu(s.cpuNsPerUnit - s.guestCpuNsPerUnit)})`;
}

/** The micro-benchmark case that is a full frame's copy in Node (bench/micro/baseline.bench.ts). */
const FRAME_COPY_CASE = "copy 1080p ARGB frame (8.3 MB)";

/**
 * For a full-frame benchmark: this run's own 8.3 MB copy, the one thing every frame through crossway must do (the
 * client's pages are not the host's), so a reader can tell the machine's memory speed in this run from crossway's.
 */
function frameCopyLine(report: BenchReport, p: PlacementRecord, bench: string): string[] {
  if (!bench.startsWith("shm-full")) return [];
  const copy = report.micro.find((m) => m.case === FRAME_COPY_CASE);
  const cw = summarize(cellOf(p, bench, "crossway"));
  const guest = cw?.guestCpuNsPerUnit ?? null;
  if (copy === undefined || guest === null) return [];
  const copyNs = copy.nsPerOp;
  return [
    `This run's own copy of one 1080p frame in Node (micro-benchmark "${FRAME_COPY_CASE}") took ${fmtCpu(copyNs)}; crossway's guest spends ${fmtCpu(guest)} per frame, ${fmt(guest / copyNs)} times that: each frame is copied from the client's pages into the host's, so this run's memory speed sets most of it.`,
  ];
}

/** Where a benchmark's figure goes on crossway and on the native floor, from the run's own cells. */
function breakdown(p: PlacementRecord, bench: string, p99: boolean): string[] {
  const def = MACRO_BENCHES.find((b) => b.id === bench);
  const cw = summarize(cellOf(p, bench, "crossway"));
  const floor = summarize(cellOf(p, bench, "cd-floor"));
  const direct = summarize(cellOf(p, bench, "direct"));
  if (def === undefined || cw === undefined) return [];
  const lines: string[] = [];
  const fig = (s: CellSummary): number => (p99 ? (s.extras.p99 ?? Number.NaN) : s.median);
  const what = p99 ? `p99 ${def.label}` : `median ${def.label}`;
  if (direct !== undefined && def.unit === "µs") {
    lines.push(
      `Per ${def.cpuPer}: crossway's ${what} is ${fmt(fig(cw))} µs against ${fmt(fig(direct))} µs direct (client and compositor alone), so ${fmt(fig(cw) - fig(direct))} µs go through guest and device${
        floor === undefined
          ? "."
          : `; on the native floor ${fmt(fig(floor))} µs, ${fmt(fig(floor) - fig(direct))} µs through its guest and device.`
      }`,
    );
  }
  lines.push(
    `CPU per ${def.cpuPer}: crossway ${cpuSplit(cw)}${floor === undefined ? "" : `, native floor ${cpuSplit(floor)}`}.`,
  );
  return lines;
}

/** The markdown section on the run's missed targets; empty when every target was met. */
export function missedTargetsSection(report: BenchReport): string {
  const missed = missedTargets(report);
  if (missed.length === 0) return "";
  const out = ["### Missed targets: where the time goes (same run)", ""];
  for (const m of missed) {
    const p = report.placements.find((x) => x.placement === m.placement) as PlacementRecord;
    out.push(`**${m.what} (${m.placement}): ${m.show(m.value as number)}, goal ${m.goal}.**`);
    const floor = m.floor;
    if (floor === undefined) {
      out.push(
        m.bench.startsWith("shm")
          ? "No native floor runs for this figure (the cross-domain floor carries no fds, so it runs no shm benchmark)."
          : "The native floor did not run in this run (see --paths): nothing here says what the machine allows.",
      );
    } else if (!m.metBy(floor)) {
      out.push(
        `The native floor of the cross-domain pattern (C guest + C device, no JavaScript: bench/clients/crossdomain-floor.c) reads ${m.show(floor)} in this run: the goal is out of reach of the cross-domain pattern itself on this machine in this run, whatever implements guest and device. crossway is at ${fmtRatio((m.value as number) / floor)} of that floor.`,
      );
    } else {
      out.push(
        `The native floor of the cross-domain pattern (C guest + C device) reads ${m.show(floor)} in this run and meets the goal: crossway's own cost misses it (${fmtRatio((m.value as number) / floor)} of the floor; see the profile).`,
      );
    }
    out.push(...breakdown(p, m.bench, m.what.includes("p99")), ...frameCopyLine(report, p, m.bench));
    out.push("");
  }
  for (const prof of report.missedProfiles ?? []) {
    const label = MACRO_BENCHES.find((b) => b.id === prof.bench)?.label ?? prof.bench;
    const how =
      prof.tool === "perf"
        ? `both processes sampled by \`perf record -g\` (kernel, native code and JavaScript alike)`
        : `both processes under \`node --cpu-prof\` (JavaScript only: the native fast path and the kernel are not in it; perf was not used: ${prof.perfMissing ?? "unknown"}). Flame graphs and raw profiles: ${prof.dir ?? "?"}/`;
    out.push(
      `#### Profile: ${label}, ${prof.placement}, crossway (guest + device)`,
      "",
      `Taken after the measured runs: ${prof.reps} more runs of the benchmark with ${how}. The profiler slows what it watches: its run's figures are not the table's.`,
      "",
      prof.summary ?? `Profiling failed: ${prof.error ?? "no profile written"}.`,
      "",
    );
  }
  return out.join("\n");
}
