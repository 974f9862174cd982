// Starts one long-running crossway command (device, pipewire-filter, ...) and waits for its "listening on" line.
import { closeSync, openSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { spawnTracked, type TrackedProcess, waitFor } from "./processes.ts";

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

/** A running crossway command: its stdout (ready line, reload outcomes) and its stderr log file. */
export interface CrosswayCommand {
  readonly proc: TrackedProcess;
  stdout(): string;
  /** stderr so far (pino JSON lines and one-line messages such as reload refusals). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Runs `crossway ARGS` with stderr appended to `logPath` (a file never blocks the child), and resolves once its
 * stdout says "listening on" (the commands print it after their sockets accept). Named, generous timeout.
 */
export async function startCrosswayCommand(
  args: readonly string[],
  logPath: string,
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CrosswayCommand> {
  const logFd = openSync(logPath, "a");
  let proc: TrackedProcess;
  try {
    proc = spawnTracked(`crossway ${args[0]}`, process.execPath, [BIN, ...args], {
      pipeStdout: true,
      logFd,
      ...(opts.env !== undefined ? { env: opts.env } : {}),
    });
  } finally {
    closeSync(logFd);
  }
  let out = "";
  proc.child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const log = (): string => readFileSync(logPath, "utf8");
  try {
    await waitFor(
      `crossway ${args[0]}'s ready line`,
      () => (out.includes("listening on") ? true : undefined),
      {
        timeoutMs: opts.timeoutMs ?? 30_000,
        abort: () => (proc.running ? undefined : `crossway ${args[0]} exited: ${log().slice(-2000)}`),
      },
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { proc, stdout: () => out, log, stop: () => proc.stop() };
}
