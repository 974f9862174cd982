// Minimal typings for the parts of the `benchmark` package that bench/ uses (it ships none).
declare module "benchmark" {
  interface Stats {
    rme: number;
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
    add(name: string, fn: () => void, options?: { minSamples?: number; maxTime?: number }): Suite;
    on(event: "cycle" | "complete", fn: (e: Event) => void): Suite;
    run(options?: { async?: boolean }): Suite;
  }
  const Benchmark: { Suite: typeof Suite };
  export default Benchmark;
}
