// V8 block coverage for the coverage-guided fuzzers: counts code blocks run for the first time (node:inspector).
import { Session } from "node:inspector";

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
