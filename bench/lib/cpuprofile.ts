// Summarizes a V8 .cpuprofile (node --cpu-prof) into its top functions by self time, for "what limits it".
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { fmt } from "./stats.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/**
 * Samples per node id, counting only those taken at or after `sinceUs` (CLOCK_MONOTONIC µs, the clock of V8's
 * timestamps and of process.hrtime): a profile of a benchmark then leaves out the process's start-up. Without
 * `sinceUs`, the profile's own hit counts.
 */
export function hitsSince(
  p: {
    nodes: ReadonlyArray<{ id: number; hitCount?: number }>;
    startTime: number;
    samples?: number[];
    timeDeltas?: number[];
  },
  sinceUs?: number,
): Map<number, number> {
  const hits = new Map<number, number>();
  if (sinceUs === undefined || p.samples === undefined || p.timeDeltas === undefined) {
    for (const n of p.nodes) if ((n.hitCount ?? 0) > 0) hits.set(n.id, n.hitCount as number);
    return hits;
  }
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < sinceUs) continue;
    const id = p.samples[i] as number;
    hits.set(id, (hits.get(id) ?? 0) + 1);
  }
  return hits;
}

/**
 * The `top` functions of a profile by self time, as a markdown table (ms and share of all samples); with `sinceUs`,
 * only the samples from then on (see hitsSince).
 */
export function summarizeCpuProfile(path: string, top = 15, sinceUs?: number): string {
  const p = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const counted = hitsSince(p, sinceUs);
  const from = sinceUs === undefined ? p.startTime : Math.max(p.startTime, sinceUs);
  const byKey = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const hits = counted.get(n.id) ?? 0;
    if (hits === 0) continue;
    const f = n.callFrame;
    const where = f.url === "" ? "" : ` ${basename(f.url)}:${f.lineNumber + 1}`;
    const key = `${f.functionName === "" ? "(anonymous)" : f.functionName}${where}`;
    byKey.set(key, (byKey.get(key) ?? 0) + hits);
    total += hits;
  }
  // Sampling is uniform in time, so each hit stands for the same share of the profiled span (µs -> ms).
  const msPerHit = total === 0 ? 0 : (p.endTime - from) / 1000 / total;
  // Idle time is the process waiting in epoll: shown in the header, left out of the shares.
  const idle = byKey.get("(idle)") ?? 0;
  byKey.delete("(idle)");
  const busy = total - idle;
  const rows = [...byKey.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [
    `${basename(path)}: ${fmt((p.endTime - from) / 1000)} ms profiled, ${fmt(busy * msPerHit)} ms busy.`,
    sinceUs === undefined
      ? "Start-up is included (tsx's loader: makeSyncRequest, waitForWorker, compile*); a native call's time"
      : "From the first measured run on (start-up left out); a native call's time",
    "(sendmsg, recvmsg, pread) is the self time of the JS function that makes it.",
    "",
    "| self ms | % of busy | function |",
    "|--:|--:|---|",
  ];
  for (const [key, hits] of rows) {
    const share = ((100 * hits) / busy).toFixed(1);
    lines.push(`| ${fmt(hits * msPerHit)} | ${share} | ${key.replaceAll("|", "/")} |`);
  }
  return lines.join("\n");
}
