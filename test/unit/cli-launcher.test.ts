// bin/crossway.js picks the compiled build only while the sources are what it was built from, else runs them via tsx.
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { useFdLeakCheck } from "./../helpers/fd-leak.ts";
import { run } from "./../helpers/processes.ts";

useFdLeakCheck();

const repo = fileURLToPath(new URL("../../", import.meta.url));
// A package laid out like the checkout: the real launcher, a stand-in cli in src/ (TypeScript) and in dist/.
const pkg = mkdtempSync(join(tmpdir(), "crossway-launcher-"));
afterAll(() => rmSync(pkg, { recursive: true, force: true }));
mkdirSync(join(pkg, "bin"));
mkdirSync(join(pkg, "src/nested"), { recursive: true });
mkdirSync(join(pkg, "dist"));
copyFileSync(join(repo, "bin/crossway.js"), join(pkg, "bin/crossway.js"));
copyFileSync(join(repo, "bin/source-digest.js"), join(pkg, "bin/source-digest.js"));
writeFileSync(join(pkg, "package.json"), '{ "type": "module" }\n');
symlinkSync(join(repo, "node_modules"), join(pkg, "node_modules"));
writeFileSync(
  join(pkg, "src/cli.ts"),
  'const from: string = "source";\nexport async function main(a: string[]): Promise<number> { console.log(from, a.join(" ")); return 3; }\n',
);
writeFileSync(join(pkg, "src/nested/other.ts"), "export const x: number = 1;\n");
writeFileSync(
  join(pkg, "dist/cli.js"),
  'export async function main(a) { console.log("compiled", a.join(" ")); return 4; }\n',
);

/** `npm run build`'s last step, in the test package. */
async function stamp(): Promise<void> {
  const r = await run(process.execPath, [join(pkg, "bin/source-digest.js"), "--stamp"], {
    timeoutMs: 30_000,
  });
  expect(r.code, r.stderr.toString()).toBe(0);
}

async function launch(env: Record<string, string> = {}): Promise<string> {
  const r = await run(process.execPath, [join(pkg, "bin/crossway.js"), "x", "y"], {
    timeoutMs: 30_000,
    env: { ...(process.env as Record<string, string>), ...env },
  });
  return `${r.code} ${r.stdout.toString().trim()}`;
}

describe("bin/crossway.js: compiled build or sources", () => {
  it("runs dist/ only while the sources are what it was built from, and passes args and exit code", async () => {
    // Not built: the sources, through tsx.
    expect(await launch()).toBe("3 source x y");
    await stamp();
    expect(await launch()).toBe("4 compiled x y");
    // Modification times do not matter (npm stamps an installed package with its unpack time): content does.
    utimesSync(join(pkg, "src/nested/other.ts"), 4e9, 4e9);
    utimesSync(join(pkg, "dist/BUILT"), 1000, 1000);
    expect(await launch()).toBe("4 compiled x y");
    // A source edited after the build, even one nested deep, or a new one: the sources again.
    writeFileSync(join(pkg, "src/nested/other.ts"), "export const x: number = 2;\n");
    expect(await launch()).toBe("3 source x y");
    writeFileSync(join(pkg, "src/nested/other.ts"), "export const x: number = 1;\n");
    expect(await launch()).toBe("4 compiled x y");
    writeFileSync(join(pkg, "src/new.ts"), "export {};\n");
    expect(await launch()).toBe("3 source x y");
    rmSync(join(pkg, "src/new.ts"));
    expect(await launch()).toBe("4 compiled x y");
    // A damaged stamp, or asked for explicitly.
    writeFileSync(join(pkg, "dist/BUILT"), "not a digest\n");
    expect(await launch()).toBe("3 source x y");
    await stamp();
    expect(await launch({ CROSSWAY_FROM_SOURCE: "1" })).toBe("3 source x y");
  });
});
