// Fd counts of another process (a guest, a device, QEMU), read from /proc, for leak checks across a test.
import { readdirSync } from "node:fs";
import { sleep } from "./processes.ts";

/** Open fds of `pid`, as its /proc directory lists them. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What `read` returns once it holds still: the same in `readings` readings `intervalMs` apart. */
export async function countHoldingStill(
  read: () => number,
  readings: number,
  intervalMs: number,
): Promise<number> {
  let n = read();
  for (let same = 1; same < readings; ) {
    await sleep(intervalMs);
    const m = read();
    same = m === n ? same + 1 : 1;
    n = m;
  }
  return n;
}

/**
 * The fd count once it holds still: the same in three readings 50 ms apart. For a baseline taken right after the
 * process answered a control request: it answers before it closes its side of that connection.
 */
export function stableFdCount(pid: number): Promise<number> {
  return countHoldingStill(() => fdCount(pid), 3, 50);
}
