// Syscalls per round trip of every proxy path, counted by `strace -c -f` on the proxies during the measured phase.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CrosswayError } from "../src/errors.ts";
import { buildClients } from "./lib/build.ts";
import { startCompositor } from "./lib/compositor.ts";
import { gitState, machineInfo, peerVersions } from "./lib/machine.ts";
import { requireCommand, useReaper } from "./lib/processes.ts";
import { processTree } from "./lib/procfs.ts";
import { crosswayPath } from "./paths/crossway.ts";
import { relayPath } from "./paths/relay.ts";
import type { BenchPath, PathContext } from "./paths/types.ts";
import { waypipePath } from "./paths/waypipe.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PATHS: readonly BenchPath[] = [relayPath, waypipePath, crosswayPath];

/** One row of strace's -c table. */
interface SyscallCount {
  readonly name: string;
  readonly calls: number;
  readonly errors: number;
}

/** What one path cost per round trip: syscalls by name, summed over the proxy processes and their threads. */
interface PathSyscalls {
  readonly path: string;
  readonly roundTrips: number;
  readonly perRoundTrip: number;
  readonly byName: ReadonlyArray<SyscallCount & { readonly perRoundTrip: number }>;
}

/**
 * strace -c's summary table: "% time seconds usecs/call calls [errors] syscall" rows between the dashed rules.
 * The errors column is blank when a syscall never failed, so rows have 5 or 6 fields.
 */
export function parseStraceSummary(text: string): SyscallCount[] {
  const out: SyscallCount[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d+(\.\d+)?$/.test(f[0] as string) || f[f.length - 1] === "total") continue;
    const calls = Number(f[3]);
    const errors = f.length >= 6 ? Number(f[4]) : 0;
    const name = f[f.length - 1] as string;
    if (!Number.isInteger(calls) || !Number.isInteger(errors)) continue;
    out.push({ name, calls, errors });
  }
  return out;
}

/**
 * Runs the roundtrip client through `path` with strace attached to every proxy process (threads followed) from
 * the client's "ready" line to its "result" line, so set-up and warm-up are not counted.
 */
