// `perf record` of running proxy processes for a stretch of a benchmark, summarized as markdown: where their CPU
// goes by object (kernel, node, libc, JIT code, the addon) and by symbol. Unlike node --cpu-prof it sees the native
// fast path and the kernel, which is where a round trip's time is spent.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, constants, mkdirSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CrosswayError } from "../../src/errors.ts";
import { findCommand } from "./processes.ts";

/** Sampling frequency: enough samples over a few seconds, little enough not to slow a round trip much. */
const FREQUENCY_HZ = 1999;

/** Why `perf record` cannot run here, or undefined when it can. */
export function perfUnavailable(): string | undefined {
  if (findCommand("perf") === undefined) return "perf is not installed (Debian: linux-perf)";
  try {
    execFileSync("perf", ["--version"], { stdio: "ignore" });
  } catch (err) {
    return `perf does not run: ${(err as Error).message}`;
  }
  return undefined;
}

/** A `perf record` attached to some processes, sampling only between enable() and disable(). */
export class PerfRecording {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly ctl: number,
    private readonly ack: number,
    readonly dataFile: string,
    private readonly exited: Promise<number | null>,
    /** The end of perf's stderr, for errors. */
    private readonly stderrTail: () => string,
  ) {}

  /**
   * Attaches to `pids` with events off (-D -1); enable() and disable() go through perf's control fifo, each
   * acknowledged by perf, so the sampled stretch is exactly the caller's.
   */
  static start(pids: readonly number[], dir: string): PerfRecording {
    mkdirSync(dir, { recursive: true });
    const ctlPath = join(dir, "perf-ctl.fifo");
    const ackPath = join(dir, "perf-ack.fifo");
    for (const f of [ctlPath, ackPath]) {
      rmSync(f, { force: true });
      execFileSync("mkfifo", [f]);
    }
    const dataFile = join(dir, "perf.data");
    const proc = spawn(
      "perf",
      [
        "record",
        "-F",
        String(FREQUENCY_HZ),
        "-g",
        "-D",
        "-1",
        "--control",
        `fifo:${ctlPath},${ackPath}`,
        "-o",
        dataFile,
        "-p",
        pids.join(","),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-2000);
    });
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    // Read-write opens of a fifo do not wait for the other end (perf opens its ends when it starts); the ack end
    // is non-blocking so that waiting for perf's answer never blocks the event loop.
    const ctl = openSync(ctlPath, constants.O_RDWR);
    const ack = openSync(ackPath, constants.O_RDWR | constants.O_NONBLOCK);
    return new PerfRecording(proc, ctl, ack, dataFile, exited, () => stderr.trim());
  }

  /** Sends a control command and waits for perf's "ack". */
  private async command(cmd: "enable" | "disable"): Promise<void> {
    writeSync(this.ctl, `${cmd}\n`);
    const deadline = Date.now() + 10_000;
    const buf = Buffer.alloc(16);
    let got = "";
    while (!got.includes("ack")) {
      if (this.proc.exitCode !== null)
        throw new CrosswayError("CW_BENCH_FAILED", `perf record exited: ${this.stderrTail()}`);
      if (Date.now() > deadline)
        throw new CrosswayError("CW_BENCH_FAILED", `perf did not acknowledge "${cmd}": ${this.stderrTail()}`);
      const n = await readAvailable(this.ack, buf);
      got += buf.subarray(0, n).toString("latin1");
    }
  }

  enable(): Promise<void> {
    return this.command("enable");
  }

  disable(): Promise<void> {
    return this.command("disable");
  }

  private stopped = false;

  /** Stops perf (SIGINT, so it writes its data out) and waits for it. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.proc.exitCode === null) this.proc.kill("SIGINT");
    await this.exited;
    closeSync(this.ctl);
    closeSync(this.ack);
  }
}

/** One read of what the (non-blocking) fifo has; when empty, 0 after a short wait (perf answers within ms). */
async function readAvailable(fd: number, buf: Buffer): Promise<number> {
  try {
    return readSync(fd, buf, 0, buf.length, null);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
    await new Promise((r) => setTimeout(r, 5));
    return 0;
  }
}

/**
 * The recording as markdown: CPU by process role and object (`--sort pid,dso`), then the top symbols
 * (`--sort sym`), with each pid named by its role.
 */
export function perfSummary(dataFile: string, roles: ReadonlyMap<number, string>, top = 25): string {
  const report = (sort: string): string =>
    execFileSync(
      "perf",
      ["report", "-i", dataFile, "--no-children", "--sort", sort, "-g", "none", "--stdio", "-q"],
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "ignore"] },
    );
  // perf prints a process as "pid:comm".
  const named = (text: string): string =>
    text.replace(/\b(\d+):(\S+)/g, (all, pid: string) => {
      const role = roles.get(Number(pid));
      return role === undefined ? all : `${role} (${pid})`;
    });
  const lines = (text: string, n: number): string[] =>
    text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .slice(0, n)
      .map((l) => l.trimEnd());
  const byDso = report("pid,dso");
  // The kernel's share against everything in user space (node, its JIT code, the addon, libc, vdso).
  let kernel = 0;
  let user = 0;
  for (const line of byDso.split("\n")) {
    const m = /^\s*([\d.]+)%\s+\S+\s+(.*\S)\s*$/.exec(line);
    if (m === null) continue;
    if (m[2] === "[kernel.kallsyms]") kernel += Number(m[1]);
    else user += Number(m[1]);
  }
  return [
    `Of all samples, ${kernel.toFixed(1)}% are in the kernel and ${user.toFixed(1)}% in user space (node, its JIT code, the addon, libc).`,
    "",
    "By process and object (`perf report --no-children --sort pid,dso`):",
    "",
    "```",
    ...lines(named(byDso), 16),
    "```",
    "",
    "Top symbols (`--sort sym`; [k] kernel, [.] user space; JIT-compiled JavaScript shows as addresses in `[JIT]`):",
    "",
    "```",
    ...lines(report("sym"), top),
    "```",
  ].join("\n");
}
