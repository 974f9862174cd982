// LoopDeadline / native DeadlineTimer: one-shot expiry as setTimeout's, and a loop that sleeps without a timeout.
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { LoopDeadline } from "../../../src/crossdomain/loop-deadline.ts";
import { native } from "../../../src/native.ts";
import { runTracedNode } from "../../helpers/epoll-waits.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-deadline-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** This process's timerfds: the fd-leak check leaves them out (libuv may open one), so these tests count them. */
function timerFds(): number {
  let n = 0;
  for (const name of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === "anon_inode:[timerfd]") n++;
    } catch {
      // the fd readdir used
    }
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Into the loop's next turn: libuv runs close callbacks after the check phase where an immediate runs. */
const turn = () => new Promise((r) => setImmediate(() => setImmediate(r)));

describe("LoopDeadline", () => {
  it("expires once, no earlier than asked, on a timerfd it gives back on close", async () => {
    const base = timerFds();
    const fired: number[] = [];
    const t0 = performance.now();
    const d = new LoopDeadline(() => fired.push(performance.now() - t0));
    expect(timerFds()).toBe(base); // made on the first start, not before
    d.start(20);
    expect(d.armed).toBe(true);
    expect(timerFds()).toBe(base + 1);
    await sleep(150);
    expect(fired.length).toBe(1);
    expect(fired[0]).toBeGreaterThanOrEqual(19.9);
    expect(d.armed).toBe(false);
    d.close();
    await turn();
    expect(timerFds()).toBe(base);
  });

  it("a second start replaces the deadline, and it can be started again after it ran", async () => {
    const fired: number[] = [];
    const t0 = performance.now();
    const d = new LoopDeadline(() => fired.push(performance.now() - t0));
    d.start(500);
    d.start(2.5);
    await sleep(100);
    expect(fired.length).toBe(1);
    expect(fired[0]).toBeGreaterThanOrEqual(2.4);
    expect(fired[0]).toBeLessThan(500);
    // Re-armed from its own callback's aftermath: it runs again.
    d.start(0);
    await sleep(20);
    expect(fired.length).toBe(2);
    d.close();
    await turn();
  });

  it("prepare() holds the fd from then on, once; close() gives it back", async () => {
    const base = timerFds();
    const d = new LoopDeadline(() => {});
    d.prepare();
    d.prepare();
    expect(timerFds()).toBe(base + 1);
    expect(d.armed).toBe(false);
    d.start(1000);
    expect(timerFds()).toBe(base + 1);
    d.close();
    d.prepare();
    await turn();
    expect(timerFds()).toBe(base);
  });

  it("closed before it expires: never runs, and start() after close makes nothing", async () => {
    const base = timerFds();
    let fired = 0;
    const d = new LoopDeadline(() => fired++);
    d.start(10);
    d.close();
    d.start(10);
    expect(d.armed).toBe(false);
    await sleep(60);
    expect(fired).toBe(0);
    expect(timerFds()).toBe(base);
  });

  it("the native timer: start() after close() throws, close() is idempotent, and it must have a callback", async () => {
    let fired = 0;
    const t = new native.DeadlineTimer(() => fired++);
    expect(t.usesTimerFd()).toBe(true);
    t.start(5);
    t.close();
    await sleep(40);
    expect(fired).toBe(0);
    t.close();
    t.close();
    expect(() => t.start(1)).toThrow(/closed/);
    expect(() => new native.DeadlineTimer(undefined as unknown as () => void)).toThrow(TypeError);
    await turn();
  });
});

const addonPath = fileURLToPath(
  new URL("../../../native/build/Release/crossway_native.node", import.meta.url),
);

/** Lines the parent feeds the child, one per wake-up of its loop. */
const LINES = 6;

// The child: arms a 30 s timer, a native DeadlineTimer or setTimeout, writes a marker strace can see, then wakes on
// each line on stdin (its loop sleeps in between with the timer pending) and exits after the last.
const child = `
const addon = require(${JSON.stringify(addonPath)});
const { writeSync } = require("node:fs");
const mode = process.argv[1];
const timer = mode === "deadline" ? new addon.DeadlineTimer(() => writeSync(1, "FIRED\\n")) : null;
if (timer) timer.start(30000); else setTimeout(() => writeSync(1, "FIRED\\n"), 30000).unref();
writeSync(1, "MARK\\n");
let n = 0;
process.stdin.on("data", (d) => {
  n += d.toString().split("\\n").length - 1;
  writeSync(1, "GOT " + n + "\\n");
  if (n >= ${LINES}) { if (timer) timer.close(); process.stdin.destroy(); }
});
`;

/** The child's main-thread sleeps after its marker, with the timer pending: their epoll_pwait timeouts. */
async function childSleeps(mode: "deadline" | "timeout"): Promise<number[]> {
  let fed = 0;
  // Readiness is the child's answer: the marker, then each GOT line, before the next line is written.
  const run = await runTracedNode(child, [mode], join(scratch, `${mode}.strace`), (stdout, proc) => {
    const answered = (stdout.match(/^(MARK|GOT \d+)$/gm) ?? []).length;
    if (answered > fed && fed < LINES) {
      fed++;
      setTimeout(() => proc.stdin.write("line\n"), 20);
    }
  });
  expect(run.code, `strace node exited ${run.code}: ${run.stderr}`).toBe(0);
  expect(run.stdout).toContain(`GOT ${LINES}`);
  expect(run.stdout).not.toContain("FIRED");
  return run.waits.sleepTimeouts;
}

/**
 * Sleeps to see at least: one per line, less the first, which can find its line already there on a loaded machine
 * (the child is still starting when the parent writes it) and then polls with timeout 0.
 */
const MIN_SLEEPS = LINES - 1;

describe("a pending DeadlineTimer and the loop's sleeps (strace)", () => {
  it("with setTimeout pending, every sleep carries a timeout (what the timer removes)", async () => {
    const timeouts = await childSleeps("timeout");
    expect(timeouts.length).toBeGreaterThanOrEqual(MIN_SLEEPS);
    expect(timeouts.filter((t) => t > 0).length).toBeGreaterThanOrEqual(MIN_SLEEPS);
  });

  it("with a DeadlineTimer pending instead, the loop sleeps without one", async () => {
    const timeouts = await childSleeps("deadline");
    expect(timeouts.length).toBeGreaterThanOrEqual(MIN_SLEEPS);
    expect(timeouts.filter((t) => t !== -1)).toEqual([]);
  });
});
