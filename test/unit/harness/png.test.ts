// PNG checks: colour counts with bounding boxes and pixel diffs, on images written by pngjs.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { countColor, diffPngs, pixelAt, readPng } from "../../../src/harness/png.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-png-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A 20x10 black PNG with a red rectangle covering x 5..9, y 2..3. */
function writeTestPng(name: string, redPixelShift = 0): string {
  const png = new PNG({ width: 20, height: 10 });
  png.data.fill(0);
  for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
  for (let y = 2; y <= 3; y++) {
    for (let x = 5 + redPixelShift; x <= 9 + redPixelShift; x++) png.data[(y * 20 + x) * 4] = 255;
  }
  const path = join(scratch, name);
  writeFileSync(path, PNG.sync.write(png));
  return path;
}

describe("png", () => {
  it("counts a colour and finds its bounding box", () => {
    const img = readPng(writeTestPng("a.png"));
    expect([img.width, img.height]).toEqual([20, 10]);
    expect(countColor(img, [255, 0, 0])).toEqual({ count: 10, bbox: { x0: 5, y0: 2, x1: 9, y1: 3 } });
    expect(countColor(img, [0, 0, 0]).count).toBe(190);
    expect(countColor(img, [250, 5, 5]).count).toBe(0);
    expect(countColor(img, [250, 5, 5], 5).count).toBe(10);
    expect(countColor(img, [0, 255, 0]).bbox).toBeUndefined();
    expect(pixelAt(img, 5, 2)).toEqual([255, 0, 0, 255]);
  });

  it("diffs two images pixel by pixel", () => {
    const a = readPng(writeTestPng("a.png"));
    const b = readPng(writeTestPng("b.png", 1));
    expect(diffPngs(a, a)).toEqual({ sameSize: true, differing: 0 });
    // Shifting the 5x2 rectangle by one pixel changes its first and one-past-last columns: 4 pixels.
    expect(diffPngs(a, b)).toEqual({ sameSize: true, differing: 4 });
    const small = readPng(join(scratch, "a.png"));
    small.width = 10;
    expect(diffPngs(a, small).sameSize).toBe(false);
  });
});
