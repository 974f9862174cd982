// Discovers bench/micro/*.bench.ts and runs every case with benchmark.js; usable alone: `tsx bench/micro/run.ts`.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import Benchmark from "benchmark";
import { CrosswayError } from "../../src/errors.ts";
import { fmt } from "../lib/stats.ts";
import type { MicroGroup } from "./define.ts";

/** One measured case. */
export interface MicroResult {
  readonly file: string;
  readonly group: string;
  readonly case: string;
  readonly opsPerSec: number;
  readonly nsPerOp: number;
  /** Relative margin of error of the mean, in percent. */
  readonly rmePct: number;
  readonly samples: number;
}

/** Options of {@link runMicro}. */
export interface MicroOptions {
  /** Seconds of sampling per case (benchmark.js maxTime). */
  readonly maxTime: number;
  /** Only files whose name contains one of these strings (all when empty). */
  readonly filter?: readonly string[];
  readonly log?: (line: string) => void;
}

const HERE = dirname(fileURLToPath(import.meta.url));

function isGroup(v: unknown): v is MicroGroup {
  if (typeof v !== "object" || v === null) return false;
  const g = v as Record<string, unknown>;
  return (
    typeof g.name === "string" &&
    typeof g.cases === "object" &&
    g.cases !== null &&
    Object.values(g.cases).every((c) => typeof c === "function") &&
    (g.setup === undefined || typeof g.setup === "function")
  );
}

/** The *.bench.ts files of bench/micro, sorted. */
export function discoverMicro(dir: string = HERE): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".bench.ts"))
    .sort()
    .map((f) => join(dir, f));
}

/** Runs every case of every discovered file, one after another, synchronously within each case. */
export async function runMicro(opts: MicroOptions): Promise<MicroResult[]> {
  const log = opts.log ?? (() => {});
  const results: MicroResult[] = [];
  for (const path of discoverMicro()) {
    const file = path.slice(HERE.length + 1);
    if (opts.filter !== undefined && opts.filter.length > 0 && !opts.filter.some((f) => file.includes(f)))
      continue;
    const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
    if (!isGroup(mod.default)) {
      throw new CrosswayError(
        "CW_BENCH_FAILED",
        `bench/micro/${file}: the default export must be defineMicro({ name, cases: { name: () => ... } })`,
      );
    }
    const group = mod.default;
    await group.setup?.();
    for (const [name, fn] of Object.entries(group.cases)) {
      const b = new Benchmark(name, fn, { maxTime: opts.maxTime, minSamples: 5 }).run({ async: false });
      if (b.error !== undefined) {
        throw new CrosswayError(
          "CW_BENCH_FAILED",
          `bench/micro/${file} "${name}" threw: ${String(b.error)}`,
          {},
          {
            cause: b.error,
          },
        );
      }
      const r: MicroResult = {
        file,
        group: group.name,
        case: name,
        opsPerSec: b.hz,
        nsPerOp: b.stats.mean * 1e9,
        rmePct: b.stats.rme,
        samples: b.stats.sample.length,
      };
      results.push(r);
      log(`  micro ${group.name}: ${name}: ${fmt(r.nsPerOp)} ns/op ±${r.rmePct.toFixed(1)}%`);
    }
  }
  return results;
}

/** The micro results as a markdown table. */
export function microTable(results: readonly MicroResult[]): string {
  const lines = ["| group | case | ns/op | ops/s | ± | samples |", "|---|---|--:|--:|--:|--:|"];
  for (const r of results) {
    lines.push(
      `| ${r.group} | ${r.case} | ${fmt(r.nsPerOp)} | ${fmt(r.opsPerSec)} | ${r.rmePct.toFixed(1)}% | ${r.samples} |`,
    );
  }
  return lines.join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes("--quick");
  const filter = process.argv.slice(2).filter((a) => !a.startsWith("--"));
  const results = await runMicro({
    maxTime: quick ? 0.3 : 1,
    filter,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${microTable(results)}\n`);
}
