// Time-boxed coverage-guided fuzzing (test/fuzz/pipewire-fuzzer.ts, pipewire-session-fuzzer.ts and
// pipewire-guest-fuzzer.ts), each in a child process with a capped heap so a hang or an unbounded allocation fails
// the test instead of the runner.
import { expect, it } from "vitest";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { run } from "../helpers/processes.ts";

useFdLeakCheck();

const SECONDS = Number(process.env.CROSSWAY_FUZZ_SECONDS ?? "20");

it(`fuzzes framing and the POD validator for ${SECONDS} s without a crash, hang or unbounded allocation`, async () => {
  const r = await run(
    process.execPath,
    [
      "--max-old-space-size=512",
      "--import",
      "tsx",
      "test/fuzz/pipewire-fuzzer.ts",
      "--seconds",
      String(SECONDS),
    ],
    { timeoutMs: (SECONDS + 40) * 1000 },
  );
  const out = r.stdout.toString().trim();
  expect(r.timedOut, "fuzzer hung").toBe(false);
  expect(r.code, `${out}\n${r.stderr.toString().slice(0, 2000)}`).toBe(0);
  const stats = JSON.parse(out.split("\n").pop() ?? "{}") as {
    execs: number;
    blocks: number;
    seedBlocks: number;
    seed: number;
  };
  console.log(`pipewire fuzz: ${out}`);
  expect(stats.execs).toBeGreaterThan(SECONDS * 100);
  // Guidance works: mutated inputs reached blocks the real-traffic seeds did not.
  expect(stats.blocks).toBeGreaterThan(stats.seedBlocks);
}, 120_000);

for (const [what, script] of [
  ["the filter's session logic", "test/fuzz/pipewire-session-fuzzer.ts"],
  [
    "crossway guest's PipeWire socket, through the device and the filter,",
    "test/fuzz/pipewire-guest-fuzzer.ts",
  ],
] as const) {
  it(`fuzzes ${what} against a real daemon for ${SECONDS} s without unexpected errors or fd leaks`, async () => {
    const r = await run(
      process.execPath,
      ["--max-old-space-size=512", "--import", "tsx", script, "--seconds", String(SECONDS)],
      { timeoutMs: (SECONDS + 60) * 1000 },
    );
    const out = r.stdout.toString().trim();
    const err = r.stderr.toString();
    expect(r.timedOut, `${script} hung\n${err.slice(0, 300)}\n…\n${err.slice(-2000)}`).toBe(false);
    expect(r.code, `${out}\n${err.slice(0, 2000)}`).toBe(0);
    const stats = JSON.parse(out.split("\n").pop() ?? "{}") as {
      execs: number;
      blocks: number;
      seedBlocks: number;
    };
    console.log(`${script}: ${out}`);
    expect(stats.execs).toBeGreaterThan(SECONDS * 10);
    expect(stats.blocks).toBeGreaterThan(stats.seedBlocks);
  }, 150_000);
}
