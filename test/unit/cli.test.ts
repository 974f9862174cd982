// The crossway command line, run as a real child process: help, subcommands, one-line usage errors with exit 2.
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type CommandSpec, parseArgs } from "../../src/cli-options.ts";
import { native } from "../../src/native.ts";
import { useFdLeakCheck } from "./../helpers/fd-leak.ts";
import { run } from "./../helpers/processes.ts";

useFdLeakCheck();

const bin = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

async function crossway(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await run(process.execPath, [bin, ...args], { timeoutMs: 30_000 });
  return { code: r.code, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("bin/crossway.js", () => {
  it("--help lists every subcommand with its options and exits 0", async () => {
    const r = await crossway("--help");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: crossway <command> \[options\]$/m);
    for (const cmd of ["guest", "device", "trace", "demo"])
      expect(r.out).toMatch(new RegExp(`^ {2}${cmd} +\\S`, "m"));
    expect(r.out).toMatch(/--device emulated:PATH\|virtgpu\[:NODE\]/);
    expect(r.out).toMatch(/--background RRGGBB/);
    expect(r.err).toBe("");
  });

  it("without a command prints the help and exits 2", async () => {
    const r = await crossway();
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/Commands:/);
  });

  it("an unknown command is a one-line error, exit 2", async () => {
    const r = await crossway("frobnicate");
    expect(r.code).toBe(2);
    expect(r.err).toBe("crossway: unknown command 'frobnicate' (see 'crossway --help')\n");
  });

  it("an unknown option is a one-line error, exit 2", async () => {
    const r = await crossway("demo", "--bogus");
    expect(r.code).toBe(2);
    expect(r.err).toBe("crossway demo: unknown option '--bogus' (see 'crossway demo --help')\n");
    expect(r.out).toBe("");
  });

  it("an option missing its argument is a one-line error, exit 2", async () => {
    const r = await crossway("demo", "--out");
    expect(r.code).toBe(2);
    expect(r.err).toBe("crossway demo: option '--out' needs PNG (see 'crossway demo --help')\n");
  });

  it("a bad option value is a one-line error, exit 2, before anything starts", async () => {
    const r = await crossway("demo", "--background", "blue");
    expect(r.code).toBe(2);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/--background must be RRGGBB hex, not 'blue'/);
  });

  it("crossway guest needs --device, and a well-formed one, before it listens anywhere", async () => {
    const missing = await crossway("guest");
    expect(missing.code).toBe(2);
    expect(missing.err).toBe(
      "crossway guest: missing required option '--device emulated:PATH|virtgpu[:NODE]' (see 'crossway guest --help')\n",
    );
    const bad = await crossway("guest", "--device", "vsock:3");
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(
      "crossway guest: --device must be emulated:PATH, virtgpu or virtgpu:NODE, not 'vsock:3'\n",
    );
  });

  it("crossway guest --no-wayland needs --pipewire (exit 2); a held PipeWire lock is a one-line error (exit 1)", async () => {
    const none = await crossway("guest", "--device", "emulated:/nonexistent", "--no-wayland");
    expect(none.code).toBe(2);
    expect(none.err).toBe("crossway guest: --no-wayland needs --pipewire (nothing to serve)\n");
    const dir = mkdtempSync(join(tmpdir(), "cw-cli-pw-"));
    const lock = openSync(join(dir, "pipewire-0.lock"), "w");
    try {
      // Another "server" holds the lock, as a running daemon or guest would.
      expect(native.flock(lock, 6)).toBe(true);
      const r = await crossway(
        "guest",
        "--device",
        "emulated:/nonexistent",
        "--no-wayland",
        "--pipewire",
        join(dir, "pipewire-0"),
      );
      // A process-level failure (not a usage error): exit 1, one line.
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /^cannot listen on PipeWire socket '.*pipewire-0': cannot lock .*pipewire-0\.lock: another server is using it\n$/,
      );
    } finally {
      closeSync(lock);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("<command> --help prints that command's options and exits 0", async () => {
    const r = await crossway("demo", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^crossway demo: /);
    expect(r.out).toMatch(/--out PNG/);
  });
});

describe("parseArgs", () => {
  const spec: CommandSpec = {
    name: "t",
    summary: "test",
    rest: "-- COMMAND",
    options: [
      { name: "socket", value: "PATH", help: "", required: true },
      { name: "allow", value: "IFACE", help: "", repeatable: true },
      { name: "mode", value: "M", help: "", choices: ["a", "b"] },
      { name: "verbose", help: "" },
      { name: "pw", value: "NAME", help: "", optionalValue: true },
    ],
    run: async () => 0,
  };

  it("parses values, repeats, flags, = forms and the rest", () => {
    const a = parseArgs(spec, [
      "--socket=/s",
      "--allow",
      "x",
      "--allow",
      "y",
      "--verbose",
      "--mode",
      "b",
      "--",
      "ls",
    ]);
    expect(a.str("socket")).toBe("/s");
    expect(a.list("allow")).toEqual(["x", "y"]);
    expect(a.flag("verbose")).toBe(true);
    expect(a.str("mode")).toBe("b");
    expect(a.rest).toEqual(["ls"]);
  });

  it("an option with an optional value is a flag alone, a value with one", () => {
    const bare = parseArgs(spec, ["--socket", "s", "--pw", "--verbose"]);
    expect(bare.flag("pw")).toBe(true);
    expect(bare.str("pw")).toBeUndefined();
    expect(bare.flag("verbose")).toBe(true);
    const valued = parseArgs(spec, ["--socket", "s", "--pw", "pipewire-1"]);
    expect(valued.flag("pw")).toBe(true);
    expect(valued.str("pw")).toBe("pipewire-1");
    expect(parseArgs(spec, ["--socket", "s", "--pw=x"]).str("pw")).toBe("x");
    expect(parseArgs(spec, ["--socket", "s"]).flag("pw")).toBe(false);
  });

  it.each([
    [["--allow", "x"], /missing required option '--socket PATH'/],
    [["--socket", "a", "--socket", "b"], /option '--socket' given twice/],
    [["--socket", "a", "--mode", "c"], /must be one of a\|b, not 'c'/],
    [["--socket", "a", "--verbose=1"], /option '--verbose' takes no value/],
    [["--socket", "--verbose"], /option '--socket' needs PATH/],
    [["--socket", "a", "--pw", "--pw"], /option '--pw' given twice/],
  ])("rejects %j", (argv, msg) => {
    expect(() => parseArgs(spec, argv)).toThrow(
      expect.objectContaining({ code: "CW_USAGE", message: expect.stringMatching(msg) }),
    );
  });
});
