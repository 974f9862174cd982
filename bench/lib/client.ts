// Runs one benchmark client through its stdin/stdout handshake, sampling the proxies' CPU around the measured phase.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { CrosswayError } from "../../src/errors.ts";
import { type Env, pinnedCommand } from "./processes.ts";
import { type CpuSample, cpuDeltaNs, sampleCpu } from "./procfs.ts";

/** Options of {@link runClient}. */
export interface RunClientOptions {
  env: Env;
  pinned: boolean;
  /** Root pids of the proxy processes whose CPU time is charged to this run (empty for the direct path). */
  proxyPids: readonly number[];
  /** The subset of proxyPids that runs on the guest side, charged separately too (empty: none). */
  guestSidePids?: readonly number[];
  timeoutMs: number;
}

/** What one client run measured. */
export interface ClientRun {
  /** The client's own JSON result line. */
  result: Record<string, unknown>;
  /** Proxy CPU time during the measured phase, in ns (0 without proxies). */
  proxyCpuNs: number;
  /** The guest side's share of proxyCpuNs (null when the path has no guest side). */
  guestCpuNs: number | null;
  /** Whether proxyCpuNs is exact (per-thread schedstat) or from 10 ms clock ticks. */
  proxyCpuExact: boolean;
  /** Wall time of the whole client process, set-up included, in ms. */
  wallMs: number;
}

/**
 * Spawns `bin args`, waits for "ready", samples the proxies, lets the client measure, samples again on its
 * "result" line, then lets it disconnect. See bench/clients/common.h for the protocol.
 */
export function runClient(bin: string, args: readonly string[], opts: RunClientOptions): Promise<ClientRun> {
  const [file, argv] = pinnedCommand(opts.pinned, bin, args);
  const started = performance.now();
  const child = spawn(file, argv, { env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
  const stderr: string[] = [];
  child.stderr.setEncoding("utf8").on("data", (s: string) => stderr.push(s));
  let before: CpuSample | undefined;
  let guestBefore: CpuSample | undefined;
  const guestPids = opts.guestSidePids ?? [];
  let guestCpu: number | null = null;
  let result: Record<string, unknown> | undefined;
  let cpu = { ns: 0, exact: true };
  let protocolError: string | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on("line", (line) => {
    if (line === "ready" && before === undefined) {
      before = sampleCpu(opts.proxyPids);
      if (guestPids.length > 0) guestBefore = sampleCpu(guestPids);
      child.stdin.write("\n");
    } else if (line.startsWith("result ") && before !== undefined && result === undefined) {
      const after = sampleCpu(opts.proxyPids);
      if (guestBefore !== undefined) guestCpu = cpuDeltaNs(guestBefore, sampleCpu(guestPids)).ns;
      cpu = opts.proxyPids.length > 0 ? cpuDeltaNs(before, after) : { ns: 0, exact: true };
      try {
        result = JSON.parse(line.slice(7)) as Record<string, unknown>;
      } catch {
        protocolError = `unparsable result line: ${line}`;
      }
      child.stdin.end("\n");
    } else {
      protocolError ??= `unexpected output: ${line}`;
    }
  });
  // A client that exits early closes its stdin: the resulting EPIPE is reported through the exit status instead.
  child.stdin.on("error", () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      protocolError ??= `timed out after ${opts.timeoutMs} ms`;
    }, opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new CrosswayError("CW_BENCH_FAILED", `cannot run ${bin}: ${err.message}`, {}, { cause: err }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const name = bin.split("/").pop() ?? bin;
      if (protocolError !== undefined || code !== 0 || result === undefined) {
        const why = protocolError ?? (signal !== null ? `killed by ${signal}` : `exit status ${code}`);
        const err = stderr.join("").trim().split("\n").slice(-5).join(" | ");
        reject(
          new CrosswayError("CW_BENCH_FAILED", `${name} ${args.join(" ")}: ${why}${err ? `: ${err}` : ""}`),
        );
        return;
      }
      resolve({
        result,
        proxyCpuNs: cpu.ns,
        guestCpuNs: guestCpu,
        proxyCpuExact: cpu.exact,
        wallMs: performance.now() - started,
      });
    });
  });
}

/** An idle client kept connected for the memory measurement; `stop()` makes it disconnect and exit. */
export interface IdleClient {
  stop(): Promise<void>;
}

/** Starts the idle client and resolves once it has connected and printed "ready". */
export function startIdleClient(
  bin: string,
  env: Env,
  pinned: boolean,
  timeoutMs = 10_000,
): Promise<IdleClient> {
  const [file, argv] = pinnedCommand(pinned, bin, []);
  const child = spawn(file, argv, { env, stdio: ["pipe", "pipe", "pipe"] });
  const stderr: string[] = [];
  child.stderr.setEncoding("utf8").on("data", (s: string) => stderr.push(s));
  child.stdin.on("error", () => {});
  const closed = new Promise<void>((r) => child.on("close", () => r()));
  const stop = async (): Promise<void> => {
    child.stdin.end("\n");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await closed;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new CrosswayError("CW_BENCH_FAILED", `idle client not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line === "ready") {
        clearTimeout(timer);
        resolve({ stop });
      }
    });
    void closed.then(() => {
      clearTimeout(timer);
      reject(new CrosswayError("CW_BENCH_FAILED", `idle client exited: ${stderr.join("").trim()}`));
    });
  });
}
