// The benchmark report: the JSON record of one run, its summaries, and the markdown tables printed and saved.
import { type MicroResult, microTable } from "../micro/run.ts";
import { type FirstWindowRecord, firstWindowTable } from "./first-window.ts";
import { MACRO_BENCHES, type MacroBench, type Mode } from "./macro-benches.ts";
import type { MissedProfile } from "./missed-targets.ts";
import { CAMERA_FPS, PW_BENCHES, type PwBench } from "./pipewire-benches.ts";
import type { MemorySample } from "./procfs.ts";
import { fmt, fmtCpu, fmtRatio, median, range } from "./stats.ts";

/** "pinned": compositor, proxies and client all on CPU 0 (latency, CPU cost); "unpinned": free (throughput). */
export type Placement = "pinned" | "unpinned";

/** One client run of one benchmark on one path. */
export interface RepRecord {
  readonly rep: number;
  readonly value: number;
  readonly extras: Record<string, number>;
  /** Proxy CPU per unit (message, frame...), in ns; null for the direct path. */
  readonly cpuNsPerUnit: number | null;
  /** The guest side's share of cpuNsPerUnit; null or absent (older runs) when the path has no guest side. */
  readonly guestCpuNsPerUnit?: number | null;
  readonly cpuExact: boolean;
  readonly result: Record<string, unknown>;
}

/** All repetitions of one benchmark on one path, in run order. */
export interface CellRecord {
  readonly bench: string;
  readonly path: string;
  readonly reps: RepRecord[];
  /** Set when a run failed; the repetitions before it are kept. */
  error?: string;
}

/** Whether a path ran in a placement, and why not. */
export interface PathStatus {
  readonly id: string;
  readonly label: string;
  status: "ran" | "not available" | "failed";
  reason?: string;
}

/** Proxy memory with 0 and with `idleClients` idle clients connected. */
export interface MemoryRecord {
  readonly path: string;
  readonly idleClients: number;
  readonly before: MemorySample;
  readonly after: MemorySample;
  readonly rssKiBPerClient: number;
  readonly pssKiBPerClient: number;
}

/** Everything measured in one placement. */
export interface PlacementRecord {
  readonly placement: Placement;
  readonly paths: PathStatus[];
  readonly cells: CellRecord[];
  readonly memory: MemoryRecord[];
  /** Cpus_allowed_list of the compositor and of each path's proxy processes, checked after they started. */
  readonly affinity: Record<string, string[]>;
  error?: string;
  /** The CPU profiles' summary, when the placement ran under the profiler (a missed target's profiling run). */
  profileSummary?: string;
}

/** The PipeWire benchmarks (one placement: unpinned; the daemon is the harness's private stack). */
export interface PipeWireRecord {
  readonly paths: PathStatus[];
  readonly cells: CellRecord[];
  error?: string;
}

/** The whole run, as written to bench/results/*.json. */
export interface BenchReport {
  readonly schema: 1;
  readonly mode: Mode;
  readonly date: string;
  durationS: number;
  readonly machine: Record<string, string | number>;
  readonly versions: Record<string, string>;
  readonly git: { commit: string; dirty: boolean };
  readonly config: {
    reps: number;
    idleClients: number;
    benches: string[];
    paths: string[];
    placements: Placement[];
  };
  micro: MicroResult[];
  placements: PlacementRecord[];
  pipewire?: PipeWireRecord;
  firstWindow?: FirstWindowRecord;
  /** CPU profiles of crossway taken after the measured runs for the targets it missed (missed-targets.ts). */
  missedProfiles?: MissedProfile[];
}

/** Median and spread of a cell. */
export interface CellSummary {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly extras: Record<string, number>;
  readonly cpuNsPerUnit: number | null;
  readonly guestCpuNsPerUnit: number | null;
  readonly cpuExact: boolean;
}

