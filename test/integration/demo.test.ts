// The README's main command: `crossway demo` draws foot through crossway guest + device and saves a screenshot.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { countColor, readPng } from "../helpers/png.ts";
import { run } from "../helpers/processes.ts";

useFdLeakCheck();

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

describe("crossway demo", () => {
  it("shows foot through the guest proxy in a screenshot and stops everything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crossway-demo-test-"));
    try {
      const out = join(dir, "shot.png");
      const r = await run(process.execPath, [BIN, "demo", "--out", out, "--background", "30a050"], {
        timeoutMs: 60_000,
      });
      expect(r.code, r.stderr.toString()).toBe(0);
      const text = r.stdout.toString();
      expect(text).toMatch(/crossway device \(pid \d+\) and guest \(pid \d+\): \S+wayland-crossway/);
      expect(text).toContain(`screenshot: ${out}`);
      expect(text).toContain("foot, crossway guest, crossway device and sway stopped");
      const img = readPng(out);
      expect(countColor(img, [0x30, 0xa0, 0x50]).count).toBeGreaterThan((img.width * img.height) / 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
