// What the coverage-guided fuzzers share: run options, a seeded RNG, crash files, and V8 block coverage.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, MFD_ALLOW_SEALING } from "../../src/fd/constants.ts";
import { native } from "../../src/native.ts";

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

/**
 * Fresh fds from specs: "memfd:SIZE" a memfd of SIZE bytes, "sealed-memfd:SIZE" one sealed against any change of
 * size (as guest RAM: the device then maps a ring in it), "pipe-w" a pipe's write end (its read end closed).
 */
export function makeFds(specs: readonly string[]): number[] {
  const fds: number[] = [];
  for (const f of specs) {
    if (f === "pipe-w") {
      const [r, w] = native.pipe2();
      native.close(r);
      fds.push(w);
    } else if (f.startsWith("sealed-memfd:")) {
      const fd = native.memfdCreate("fuzz", MFD_ALLOW_SEALING);
      native.ftruncate(fd, Number(f.slice(13)));
      native.addSeals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
      fds.push(fd);
    } else {
      const fd = native.memfdCreate("fuzz", 0);
      native.ftruncate(fd, Number(f.slice(6)));
      fds.push(fd);
    }
  }
  return fds;
}

/** Whether a process whose name (comm) is `comm` is alive and not a zombie: one of `pids`, or any at all. */
export function processAlive(comm: string, pids?: readonly number[]): boolean {
  const candidates =
    pids ??
    readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .map(Number);
  return candidates.some((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.startsWith(`${pid} (${comm}) `) && !stat.startsWith(`${pid} (${comm}) Z`);
    } catch {
      return false;
    }
  });
}

/** What {@link runCampaign} needs: the corpus (seeds first), how to make a child, run a case, and fail. */
export interface Campaign<C> {
  readonly run: FuzzRun;
  readonly coverage: CoverageTracker;
  /** The seeds; inputs that reach new blocks are added to it. */
  readonly corpus: C[];
  /** A new case from the corpus (a mutation, or a fresh generation). */
  next(corpus: readonly C[]): C;
  /** Runs one case against the target, checks the oracles, and returns the new blocks it reached. */
  runOne(c: C): Promise<number>;
  /** Ends the run with a saved crash (does not return). */
  fail(c: C, why: string): Promise<never>;
  /** Names the process whose fds are checked in the failure message ("guest process", "filter", ...). */
  readonly fdOwner: string;
}

/** Campaign figures for the summary line. */
export interface CampaignStats {
  execs: number;
  seeds: number;
  corpus: number;
  seedBlocks: number;
  blocks: number;
}

/**
 * Runs the seeds, then children until the run's time is up: a child that reaches new blocks joins the corpus.
 * Every 50 executions this process's fd count must stay within 8 of where the seeds left it (a leak fails the run).
 */
export async function runCampaign<C>(c: Campaign<C>): Promise<CampaignStats> {
  const fdsNow = (): number => readdirSync("/proc/self/fd").length;
  c.coverage.newBlocks();
  const seeds = c.corpus.length;
  const baseFds = fdsNow();
  for (const s of c.corpus.slice(0, seeds)) await c.runOne(s);
  const seedBlocks = c.coverage.total;
  const deadline = Date.now() + c.run.seconds * 1000;
  let execs = seeds;
  while (Date.now() < deadline) {
    const child = c.next(c.corpus);
    execs++;
    if ((await c.runOne(child)) > 0) c.corpus.push(child);
    if (execs % 50 === 0) {
      await new Promise((r) => setTimeout(r, 20));
      const n = fdsNow();
      if (n > baseFds + 8) await c.fail(child, `${c.fdOwner} fds grew from ${baseFds} to ${n}`);
    }
  }
  return { execs, seeds, corpus: c.corpus.length, seedBlocks, blocks: c.coverage.total };
}
