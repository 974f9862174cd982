// The addon loader: a missing build gives one actionable sentence (CW_NATIVE_MISSING), not a require stack.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-loader-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("src/native.ts", () => {
  it("loads the built addon with every documented function", () => {
    for (const name of [
      "sendmsg",
      "recvmsg",
      "mmap",
      "munmap",
      "createWatcher",
      "ioctl",
      "flock",
      "liveMappings",
    ]) {
      expect(typeof (native as unknown as Record<string, unknown>)[name], name).toBe("function");
    }
  });

  it("explains what to run when the addon is not built", async () => {
    // A copy of the loader in a tree without native/build behaves like a fresh clone before `npm ci`.
    const src = join(scratch, "src");
    mkdirSync(src);
    for (const f of ["native.ts", "errors.ts"]) {
      copyFileSync(fileURLToPath(new URL(`../../../src/${f}`, import.meta.url)), join(src, f));
    }
    const err = await import(pathToFileURL(join(src, "native.ts")).href).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "CW_NATIVE_MISSING" });
    expect(String((err as Error).message)).toMatch(/^crossway's native addon is not built: run 'npm ci'/);
  });
});
