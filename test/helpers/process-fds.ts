// Fd counts of another process (a guest, a device), read from /proc, for leak checks across a test.
import { readdirSync } from "node:fs";
import { sleep } from "./processes.ts";

/** Open fds of `pid`, as its /proc directory lists them. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * The count once it holds still: the same in three readings 50 ms apart. For a baseline taken right after the process
 * answered a control request: it answers before it closes its side of that connection.
 */
export async function stableFdCount(pid: number): Promise<number> {
  let n = fdCount(pid);
  for (let same = 0; same < 2; ) {
    await sleep(50);
    const m = fdCount(pid);
    same = m === n ? same + 1 : 0;
    n = m;
  }
  return n;
}
