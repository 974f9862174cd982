// Hand-written typings for the parts of benchmark.js 2.1 that bench/micro/run.ts uses (no @types package needed).
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
  export = Benchmark;
}
