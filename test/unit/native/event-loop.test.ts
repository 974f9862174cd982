// stopLoopIdleMetrics: the loop sleeps in one epoll_pwait instead of an empty non-blocking one plus the real one.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runTracedNode } from "../../helpers/epoll-waits.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-loop-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const addonPath = fileURLToPath(
  new URL("../../../native/build/Release/crossway_native.node", import.meta.url),
);

/** How many times the child's loop sleeps after its marker: six timers, one after the other. */
const SLEEPS = 6;
/**
 * Each timer's delay. Long enough that the loop reaches its wait before the timer is due even on a loaded machine:
 * with 20 ms, a fresh-clone run beside another made one of the six waits a poll with timeout 0 (5 sleeps).
 */
const TIMER_MS = 100;

// The child: optionally turns the metrics off, writes a marker strace can see, then sleeps SLEEPS times on timers
// and reports what performance.eventLoopUtilization() saw as idle over those sleeps.
const child = `
const addon = require(${JSON.stringify(addonPath)});
const { performance } = require("node:perf_hooks");
const { writeSync } = require("node:fs");
const out = {};
if (process.argv[1] === "off") { out.first = addon.stopLoopIdleMetrics(); out.second = addon.stopLoopIdleMetrics(); }
writeSync(1, "MARK\\n");
const start = performance.eventLoopUtilization();
let n = 0;
const tick = () => {
  if (++n < ${SLEEPS}) { setTimeout(tick, ${TIMER_MS}); return; }
  out.idleMs = performance.eventLoopUtilization(start).idle;
  writeSync(1, JSON.stringify(out) + "\\n");
};
setTimeout(tick, ${TIMER_MS});
`;

interface LoopRun {
  /** The child's report: the calls' results (off only) and the idle time the metrics saw. */
  report: { first?: boolean; second?: boolean; idleMs: number };
  /** Main-thread sleeps after the marker that began with an empty epoll_pwait(timeout 0). */
  emptyPollsBeforeSleep: number;
  /** Main-thread epoll_pwait calls that slept (timeout other than 0) after the marker. */
  sleeps: number;
}

/** Runs the child under strace and reads its main thread's epoll_pwait calls after the marker. */
async function runChild(mode: "on" | "off"): Promise<LoopRun> {
  const run = await runTracedNode(child, [mode], join(scratch, `${mode}.strace`));
  expect(run.code, `strace node exited ${run.code}: ${run.stderr}`).toBe(0);
  const lines = run.stdout.trim().split("\n");
  expect(lines[0]).toBe("MARK");
  const report = JSON.parse(lines[1] as string) as LoopRun["report"];
  return { report, sleeps: run.waits.sleeps, emptyPollsBeforeSleep: run.waits.emptyPollsBeforeSleep };
}

describe("stopLoopIdleMetrics", () => {
  it("Node's loop as it comes: every sleep starts with an empty non-blocking epoll_pwait (the cost removed)", async () => {
    const run = await runChild("on");
    expect(run.sleeps).toBeGreaterThanOrEqual(SLEEPS);
    expect(run.emptyPollsBeforeSleep).toBeGreaterThanOrEqual(SLEEPS);
    // The metrics saw the child sleep about SLEEPS x TIMER_MS.
    expect(run.report.idleMs).toBeGreaterThan(SLEEPS * TIMER_MS * 0.75);
  });

  it("turned off: each sleep is one epoll_pwait, and the call says it changed something only the first time", async () => {
    const run = await runChild("off");
    expect(run.sleeps).toBeGreaterThanOrEqual(SLEEPS);
    expect(run.emptyPollsBeforeSleep).toBe(0);
    // What the flag feeds: the loop's idle time stops growing.
    expect(run.report.idleMs).toBe(0);
    expect(run.report.first).toBe(true);
    expect(run.report.second).toBe(false);
  });
});
