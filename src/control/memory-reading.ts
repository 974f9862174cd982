// The memory figures a status answer carries, optionally after a full GC (how leaks are told from garbage).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { MemoryStatus } from "./status-report.ts";

let collect: (() => void) | null | undefined;

/**
 * V8's full collector. Node exposes it only under --expose-gc; a command started without that flag gets it by
 * turning the flag on and reading `gc` from a fresh context (the flag applies to contexts created after it).
 * Null when neither works: the reading is then taken without a GC and says so.
 */
function fullGc(): (() => void) | null {
  if (collect !== undefined) return collect;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === "function") {
    collect = exposed as () => void;
    return collect;
  }
  try {
    setFlagsFromString("--expose_gc");
    const fn: unknown = runInNewContext("gc");
    collect = typeof fn === "function" ? (fn as () => void) : null;
  } catch {
    collect = null;
  }
  return collect;
}

/** This process's memory now; with `gc`, after a full collection, so garbage not yet collected is not counted. */
export function readMemory(gc: boolean): MemoryStatus {
  const collector = gc ? fullGc() : null;
  collector?.();
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    gcForced: collector !== null,
  };
}