/** Summarizes a cell's repetitions; undefined when none succeeded. */
export function summarize(cell: CellRecord | undefined): CellSummary | undefined {
  if (cell === undefined || cell.reps.length === 0) return undefined;
  const values = cell.reps.map((r) => r.value);
  const extras: Record<string, number> = {};
  for (const k of Object.keys(cell.reps[0]?.extras ?? {}))
    extras[k] = median(cell.reps.map((r) => r.extras[k] ?? NaN));
  const cpu = cell.reps.map((r) => r.cpuNsPerUnit).filter((c): c is number => c !== null);
  const guestCpu = cell.reps
    .map((r) => r.guestCpuNsPerUnit)
    .filter((c): c is number => c !== null && c !== undefined);
  return {
    n: values.length,
    median: median(values),
    ...range(values),
    extras,
    cpuNsPerUnit: cpu.length > 0 ? median(cpu) : null,
    guestCpuNsPerUnit: guestCpu.length > 0 ? median(guestCpu) : null,
    cpuExact: cell.reps.every((r) => r.cpuExact),
  };
}

/** " (guest side 12 µs)": the part of the proxy CPU a VM's guest pays, for paths that have a guest side. */
function guestShare(s: CellSummary): string {
  return s.guestCpuNsPerUnit === null ? "" : ` (guest side ${fmtCpu(s.guestCpuNsPerUnit)})`;
}

