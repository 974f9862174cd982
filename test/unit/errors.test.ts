// Keeps the error catalogue, the code and docs/errors.md in sync.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CrosswayError, ERROR_CODES } from "../../src/errors.ts";
import { renderErrorsDoc } from "../../src/errors-doc.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

const root = fileURLToPath(new URL("../../", import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

describe("error catalogue", () => {
  it("docs/errors.md is generated from src/errors.ts and up to date (npm run gen:errors-doc)", () => {
    expect(readFileSync(join(root, "docs/errors.md"), "utf8")).toBe(renderErrorsDoc());
  });

  it("every CW_ code the sources mention is catalogued, and every catalogued code is used", () => {
    const used = new Set<string>();
    // bench/ throws CrosswayError too (CW_BENCH_FAILED), so its codes count as used.
    for (const file of [...sources(join(root, "src")), ...sources(join(root, "bench"))]) {
      if (file === join(root, "src/errors.ts")) continue;
      for (const m of readFileSync(file, "utf8").matchAll(/"(CW_[A-Z0-9_]+)"/g)) used.add(m[1] as string);
    }
    const catalogued = new Set(Object.keys(ERROR_CODES));
    expect([...used].filter((c) => !catalogued.has(c))).toEqual([]);
    expect([...catalogued].filter((c) => !used.has(c))).toEqual([]);
  });

  it("errors carry their code's disposition and context", () => {
    const e = new CrosswayError("CW_USAGE", "bad", { arg: "x" });
    expect(e.disposition).toBe("process");
    expect(e.context).toEqual({ arg: "x" });
    expect(e).toBeInstanceOf(Error);
  });
});
