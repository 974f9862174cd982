// Order statistics and number formatting for benchmark tables.

/** The median of `values` (mean of the two middle ones for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor((s.length - 1) / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid] as number) + (s[mid + 1] as number)) / 2;
}

/** Smallest and largest of `values`. */
export function range(values: readonly number[]): { min: number; max: number } {
  return { min: Math.min(...values), max: Math.max(...values) };
}

/** A number with about 3 significant digits, thousands grouped: 11.7, 0.324, 1,999, 2,385,133. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v).toLocaleString("en-US");
  if (Number.isInteger(v)) return String(v);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return "0";
  return v.toPrecision(3);
}

/** A ratio such as "4.12x". */
export function fmtRatio(v: number): string {
  return Number.isFinite(v) ? `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}x` : "–";
}

/** A CPU time given in ns, in µs below 1 ms and in ms above: "0.324 µs", "4.71 ms". */
export function fmtCpu(ns: number): string {
  if (!Number.isFinite(ns)) return "–";
  return ns >= 1e6 ? `${fmt(ns / 1e6)} ms` : `${fmt(ns / 1e3)} µs`;
}
