// What the coverage-guided fuzzers share: run options, a seeded RNG, crash files, and V8 block coverage.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

/** One fuzzing run's settings from argv (--seconds N --seed N --out DIR) and its reproducible randomness. */
export interface FuzzRun {
  readonly seconds: number;
  readonly seed: number;
  readonly outDir: string;
  /** xorshift32 seeded by `seed`: a uniform integer in [0, n). Reproducible from the printed seed. */
  rand(n: number): number;
  /** Writes `input` to outDir as PREFIX-<sha1>.bin, prints a JSON line with `why`, and returns the path. */
  saveCrash(prefix: string, input: Uint8Array, why: string, extra?: Record<string, unknown>): string;
}

/** Reads the fuzzer's options from `argv` (default: this process's arguments). */
export function fuzzRun(argv: readonly string[] = process.argv.slice(2)): FuzzRun {
  const opt = (name: string, def: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : def;
  };
  const seconds = Number(opt("seconds", "20"));
  const seed = Number(opt("seed", String(Date.now() % 1_000_000)));
  const outDir = opt("out", join(process.cwd(), "test/fuzz/crashes"));
  // Said first, so that a run that hangs (no crash file, no summary) can still be replayed.
  process.stderr.write(`fuzz seed ${seed} (replay with --seed ${seed})\n`);
  let rng = seed | 1;
  return {
    seconds,
    seed,
    outDir,
    rand(n: number): number {
      rng ^= rng << 13;
      rng ^= rng >>> 17;
      rng ^= rng << 5;
      return (rng >>> 0) % n;
    },
    saveCrash(prefix, input, why, extra = {}) {
      mkdirSync(outDir, { recursive: true });
      const path = join(
        outDir,
        `${prefix}-${createHash("sha1").update(input).digest("hex").slice(0, 12)}.bin`,
      );
      writeFileSync(path, input);
      process.stdout.write(`${JSON.stringify({ crash: why, ...extra, input: path, seed })}\n`);
      return path;
    },
  };
}

interface Coverage {
  result: Array<{
    url: string;
    functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }>;
  }>;
}

/** What the fuzzers ask of coverage. */
export interface CoverageTracker {
  /** Blocks of the tracked files run since the last call that had never run before (the fuzzer keeps such inputs). */
  newBlocks(): number;
  /** Distinct blocks seen so far. */
  readonly total: number;
}

/** Starts precise block coverage in this thread, tracking files whose URL contains one of `dirs`. */
export function startCoverageTracker(dirs: readonly string[]): CoverageTracker {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): unknown => {
    let out: unknown;
    let err: unknown;
    // In-thread inspector sessions answer synchronously.
    session.post(method, params, (e, r) => {
      err = e;
      out = r;
    });
    if (err) throw err;
    return out;
  };
  post("Profiler.enable");
  post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
  const seen = new Set<string>();
  const newBlocks = (): number => {
    const cov = post("Profiler.takePreciseCoverage") as Coverage;
    let fresh = 0;
    for (const s of cov.result) {
      if (!dirs.some((d) => s.url.includes(d))) continue;
      const file = s.url.slice(s.url.lastIndexOf("/") + 1);
      for (const fn of s.functions) {
        for (const r of fn.ranges) {
          if (r.count === 0) continue;
          const key = `${file}:${r.startOffset}:${r.endOffset}`;
          if (!seen.has(key)) {
            seen.add(key);
            fresh++;
          }
        }
      }
    }
    return fresh;
  };
  return {
    newBlocks,
    get total() {
      return seen.size;
    },
  };
}
