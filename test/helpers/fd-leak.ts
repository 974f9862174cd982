// The fd-leak assertion every test uses: /proc/self/fd (and live mappings) before and after each test.
import { readdirSync, readlinkSync } from "node:fs";
import { afterEach, beforeEach, expect } from "vitest";

/** The open fds of this process, as "fd -> target" strings (the target helps a failing test say what leaked). */
export function openFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    try {
      out.set(fd, readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // The fd readdir itself used is gone by now.
    }
  }
  return out;
}

/** Fds opened since `before` that are still open, excluding Node's own lazily created handles. */
export function leakedFds(before: Map<number, string>): string[] {
  const leaked: string[] = [];
  for (const [fd, target] of openFds()) {
    if (before.has(fd) && before.get(fd) === target) continue;
    // libuv and V8 open these lazily on first use (epoll/eventfd/signalfd/inotify are the loop's own); not ours.
    if (
      /^anon_inode:\[(eventpoll|eventfd|signalfd|timerfd|io_uring)\]$/.test(target) ||
      target.startsWith("anon_inode:inotify")
    )
      continue;
    leaked.push(`${fd} -> ${target}`);
  }
  return leaked;
}

/**
 * Registers beforeEach/afterEach hooks that fail the test if it leaves an fd open. Call once at the top of a test
 * file. Async work a test started must be finished (awaited) by the time the test ends.
 */
export function useFdLeakCheck(): void {
  let before = new Map<number, string>();
  let mappingsBefore = 0;
  beforeEach(async () => {
    before = openFds();
    mappingsBefore = (await liveMappings()) ?? 0;
  });
  afterEach(async () => {
    // Let close callbacks that libuv queued for this tick run first.
    await new Promise((r) => setImmediate(r));
    expect(leakedFds(before), "fds leaked by this test").toEqual([]);
    const mappings = await liveMappings();
    if (mappings !== undefined) {
      expect(mappings - mappingsBefore, "mmap'd buffers this test did not unmap").toBe(0);
    }
  });
}

/**
 * The addon's count of live mappings, or undefined when the addon cannot load (then tests that need it fail on
 * their own with the addon's actionable message, and pure tests still run).
 */
async function liveMappings(): Promise<number | undefined> {
  try {
    const { native } = await import("../../src/native.ts");
    return native.liveMappings();
  } catch {
    return undefined;
  }
}