async function countPath(
  path: BenchPath,
  ctx: PathContext,
  roundtrip: string,
  iters: number,
): Promise<PathSyscalls> {
  const running = await path.start(ctx);
  const out = join(ctx.workDir, `${path.id}.strace`);
  try {
    const env = { ...ctx.env, WAYLAND_DISPLAY: running.display };
    const client = spawn(roundtrip, [String(iters), "1000", "600000"], {
      env,
      stdio: ["pipe", "pipe", "inherit"],
    });
    const lines = createInterface({ input: client.stdout });
    const next = (): Promise<string> =>
      new Promise((res, rej) => {
        lines.once("line", res);
        client.once("exit", (code) =>
          rej(new CrosswayError("CW_BENCH_FAILED", `roundtrip exited (${code})`)),
        );
      });
    const ready = await next();
    if (ready !== "ready") throw new CrosswayError("CW_BENCH_FAILED", `roundtrip said ${ready}, not ready`);
    const pids = processTree(running.proxyPids);
    const strace = spawn("strace", ["-c", "-f", "-o", out, ...pids.flatMap((p) => ["-p", String(p)])], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    // Readiness: strace prints "Process N attached" for every pid it holds; count them (threads add more lines).
    await new Promise<void>((res, rej) => {
      let seen = 0;
      let err = "";
      strace.stderr.setEncoding("utf8").on("data", (d: string) => {
        err += d;
        seen += (d.match(/attached/g) ?? []).length;
        if (seen >= pids.length) res();
      });
      strace.once("exit", (code) =>
        rej(new CrosswayError("CW_BENCH_FAILED", `strace exited (${code}): ${err}`)),
      );
    });
    client.stdin.write("\n");
    const result = await next();
    if (!result.startsWith("result ")) throw new CrosswayError("CW_BENCH_FAILED", `roundtrip said ${result}`);
    const stopped = new Promise((res) => strace.once("exit", res));
    strace.kill("SIGINT");
    await stopped;
    client.stdin.end("\n");
    await new Promise((res) => client.once("exit", res));
    const roundTrips = (JSON.parse(result.slice(7)) as { messages: number }).messages / 3;
    const counts = parseStraceSummary(readFileSync(out, "utf8"));
    const total = counts.reduce((s, c) => s + c.calls, 0);
    return {
      path: path.label,
      roundTrips,
      perRoundTrip: total / roundTrips,
      byName: counts
        .map((c) => ({ ...c, perRoundTrip: c.calls / roundTrips }))
        .filter((c) => c.perRoundTrip >= 0.01)
        .sort((a, b) => b.calls - a.calls),
    };
  } finally {
    await running.stop();
  }
}

/** The markdown the README quotes: totals per path, then the syscalls that make them up. */
function render(rows: readonly PathSyscalls[], meta: Record<string, unknown>): string {
  const lines = [
    "## Syscalls per round trip (strace -c -f on the proxy processes)",
    "",
    `Run ${meta.date}, commit ${meta.commit}, ${meta.roundTrips} round trips per path (wl_display.sync → done +`,
    "delete_id), weston headless, unpinned. strace slows every process it traces, so only the counts mean anything.",
    "",
    "| path | syscalls per round trip | largest (per round trip) |",
    "|---|--:|---|",
  ];
  for (const r of rows) {
    const top = r.byName
      .slice(0, 6)
      .map(
        (c) =>
          `${c.name} ${c.perRoundTrip.toFixed(2)}${c.errors > 0 ? ` (${(c.errors / r.roundTrips).toFixed(2)} failed)` : ""}`,
      )
      .join(", ");
    lines.push(`| ${r.path} | **${r.perRoundTrip.toFixed(2)}** | ${top} |`);
  }
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iters: { type: "string", default: "5000" },
      out: { type: "string", default: join(REPO_ROOT, "bench/results") },
      paths: { type: "string" },
    },
  });
  requireCommand("strace", "strace");
  const iters = Number(values.iters);
  const bins = await buildClients(
    join(REPO_ROOT, "bench/clients"),
    join(REPO_ROOT, "node_modules/.cache/crossway-bench"),
  );
  useReaper(bins.reap);
  const wanted = values.paths?.split(",");
  const compositor = await startCompositor(false);
  const workRoot = mkdtempSync(join(tmpdir(), "cw-syscalls-"));
  const rows: PathSyscalls[] = [];
  try {
    for (const path of PATHS) {
      if (wanted !== undefined && !wanted.includes(path.id)) continue;
      const why = await path.available({ repoRoot: REPO_ROOT });
      if (why !== undefined) {
        process.stderr.write(`syscalls: ${path.label}: not available: ${why}\n`);
        continue;
      }
      const workDir = join(workRoot, path.id);
      mkdirSync(workDir);
      const ctx: PathContext = {
        compositorSocket: compositor.socketPath,
        env: compositor.env,
        workDir,
        pinned: false,
        repoRoot: REPO_ROOT,
        bins,
      };
      const row = await countPath(path, ctx, bins.roundtrip, iters);
      process.stderr.write(`syscalls: ${path.label}: ${row.perRoundTrip.toFixed(2)} per round trip\n`);
      rows.push(row);
    }
  } finally {
    await compositor.stop();
    rmSync(workRoot, { recursive: true, force: true });
  }
  const git = gitState(REPO_ROOT);
  const meta = {
    date: new Date().toISOString(),
    commit: `${git.commit.slice(0, 12)}${git.dirty ? " (dirty)" : ""}`,
    roundTrips: iters,
    machine: machineInfo(),
    versions: peerVersions(),
  };
  mkdirSync(values.out as string, { recursive: true });
  writeFileSync(join(values.out as string, "syscalls.json"), `${JSON.stringify({ meta, rows }, null, 2)}\n`);
  const md = render(rows, meta);
  writeFileSync(join(values.out as string, "syscalls.md"), md);
  process.stdout.write(md);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`syscalls: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
