// `npm pack` makes a package with only what runs, and `npm install -g` of it builds the addon and runs crossway.
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePeerDirs, type PeerDirs } from "../../src/harness/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { run } from "../helpers/processes.ts";

useFdLeakCheck();

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** npm install builds the addon with node-gyp: minutes on one loaded core. */
const INSTALL_TIMEOUT_MS = 600_000;
const RUN_TIMEOUT_MS = 60_000;

/**
 * What may be in the tarball: the launcher, the TypeScript sources, their compiled build (what the launcher runs while
 * it is current) with its stamp, the addon's sources, the units.
 */
const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^bin\/(crossway|source-digest)\.js$/,
  // All of src/ (the launcher compares the sources with the build's digest; the docs generator and the type stubs
  // are a few KiB).
  /^src\/(?!.*\.test\.ts$).+\.(ts|mjs)$/,
  /^dist\/.+\.js$/,
  /^dist\/BUILT$/,
  // What `crossway vm-run` and `demo --vm` run: the VM's build recipe and the guest's init.
  /^scripts\/(setup-vm|vm-guest-init)\.sh$/,
  /^native\/binding\.gyp$/,
  /^native\/src\/[^/]+\.(cc|h)$/,
  /^contrib\/systemd\/(guest|host)\/[^/]+\.(service|socket|conf)$/,
];

describe("npm package", () => {
  let dirs: PeerDirs;
  let tarball: string;
  let files: string[];

  beforeAll(async () => {
    dirs = makePeerDirs("npmpack");
    mkdirSync(dirs.base, { recursive: true });
    const r = await run("npm", ["pack", "--json", "--pack-destination", dirs.base], {
      cwd: ROOT,
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(r.code, r.stderr.toString()).toBe(0);
    const info = JSON.parse(r.stdout.toString()) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    tarball = join(dirs.base, info[0]?.filename as string);
    files = (info[0]?.files ?? []).map((f) => f.path).sort();
  }, RUN_TIMEOUT_MS);

  afterAll(() => dirs?.remove());

  it("holds only what runs, and every runtime source", () => {
    const stray = files.filter((f) => !ALLOWED.some((re) => re.test(f)));
    expect(stray).toEqual([]);
    for (const f of [
      "bin/crossway.js",
      "src/cli.ts",
      "src/native.ts",
      "native/binding.gyp",
      "native/src/addon.cc",
    ]) {
      expect(files).toContain(f);
    }
    // Every source file under src/ is shipped.
    const walk = (d: string): string[] =>
      readdirSync(join(ROOT, d), { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(`${d}/${e.name}`) : [`${d}/${e.name}`],
      );
    const runtime = walk("src");
    expect(runtime.filter((f) => !files.includes(f))).toEqual([]);
    // ... and compiled: `npm pack` builds dist/ (prepack), one .js per runtime .ts, stamped.
    const compiled = runtime
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && f !== "src/errors-doc.ts")
      .map((f) => f.replace(/^src\//, "dist/").replace(/\.ts$/, ".js"));
    expect(compiled.filter((f) => !files.includes(f))).toEqual([]);
    expect(files).toContain("dist/BUILT");
    expect(files.some((f) => f.startsWith("native/build") || f.endsWith(".node"))).toBe(false);
  });

  it(
    "npm install -g of the tarball builds the addon, and crossway runs from the install",
    async () => {
      const prefix = join(dirs.base, "prefix");
      const r = await run(
        "npm",
        ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", "--prefer-offline", tarball],
        { cwd: dirs.base, timeoutMs: INSTALL_TIMEOUT_MS },
      );
      expect(r.code, `${r.stdout.toString()}\n${r.stderr.toString()}`).toBe(0);
      const pkg = join(prefix, "lib/node_modules/crossway");
      expect(existsSync(join(pkg, "native/build/Release/crossway_native.node"))).toBe(true);
      const bin = join(prefix, "bin/crossway");
      // An install runs the compiled build: without tsx, crossway still starts (and loads the addon below).
      rmSync(join(pkg, "node_modules/tsx"), { recursive: true, force: true });
      expect(existsSync(join(pkg, "node_modules/tsx"))).toBe(false);
      const v = await run(bin, ["--version"], { cwd: dirs.base, timeoutMs: RUN_TIMEOUT_MS });
      expect(v.code, v.stderr.toString()).toBe(0);
      expect(v.stdout.toString()).toBe("0.1.0\n");
      // The addon loads: connecting to a missing device socket fails in the native connect (ENOENT), not at load.
      const d = await run(
        bin,
        ["doctor", "--guest", "--device", `emulated:${join(dirs.base, "none.sock")}`],
        {
          cwd: dirs.base,
          timeoutMs: RUN_TIMEOUT_MS,
        },
      );
      expect(d.code).toBe(1);
      expect(d.stdout.toString()).toContain("cannot connect to crossway device at");
      expect(d.stdout.toString()).toContain("ENOENT");
      expect(d.stdout.toString() + d.stderr.toString()).not.toMatch(/native addon/i);
    },
    INSTALL_TIMEOUT_MS + RUN_TIMEOUT_MS,
  );
});
