// How an event loop waits: a node child run under `strace -f`, and its threads' epoll waits read from the log.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { readFileSync } from "node:fs";

/** How a thread's event loop waited, from its epoll_pwait (libuv) or epoll_wait (inline loop) calls. */
export interface EpollWaits {
  /** Calls with a real timeout (other than 0): waits that may sleep. */
  sleeps: number;
  /** Calls with a real timeout right after an epoll_pwait(timeout 0) that found nothing: libuv's idle-time metrics. */
  emptyPollsBeforeSleep: number;
  /** The timeout of each wait that may sleep, in order (-1: none). */
  sleepTimeouts: number[];
}

/**
 * The `syscall` calls (libuv's epoll_pwait, or the fast paths' inline loop's epoll_wait) of thread `tid` in
 * `traceText` (strace -f prefixes each line with the thread id), counting only those after the first line of that
 * thread containing `after`, when given. A call another thread's line interrupted counts from its resumed half, which
 * has its timeout and result; one cut by the attach or the exit has no result and never counts as empty.
 */
export function epollWaits(
  traceText: string,
  tid: number | string,
  after?: string,
  syscall: "epoll_pwait" | "epoll_wait" = "epoll_pwait",
): EpollWaits {
  // The timeout is epoll_pwait's fourth argument of six and epoll_wait's last.
  const whole = new RegExp(`${syscall}\\(\\d+, .*?, \\d+, (-?\\d+)[,)]`);
  const resumed = new RegExp(`<\\.\\.\\. ${syscall} resumed>.*?, \\d+, (-?\\d+)[,)]`);
  const calls: { timeout: number; result: number | null }[] = [];
  let counting = after === undefined;
  for (const line of traceText.split("\n")) {
    if (!line.startsWith(`${tid} `)) continue;
    if (!counting) {
      counting = line.includes(after as string);
      continue;
    }
    // A whole call, or the second half of one another thread's line interrupted (strace prints the arguments after
    // the events array only when the call returns: "<... epoll_pwait resumed>[...], 1024, -1, NULL, 8) = 1").
    const call = whole.exec(line) ?? resumed.exec(line);
    if (call === null) continue;
    const done = /\) = (\d+)$/.exec(line);
    calls.push({ timeout: Number(call[1]), result: done !== null ? Number(done[1]) : null });
  }
  let sleeps = 0;
  let emptyPollsBeforeSleep = 0;
  const sleepTimeouts: number[] = [];
  for (let i = 0; i < calls.length; i++) {
    const c = calls[i] as (typeof calls)[number];
    if (c.timeout === 0) continue;
    sleeps++;
    sleepTimeouts.push(c.timeout);
    const before = calls[i - 1];
    if (before !== undefined && before.timeout === 0 && before.result === 0) emptyPollsBeforeSleep++;
  }
  return { sleeps, emptyPollsBeforeSleep, sleepTimeouts };
}

/** What a traced node child did: its exit status, output, and its main thread's waits after its marker line. */
export interface TracedNodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
  waits: EpollWaits;
}

/**
 * Runs `node -e script ...args` under `strace -f` (epoll_pwait and write only, log at `tracePath`) and reads its main
 * thread's waits after it wrote the line "MARK" to stdout. `onStdout` sees the output so far, with the child (to
 * answer it on stdin).
 */
export async function runTracedNode(
  script: string,
  args: readonly string[],
  tracePath: string,
  onStdout?: (stdout: string, child: ChildProcessWithoutNullStreams) => void,
): Promise<TracedNodeRun> {
  const proc = spawn("strace", [
    "-f",
    "-qq",
    "-e",
    "trace=epoll_pwait,write",
    "-o",
    tracePath,
    process.execPath,
    "-e",
    script,
    ...args,
  ]);
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    onStdout?.(stdout, proc);
  });
  proc.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.on("close", resolve));
  // strace -f prefixes every line with the thread id; the first line's is the main thread (it ran execve).
  const traceText = readFileSync(tracePath, "utf8");
  const mainTid = traceText.slice(0, traceText.indexOf(" "));
  return { code, stdout, stderr, waits: epollWaits(traceText, mainTid, 'write(1, "MARK\\n"') };
}
