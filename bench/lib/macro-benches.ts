// The end-to-end benchmarks: which client runs with which arguments, and what each one's figures mean.
import type { ClientName } from "./build.ts";

/** How long a run may take: "quick" is the smoke run (< 2 min in all), "full" the reported one (< 10 min). */
export type Mode = "quick" | "full";

/** A secondary figure of a benchmark, e.g. the p99 of round trips or MB/s. */
export interface Extra {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  get(result: Record<string, unknown>): number;
}

/** One end-to-end benchmark. */
export interface MacroBench {
  readonly id: string;
  readonly label: string;
  readonly client: ClientName;
  args(mode: Mode): string[];
  /** Kill the client after this long (the slowest path, pinned, must fit well inside). */
  readonly timeoutMs: number;
  /** The headline figure: its unit and whether lower is better (latency) or higher (throughput). */
  readonly unit: string;
  readonly better: "lower" | "higher";
  value(result: Record<string, unknown>): number;
  readonly extras: readonly Extra[];
  /** What proxy CPU time is divided by, and the name of that unit. */
  readonly cpuPer: string;
  cpuUnits(result: Record<string, unknown>): number;
}

function num(result: Record<string, unknown>, ...path: string[]): number {
  let v: unknown = result;
  for (const k of path)
    v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined;
  if (typeof v !== "number") throw new TypeError(`benchmark result has no number at ${path.join(".")}`);
  return v;
}

/** All end-to-end benchmarks in the order they run. */
export const MACRO_BENCHES: readonly MacroBench[] = [
  {
    id: "roundtrip",
    label: "round trip",
    client: "roundtrip",
    // iterations, warm-up, time cap (ms)
    args: (m) => (m === "full" ? ["20000", "1000", "4000"] : ["5000", "300", "1000"]),
    timeoutMs: 30_000,
    unit: "µs",
    better: "lower",
    value: (r) => num(r, "us", "median"),
    extras: [
      { id: "p99", label: "p99", unit: "µs", get: (r) => num(r, "us", "p99") },
      { id: "mean", label: "mean", unit: "µs", get: (r) => num(r, "us", "mean") },
    ],
    cpuPer: "round trip",
    cpuUnits: (r) => num(r, "us", "n"),
  },
  {
    id: "connect",
    label: "connect",
    client: "connect",
    // max connections, time cap (ms), warm-up connections
    args: (m) => (m === "full" ? ["200", "1500", "5"] : ["100", "500", "3"]),
    timeoutMs: 30_000,
    unit: "µs",
    better: "lower",
    value: (r) => num(r, "us", "median"),
    extras: [
      { id: "p99", label: "p99", unit: "µs", get: (r) => num(r, "us", "p99") },
      { id: "mean", label: "mean", unit: "µs", get: (r) => num(r, "us", "mean") },
    ],
    cpuPer: "connection",
    cpuUnits: (r) => num(r, "us", "n"),
  },
  {
    id: "burst",
    label: "request burst (200k)",
    client: "burst",
    args: () => ["200000"],
    timeoutMs: 60_000,
    unit: "msg/s",
    better: "higher",
    value: (r) => num(r, "msgs_per_s"),
    extras: [],
    cpuPer: "message",
    cpuUnits: (r) => num(r, "messages"),
  },
  {
    id: "shm-full",
    label: "shm 1080p, full frames",
    client: "shm",
    // mode, max frames, time cap (ms), warm-up frames
    args: (m) => (m === "full" ? ["full", "300", "2000", "10"] : ["full", "100", "600", "5"]),
    timeoutMs: 60_000,
    unit: "fps",
    better: "higher",
    value: (r) => num(r, "fps"),
    extras: [{ id: "mbps", label: "", unit: "MB/s", get: (r) => num(r, "mb_per_s") }],
    cpuPer: "frame",
    cpuUnits: (r) => num(r, "frames"),
  },
  {
    id: "shm-full-sealed",
    label: "shm 1080p, full frames, sealed pool",
    client: "shm",
    // As shm-full, but the pool is sealed against shrinking (F_SEAL_SHRINK), which proxies may map safely.
    args: (m) => (m === "full" ? ["full", "300", "2000", "10", "1"] : ["full", "100", "600", "5", "1"]),
    timeoutMs: 60_000,
    unit: "fps",
    better: "higher",
    value: (r) => num(r, "fps"),
    extras: [{ id: "mbps", label: "", unit: "MB/s", get: (r) => num(r, "mb_per_s") }],
    cpuPer: "frame",
    cpuUnits: (r) => num(r, "frames"),
  },
  {
    id: "shm-damage",
    label: "shm 1080p, 64x64 damage",
    client: "shm",
    args: (m) => (m === "full" ? ["damage", "3000", "1500", "50"] : ["damage", "1000", "500", "20"]),
    timeoutMs: 60_000,
    unit: "fps",
    better: "higher",
    value: (r) => num(r, "fps"),
    extras: [{ id: "mbps", label: "", unit: "MB/s", get: (r) => num(r, "mb_per_s") }],
    cpuPer: "frame",
    cpuUnits: (r) => num(r, "frames"),
  },
  {
    id: "shm-damage-sealed",
    label: "shm 1080p, 64x64 damage, sealed pool",
    client: "shm",
    args: (m) =>
      m === "full" ? ["damage", "3000", "1500", "50", "1"] : ["damage", "1000", "500", "20", "1"],
    timeoutMs: 60_000,
    unit: "fps",
    better: "higher",
    value: (r) => num(r, "fps"),
    extras: [{ id: "mbps", label: "", unit: "MB/s", get: (r) => num(r, "mb_per_s") }],
    cpuPer: "frame",
    cpuUnits: (r) => num(r, "frames"),
  },
];
