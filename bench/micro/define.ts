// The shape of a micro-benchmark file: bench/micro/<topic>.bench.ts default-exports defineMicro({...}).

/**
 * A group of micro-benchmarks. Each case is a function called in a timed loop by benchmark.js; prepare inputs
 * once at module level or in `setup` (called once before the first case), never inside the case, so the case
 * measures only the work itself. Return a value from the case so the engine cannot drop the work as dead code.
 */
export interface MicroGroup {
  /** Shown as the table's group column, e.g. "wayland wire" or "cross-domain codec". */
  readonly name: string;
  readonly setup?: () => void | Promise<void>;
  readonly cases: Readonly<Record<string, () => unknown>>;
}

/** Identity helper that type-checks a micro-benchmark group. */
export function defineMicro(group: MicroGroup): MicroGroup {
  return group;
}
