// Time-boxed coverage-guided fuzzing of the Wayland path's three parsers of untrusted input, with real sway behind
// them, each in a child process with a capped heap: the host-side filter (test/fuzz/wayland-filter-fuzzer.ts), the
// guest's server (test/fuzz/guest-fuzzer.ts, with the emulated device) and the device's frames and cross-domain
// commands (test/fuzz/device-fuzzer.ts). `npm run fuzz:wayland`, `fuzz:guest` and `fuzz:device` run longer.
import { expect, it } from "vitest";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { run } from "../helpers/processes.ts";

useFdLeakCheck();

const SECONDS = Number(process.env.CROSSWAY_WAYLAND_FUZZ_SECONDS ?? "45");

for (const [what, script] of [
  ["the Wayland filter guest → host", "test/fuzz/wayland-filter-fuzzer.ts"],
  ["crossway guest client → guest", "test/fuzz/guest-fuzzer.ts"],
  ["crossway device guest kernel → VMM", "test/fuzz/device-fuzzer.ts"],
] as const) {
  it(`fuzzes ${what} against sway for ${SECONDS} s: no crash, hang or leak, no disconnect of the other client`, async () => {
    const r = await run(
      process.execPath,
      ["--max-old-space-size=512", "--import", "tsx", script, "--seconds", String(SECONDS)],
      { timeoutMs: (SECONDS + 90) * 1000 },
    );
    const out = r.stdout.toString().trim();
    // The fuzzer says its seed on stderr first: a hang (an endless loop in the proxy under test) is replayable.
    const err = r.stderr.toString();
    expect(r.timedOut, `${script} hung\n${err.slice(0, 300)}\n…\n${err.slice(-2000)}`).toBe(false);
    expect(r.code, `${out}\n${err.slice(-3000)}`).toBe(0);
    const stats = JSON.parse(out.split("\n").pop() ?? "{}") as {
      execs: number;
      blocks: number;
      seedBlocks: number;
    };
    console.log(`${script}: ${out}`);
    // Each case is a fresh connection through the proxy to sway and a round trip: a few per second on a loaded
    // 2-core machine (256 in 60 s at load average 13). This floor only catches a fuzzer that stopped running cases.
    expect(stats.execs).toBeGreaterThan(SECONDS);
    // Guidance works: mutated inputs reached blocks the generated seeds did not.
    expect(stats.blocks).toBeGreaterThan(stats.seedBlocks);
  }, 240_000);
}