/** A reason cut to one table-friendly line (the JSON keeps it whole). */
function short(reason: string | undefined): string {
  const line = (reason ?? "").split("\n")[0]?.replaceAll("|", "/") ?? "";
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

export function cellOf(p: PlacementRecord, bench: string, path: string): CellRecord | undefined {
  return p.cells.find((c) => c.bench === bench && c.path === path);
}

function benchRow(p: PlacementRecord, bench: MacroBench, status: PathStatus): string {
  const name = `${bench.label}`;
  if (status.status === "not available")
    return `| ${name} | ${status.label} | not available: ${short(status.reason)} ||||||`;
  const cell = cellOf(p, bench.id, status.id);
  const s = summarize(cell);
  if (s === undefined) {
    const why = cell?.error ?? status.reason ?? "no result";
    return `| ${name} | ${status.label} | failed: ${short(why)} ||||||`;
  }
  const ref = (id: string): string => {
    const r = summarize(cellOf(p, bench.id, id));
    return r === undefined ? "–" : fmtRatio(s.median / r.median);
  };
  const extras = bench.extras.map(
    (e) => `${e.label ? `${e.label} ` : ""}${fmt(s.extras[e.id] ?? NaN)} ${e.unit}`,
  );
  if (cell?.error !== undefined) extras.push(`(${cell.reps.length} reps; then failed: ${short(cell.error)})`);
  const cpu =
    s.cpuNsPerUnit === null
      ? "–"
      : `${fmtCpu(s.cpuNsPerUnit)}/${bench.cpuPer}${s.cpuExact ? "" : "*"}${guestShare(s)}`;
  return `| ${name} | ${status.label} | **${fmt(s.median)}** ${bench.unit} | ${fmt(s.min)}–${fmt(s.max)} (n=${s.n}) | ${ref("direct")} | ${ref("waypipe")} | ${cpu} | ${extras.join(", ")} |`;
}

function memoryRow(p: PlacementRecord, status: PathStatus, idleClients: number): string {
  const name = `idle client memory (${idleClients} clients)`;
  if (status.id === "direct") return `| ${name} | ${status.label} | – (no proxy) ||||||`;
  if (status.status === "not available")
    return `| ${name} | ${status.label} | not available: ${short(status.reason)} ||||||`;
  const m = p.memory.find((r) => r.path === status.id);
  if (m === undefined)
    return `| ${name} | ${status.label} | failed: ${short(status.reason ?? "not measured")} ||||||`;
  const wp = p.memory.find((r) => r.path === "waypipe");
  const vsWp = wp === undefined ? "–" : fmtRatio(m.rssKiBPerClient / wp.rssKiBPerClient);
  return `| ${name} | ${status.label} | **${fmt(m.rssKiBPerClient)}** KiB VmRSS/client | (n=1) | – | ${vsWp} | – | PSS ${fmt(m.pssKiBPerClient)} KiB/client; VmRSS ${fmt(m.before.rssKiB / 1024)}→${fmt(m.after.rssKiB / 1024)} MiB |`;
}

/** The markdown table of one placement. */
export function placementTable(p: PlacementRecord, benches: readonly string[], idleClients: number): string {
  const lines = [
    "| benchmark | path | median | min–max | vs direct | vs waypipe | proxy CPU | other (medians) |",
    "|---|---|--:|--:|--:|--:|--:|---|",
  ];
  for (const bench of MACRO_BENCHES) {
    if (!benches.includes(bench.id)) continue;
    for (const status of p.paths) {
      // A path that ran but has no cell for this benchmark skipped it (its `benches`): no row, not a failure.
      if (status.status === "ran" && cellOf(p, bench.id, status.id) === undefined) continue;
      lines.push(benchRow(p, bench, status));
    }
  }
  for (const status of p.paths) lines.push(memoryRow(p, status, idleClients));
  return lines.join("\n");
}

interface Target {
  readonly what: string;
  /** The benchmark the figure comes from ("" for memory), to show why a figure is missing. */
  readonly bench: string;
  readonly placement: Placement;
  /** Ratio of a path's figure (crossway unless named) to waypipe's, or an absolute figure for memory. */
  measure(p: PlacementRecord, path?: string): number | undefined;
  readonly goal: string;
  met(v: number): boolean;
  show(v: number): string;
  /**
   * The figure adds up over the hops (a median latency or a CPU time per unit, pinned or summed), so a JavaScript
   * floor can be estimated as the native floor plus what Node costs per hop (see jsFloor).
   */
  readonly additive?: boolean;
}

function ratioVsWaypipe(bench: string, key: "median" | "cpu" | "p99") {
  return (p: PlacementRecord, path = "crossway"): number | undefined => {
    const a = summarize(cellOf(p, bench, path));
    const b = summarize(cellOf(p, bench, "waypipe"));
    if (a === undefined || b === undefined) return undefined;
    if (key === "median") return a.median / b.median;
    if (key === "p99") {
      const ap = a.extras.p99;
      const bp = b.extras.p99;
      return ap !== undefined && bp !== undefined ? ap / bp : undefined;
    }
    return a.cpuNsPerUnit !== null && b.cpuNsPerUnit !== null ? a.cpuNsPerUnit / b.cpuNsPerUnit : undefined;
  };
}

/** Issues 7 and 15's targets: crossway (guest + device) against waypipe in the same run. */
const TARGETS: readonly Target[] = [
  {
    what: "round trip latency",
    placement: "pinned",
    bench: "roundtrip",
    measure: ratioVsWaypipe("roundtrip", "median"),
    goal: "≤ 0.8x waypipe",
    met: (v) => v <= 0.8,
    show: fmtRatio,
    additive: true,
  },
  {
    what: "round trip latency",
    placement: "unpinned",
    bench: "roundtrip",
    measure: ratioVsWaypipe("roundtrip", "median"),
    goal: "≤ 0.8x waypipe",
    met: (v) => v <= 0.8,
    show: fmtRatio,
    additive: true,
  },
  {
    what: "round trip p99",
    placement: "unpinned",
    bench: "roundtrip",
    measure: ratioVsWaypipe("roundtrip", "p99"),
    goal: "≤ 1x waypipe",
    met: (v) => v <= 1,
    show: fmtRatio,
  },
  {
    what: "proxy CPU per round trip",
    placement: "unpinned",
    bench: "roundtrip",
    measure: ratioVsWaypipe("roundtrip", "cpu"),
    goal: "≤ 0.8x waypipe",
    met: (v) => v <= 0.8,
    show: fmtRatio,
    additive: true,
  },
  {
    what: "proxy CPU per message (burst)",
    placement: "pinned",
    bench: "burst",
    measure: ratioVsWaypipe("burst", "cpu"),
    goal: "≤ 1x waypipe",
    met: (v) => v <= 1,
    show: fmtRatio,
    additive: true,
  },
  {
    what: "full 1080p frames/s",
    placement: "unpinned",
    bench: "shm-full",
    measure: ratioVsWaypipe("shm-full", "median"),
    goal: "≥ 4x waypipe",
    met: (v) => v >= 4,
    show: fmtRatio,
  },
  {
    what: "full 1080p frames/s, sealed pool",
    placement: "unpinned",
    bench: "shm-full-sealed",
    measure: ratioVsWaypipe("shm-full-sealed", "median"),
    goal: "≥ 4x waypipe",
    met: (v) => v >= 4,
    show: fmtRatio,
  },
  {
    what: "64x64 damage frames/s",
    placement: "unpinned",
    bench: "shm-damage",
    measure: ratioVsWaypipe("shm-damage", "median"),
    goal: "≥ 10x waypipe",
    met: (v) => v >= 10,
    show: fmtRatio,
  },
  {
    what: "64x64 damage frames/s, sealed pool",
    bench: "shm-damage-sealed",
    placement: "unpinned",
    measure: ratioVsWaypipe("shm-damage-sealed", "median"),
    goal: "≥ 10x waypipe",
    met: (v) => v >= 10,
    show: fmtRatio,
  },
  {
    what: "connect time",
    placement: "pinned",
    bench: "connect",
    measure: ratioVsWaypipe("connect", "median"),
    goal: "≤ 0.5x waypipe (2x faster)",
    met: (v) => v <= 0.5,
    show: fmtRatio,
  },
  {
    what: "VmRSS per idle client",
    placement: "unpinned",
    bench: "",
    measure: (p, path = "crossway") => p.memory.find((m) => m.path === path)?.rssKiBPerClient,
    goal: "< 1024 KiB",
    met: (v) => v < 1024,
    show: (v) => `${fmt(v)} KiB`,
  },
];

/**
 * The JavaScript floor of the cross-domain pattern, estimated from one run: the native floor (C guest + C device)
 * plus twice what Node costs per hop (Node relay minus C relay), since a JavaScript guest and a JavaScript device each
 * pay it. All three are ratios to the same waypipe figure, so the sum is a ratio too. Undefined for a figure that does
 * not add up over hops (p99, throughput, memory) or when a path did not run.
 */
function jsFloor(t: Target, p: PlacementRecord): number | undefined {
  if (t.additive !== true) return undefined;
  const floor = t.measure(p, "cd-floor");
  const nodeHop = t.measure(p, "node-relay");
  const cHop = t.measure(p, "relay");
  if (floor === undefined || nodeHop === undefined || cHop === undefined) return undefined;
  return floor + 2 * (nodeHop - cHop);
}

/** A target as one run measured it: crossway's figure and the native floor's, and whether each meets the goal. */
export interface TargetOutcome {
  readonly what: string;
  readonly placement: Placement;
  readonly bench: string;
  readonly goal: string;
  /** crossway's figure; undefined when crossway did not run or failed. */
  readonly value: number | undefined;
  readonly met: boolean;
  /** The native floor's figure (C guest + C device), when it ran. */
  readonly floor: number | undefined;
  /** The same figure for another path of the run (undefined when that path did not run). */
  measure(path: string): number | undefined;
  metBy(v: number): boolean;
  show(v: number): string;
  /** The placement's record, when the placement ran. */
  readonly record: PlacementRecord | undefined;
  /** The JavaScript floor (see jsFloor), for figures that add up over hops. */
  readonly jsFloor: number | undefined;
}

/** Every target the run's benchmarks cover, as measured. */
export function evaluateTargets(report: BenchReport): TargetOutcome[] {
  const out: TargetOutcome[] = [];
  for (const t of TARGETS) {
    if (t.bench !== "" && !report.config.benches.includes(t.bench)) continue;
    const p = report.placements.find((x) => x.placement === t.placement);
    const measure = (path: string): number | undefined => (p === undefined ? undefined : t.measure(p, path));
    const value = measure("crossway");
    out.push({
      what: t.what,
      placement: t.placement,
      bench: t.bench,
      goal: t.goal,
      value,
      met: value !== undefined && t.met(value),
      floor: measure("cd-floor"),
      measure,
      metBy: t.met,
      show: t.show,
      record: p,
      jsFloor: p === undefined ? undefined : jsFloor(t, p),
    });
  }
  return out;
}

/**
 * The targets table; rows read "pending" until crossway (guest + device) has run. The last columns give the
 * same ratio for the native floor of the cross-domain pattern, its JavaScript floor (see jsFloor), a C guest in front
 * of crossway's device, and crossway's guest in front of a C device, where those ran: a target the native floor
 * misses is out of reach of any implementation on this machine, one the JavaScript floor misses is out of reach of
 * a guest and device both in JavaScript, and the two mixed pairs tell the guest's share from the device's.
 */
export function targetsTable(report: BenchReport): string {
  const lines = [
    "| target | placement | goal | crossway | met? | native floor (C guest + C device) | JS floor (native floor + 2 Node hops) | C guest + crossway device | crossway guest + C device |",
    "|---|---|---|--:|---|--:|--:|--:|--:|",
  ];
  for (const o of evaluateTargets(report)) {
    const p = o.record;
    const status = p?.paths.find((s) => s.id === "crossway");
    const err = p === undefined ? undefined : cellOf(p, o.bench, "crossway")?.error;
    const pending =
      status?.status !== "ran"
        ? `pending (${short(status?.reason ?? "not run")})`
        : err !== undefined
          ? `failed: ${short(err)}`
          : "no result";
    const other = (x: number | undefined): string => (x === undefined ? "–" : o.show(x));
    const floors = `${other(o.floor)} | ${other(o.jsFloor)} | ${other(o.measure("cd-floor-guest"))} | ${other(o.measure("crossway-cdev"))}`;
    lines.push(
      o.value === undefined
        ? `| ${o.what} | ${o.placement} | ${o.goal} | – | ${pending} | ${floors} |`
        : `| ${o.what} | ${o.placement} | ${o.goal} | ${o.show(o.value)} | ${o.met ? "yes" : "**no**"} | ${floors} |`,
    );
  }
  return lines.join("\n");
}

interface SummaryRow {
  readonly label: string;
  readonly placement: Placement;
  readonly bench: string;
  readonly kind: "median" | "cpu" | "rss";
}

/** The headline figures: latency and CPU cost pinned, throughput and memory unpinned (issue 7). */
const SUMMARY_ROWS: readonly SummaryRow[] = [
  { label: "round trip, median µs", placement: "pinned", bench: "roundtrip", kind: "median" },
  { label: "round trip, median µs", placement: "unpinned", bench: "roundtrip", kind: "median" },
  { label: "proxy CPU per round trip", placement: "unpinned", bench: "roundtrip", kind: "cpu" },
  {
    label: "connect + registry + round trip, median µs",
    placement: "pinned",
    bench: "connect",
    kind: "median",
  },
  { label: "request burst, msg/s", placement: "pinned", bench: "burst", kind: "median" },
  { label: "proxy CPU per message (burst)", placement: "pinned", bench: "burst", kind: "cpu" },
  { label: "shm 1080p full frames, fps", placement: "unpinned", bench: "shm-full", kind: "median" },
  { label: "proxy CPU per full frame", placement: "pinned", bench: "shm-full", kind: "cpu" },
  {
    label: "shm 1080p full frames, sealed pool, fps",
    placement: "unpinned",
    bench: "shm-full-sealed",
    kind: "median",
  },
  {
    label: "proxy CPU per full frame, sealed pool",
    placement: "pinned",
    bench: "shm-full-sealed",
    kind: "cpu",
  },
  { label: "shm 1080p 64x64 damage, fps", placement: "unpinned", bench: "shm-damage", kind: "median" },
  { label: "proxy CPU per 64x64 frame", placement: "pinned", bench: "shm-damage", kind: "cpu" },
  {
    label: "shm 1080p 64x64 damage, sealed pool, fps",
    placement: "unpinned",
    bench: "shm-damage-sealed",
    kind: "median",
  },
  {
    label: "proxy CPU per 64x64 frame, sealed pool",
    placement: "pinned",
    bench: "shm-damage-sealed",
    kind: "cpu",
  },
  { label: "VmRSS per idle client", placement: "unpinned", bench: "", kind: "rss" },
];

function summaryCell(p: PlacementRecord | undefined, row: SummaryRow, path: string): string {
  const status = p?.paths.find((s) => s.id === path);
  if (p === undefined || status === undefined) return "not run";
  if (status.status === "not available") return "pending";
  if (row.kind === "rss") {
    if (path === "direct") return "–";
    const m = p.memory.find((r) => r.path === path);
    return m === undefined ? "failed" : `${fmt(m.rssKiBPerClient)} KiB`;
  }
  const cell = cellOf(p, row.bench, path);
  // A path that ran with no cell for this benchmark skipped it (its `benches`, e.g. the fd-less floors).
  if (cell === undefined && status.status === "ran") return "–";
  const s = summarize(cell);
  if (s === undefined) return "failed";
  if (row.kind === "cpu") return s.cpuNsPerUnit === null ? "–" : `${fmtCpu(s.cpuNsPerUnit)}${guestShare(s)}`;
  return fmt(s.median);
}

/** One compact table of the headline figures, one column per path (the README shows this one). */
export function summaryTable(report: BenchReport): string {
  const paths = report.placements[0]?.paths ?? [];
  const lines = [
    `| | ${paths.map((s) => s.label).join(" | ")} |`,
    `|---|${paths.map(() => "--:").join("|")}|`,
  ];
  for (const row of SUMMARY_ROWS) {
    if (row.bench !== "" && !report.config.benches.includes(row.bench)) continue;
    const p = report.placements.find((x) => x.placement === row.placement);
    if (p === undefined) continue;
    lines.push(
      `| ${row.label} (${row.placement}) | ${paths.map((s) => summaryCell(p, row, s.id)).join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

/** The PipeWire table: each benchmark on each path, with the ratio to direct. */
export function pipewireTable(rec: PipeWireRecord, benches: readonly PwBench[]): string {
  const lines = [
    "| benchmark | path | median | min–max | vs direct | proxy CPU | other (medians) |",
    "|---|---|--:|--:|--:|--:|---|",
  ];
  const cells = (bench: string, path: string) => rec.cells.find((c) => c.bench === bench && c.path === path);
  for (const bench of benches) {
    for (const st of rec.paths) {
      if (st.status === "not available") {
        lines.push(`| ${bench.label} | ${st.label} | not available: ${short(st.reason)} |||||`);
        continue;
      }
      const cell = cells(bench.id, st.id);
      const s = summarize(cell);
      if (s === undefined) {
        lines.push(
          `| ${bench.label} | ${st.label} | failed: ${short(cell?.error ?? st.reason ?? "no result")} |||||`,
        );
        continue;
      }
      const d = summarize(cells(bench.id, "direct"));
      const cpu =
        s.cpuNsPerUnit === null
          ? "–"
          : `${fmtCpu(s.cpuNsPerUnit)}/${bench.cpuPer}${s.cpuExact ? "" : "*"}${guestShare(s)}`;
      const extras = bench.extras.map((e) =>
        `${e.label} ${fmt(s.extras[e.id] ?? Number.NaN)} ${e.unit}`.trim(),
      );
      if (cell?.error !== undefined)
        extras.push(`(${cell.reps.length} reps; then failed: ${short(cell.error)})`);
      lines.push(
        `| ${bench.label} | ${st.label} | **${fmt(s.median)}** ${bench.unit} | ${fmt(s.min)}–${fmt(s.max)} (n=${s.n}) | ${d === undefined ? "–" : fmtRatio(s.median / d.median)} | ${cpu} | ${extras.join(", ")} |`,
      );
    }
  }
  return lines.join("\n");
}

/** The one-paragraph header: machine, versions, commit, date, mode. */
export function header(report: BenchReport): string {
  const m = report.machine;
  const v = report.versions;
  return [
    `Run ${report.date} (${report.mode} mode, ${report.config.reps} repetitions interleaved per benchmark, ${fmt(report.durationS)} s),`,
    `commit ${report.git.commit.slice(0, 12)}${report.git.dirty ? " (dirty)" : ""}, Node ${m.node}.`,
    `Machine: ${m.cpu}, ${m.cores} cores, kernel ${m.kernel}, Debian ${m.debian}.`,
    `Peers: weston ${v.weston} (headless, pixman), waypipe ${v.waypipe} (--compress none --no-gpu), libwayland ${v.libwayland}.`,
  ].join("\n");
}

/**
 * The full markdown report of a run. `afterTargets` is a section placed right after the targets table (run.ts gives
 * the missed targets' explanation there; missed-targets.ts builds it from this module's figures).
 */
export function markdown(report: BenchReport, afterTargets = ""): string {
  const out = [`## crossway benchmarks`, "", header(report), ""];
  if (report.placements.length > 0) {
    out.push(
      "### Summary (medians; pending = not available yet, see the tables below for why)",
      "",
      summaryTable(report),
      "",
    );
  }
  for (const p of report.placements) {
    const title =
      p.placement === "pinned"
        ? "### Pinned: compositor, proxies and client on CPU 0 (latency, CPU cost)"
        : "### Unpinned (throughput)";
    out.push(title, "");
    if (p.error !== undefined) out.push(`**This placement failed:** ${p.error}`, "");
    out.push(placementTable(p, report.config.benches, report.config.idleClients), "");
  }
  out.push(
    "Ratios divide this row's median by the direct or waypipe median of the same run (for µs lower is better, for",
    "msg/s and fps higher is better). Proxy CPU is utime+stime of all proxy processes (children included) during",
    "the measured phase, from per-thread schedstat (exact) or, marked *, from /proc/<pid>/stat clock ticks when",
    "processes came and went (waypipe forks per connection). Memory: sum over the proxy processes with the idle",
    "clients connected minus without, per client.",
    "",
    "### Targets (crossway vs waypipe, same run)",
    "",
    targetsTable(report),
    "",
  );
  if (afterTargets !== "") out.push(afterTargets, "");
  if (report.pipewire !== undefined) {
    const benches = PW_BENCHES.filter((b) => report.config.benches.includes(b.id));
    out.push(
      "### PipeWire (unpinned; private dbus + pipewire + wireplumber stack)",
      "",
      ...(report.pipewire.error === undefined
        ? []
        : [`**The PipeWire benchmarks failed:** ${report.pipewire.error}`, ""]),
      pipewireTable(report.pipewire, benches),
      "",
      `The camera is a live ${CAMERA_FPS} fps videotestsrc (640x480 RGBx) connected directly to the daemon; the`,
      "consumer (GStreamer pipewiresrc) goes through the path. First frame: from spawning the consumer to its first",
      "buffer (GStreamer start-up included, alike on every path).",
      "",
    );
  }
  if (report.firstWindow !== undefined) {
    out.push(
      "### Time to first window (headless sway, pixman; issue 15 target ≤ 1.3x direct)",
      "",
      ...(report.firstWindow.error === undefined ? [] : [`**Failed:** ${report.firstWindow.error}`, ""]),
      firstWindowTable(report.firstWindow),
      "",
      "From spawning the app to sway's window `new` IPC event (sent when the toplevel maps: its first commit with a",
      "buffer). Direct and through crossway alternate, one warm-up start each first; the app is closed between runs.",
      "",
    );
  }
  if (report.micro.length > 0) out.push("### Micro-benchmarks", "", microTable(report.micro), "");
  return out.join("\n");
}
