// Hand-written typings for the parts of benchmark.js 2.1 that bench/ uses (Suite in wire-parse.ts, Benchmark in micro/run.ts).
declare module "benchmark" {
  namespace Benchmark {
    interface Options {
      maxTime?: number;
      minTime?: number;
      minSamples?: number;
      initCount?: number;
      async?: boolean;
    }
    interface Stats {
      /** Relative margin of error, in percent. */
      rme: number;
      /** Mean time per operation, in seconds. */
      mean: number;
      sample: number[];
    }
    interface Target {
      name: string;
      hz: number;
      stats: Stats;
    }
    interface Event {
      target: Target;
    }
    class Suite {
      constructor(name?: string);
      add(name: string, fn: () => unknown, options?: Options): Suite;
      on(event: "cycle" | "complete", fn: (e: Event) => void): Suite;
      run(options?: { async?: boolean }): Suite;
    }
  }
  class Benchmark {
    constructor(name: string, fn: () => unknown, options?: Benchmark.Options);
    name: string;
    /** Operations per second. */
    hz: number;
    stats: Benchmark.Stats;
    error?: unknown;
    aborted: boolean;
    run(options?: { async?: boolean }): this;
  }
  export default Benchmark;
}
