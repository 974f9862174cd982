// Time-boxed coverage-guided fuzzing of the host-side Wayland filter with real sway behind it
// (test/fuzz/wayland-filter-fuzzer.ts), in a child process with a capped heap; `npm run fuzz:wayland` runs longer.
import { expect, it } from "vitest";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { run } from "../helpers/processes.ts";

useFdLeakCheck();

const SECONDS = Number(process.env.CROSSWAY_WAYLAND_FUZZ_SECONDS ?? "60");

it(`fuzzes the Wayland filter guest → host against sway for ${SECONDS} s: no crash, no disconnect of the other client`, async () => {
  const r = await run(
    process.execPath,
    [
      "--max-old-space-size=512",
      "--import",
      "tsx",
      "test/fuzz/wayland-filter-fuzzer.ts",
      "--seconds",
      String(SECONDS),
    ],
    { timeoutMs: (SECONDS + 90) * 1000 },
  );
  const out = r.stdout.toString().trim();
  expect(r.timedOut, "wayland filter fuzzer hung").toBe(false);
  expect(r.code, `${out}\n${r.stderr.toString().slice(-3000)}`).toBe(0);
  const stats = JSON.parse(out.split("\n").pop() ?? "{}") as {
    execs: number;
    blocks: number;
    seedBlocks: number;
  };
  console.log(`wayland filter fuzz: ${out}`);
  // Each case is a fresh connection through the filter to sway and a round trip: a few per second on a loaded
  // 2-core machine (256 in 60 s at load average 13). This floor only catches a fuzzer that stopped running cases.
  expect(stats.execs).toBeGreaterThan(SECONDS);
  // Guidance works: mutated inputs reached blocks the generated seeds did not.
  expect(stats.blocks).toBeGreaterThan(stats.seedBlocks);
}, 240_000);
