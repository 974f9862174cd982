// PNG checks for screenshots (harness and demo): count pixels of a colour, bounding box, compare two images.
import { readFileSync } from "node:fs";
import { PNG } from "pngjs";

/** A decoded PNG: RGBA, 8 bits per channel, row-major. */
export interface Image {
  width: number;
  height: number;
  data: Buffer;
}

/** An RGB colour, e.g. [255, 0, 0]. */
export type Rgb = readonly [number, number, number];

/** Reads and decodes a PNG file into RGBA. */
export function readPng(path: string): Image {
  const png = PNG.sync.read(readFileSync(path));
  return { width: png.width, height: png.height, data: png.data };
}

/** The RGBA of pixel (x, y). */
export function pixelAt(img: Image, x: number, y: number): [number, number, number, number] {
  const i = (y * img.width + x) * 4;
  const d = img.data;
  return [d[i] ?? 0, d[i + 1] ?? 0, d[i + 2] ?? 0, d[i + 3] ?? 0];
}

/** How many pixels are `rgb` within `tolerance` per channel, and their bounding box (undefined when none). */
export function countColor(
  img: Image,
  rgb: Rgb,
  tolerance = 0,
): { count: number; bbox: { x0: number; y0: number; x1: number; y1: number } | undefined } {
  let count = 0;
  let x0 = Number.POSITIVE_INFINITY;
  let y0 = Number.POSITIVE_INFINITY;
  let x1 = -1;
  let y1 = -1;
  const d = img.data;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 4;
      if (
        Math.abs((d[i] ?? 0) - rgb[0]) <= tolerance &&
        Math.abs((d[i + 1] ?? 0) - rgb[1]) <= tolerance &&
        Math.abs((d[i + 2] ?? 0) - rgb[2]) <= tolerance
      ) {
        count++;
        if (x < x0) x0 = x;
        if (y < y0) y0 = y;
        if (x > x1) x1 = x;
        if (y > y1) y1 = y;
      }
    }
  }
  return { count, bbox: count === 0 ? undefined : { x0, y0, x1, y1 } };
}

/** Pixel-by-pixel comparison (RGB, alpha ignored): how many pixels differ by more than `tolerance` in a channel. */
export function diffPngs(a: Image, b: Image, tolerance = 0): { sameSize: boolean; differing: number } {
  if (a.width !== b.width || a.height !== b.height) return { sameSize: false, differing: Number.NaN };
  let differing = 0;
  for (let i = 0; i < a.data.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      if (Math.abs((a.data[i + c] ?? 0) - (b.data[i + c] ?? 0)) > tolerance) {
        differing++;
        break;
      }
    }
  }
  return { sameSize: true, differing };
}
