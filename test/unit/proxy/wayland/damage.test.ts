// Tests for surface-to-buffer damage mapping: transforms, scale, viewport, clamping and bounded accumulation.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type BufferGeometry,
  DamageAccumulator,
  MAX_DAMAGE_RECTS,
  surfaceToBuffer,
} from "../../../../src/proxy/wayland/damage.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

const geom = (over: Partial<BufferGeometry> = {}): BufferGeometry => ({
  bufferWidth: 200,
  bufferHeight: 100,
  scale: 1,
  transform: 0,
  viewportSource: null,
  viewportDestination: null,
  ...over,
});

describe("surfaceToBuffer", () => {
  it("is the identity for a plain surface", () => {
    expect(surfaceToBuffer(geom(), { x: 10, y: 20, width: 30, height: 40 })).toEqual({
      x: 10,
      y: 20,
      width: 30,
      height: 40,
    });
  });

  it("multiplies by the buffer scale", () => {
    expect(surfaceToBuffer(geom({ scale: 2 }), { x: 5, y: 5, width: 10, height: 10 })).toEqual({
      x: 10,
      y: 10,
      width: 20,
      height: 20,
    });
  });

  // Expected values follow libweston's weston_transformed_coord (surface point -> buffer point).
  it("undoes a 90 degree transform (surface is 100x200)", () => {
    // Surface point (x, y) maps to buffer (y, W - x) with W the surface width 100.
    expect(surfaceToBuffer(geom({ transform: 1 }), { x: 0, y: 0, width: 10, height: 20 })).toEqual({
      x: 0,
      y: 90,
      width: 20,
      height: 10,
    });
  });

  it("undoes a 270 degree transform", () => {
    // (x, y) -> (H - y, x) with H the surface height 200.
    expect(surfaceToBuffer(geom({ transform: 3 }), { x: 0, y: 0, width: 10, height: 20 })).toEqual({
      x: 180,
      y: 0,
      width: 20,
      height: 10,
    });
  });

  it("maps the whole surface onto the whole buffer for every transform and scale", () => {
    for (let t = 0; t < 8; t++) {
      for (const scale of [1, 2, 4]) {
        const g = geom({ transform: t, scale, bufferWidth: 240, bufferHeight: 120 });
        const sw = (t & 1 ? 120 : 240) / scale;
        const sh = (t & 1 ? 240 : 120) / scale;
        expect(surfaceToBuffer(g, { x: 0, y: 0, width: sw, height: sh })).toEqual({
          x: 0,
          y: 0,
          width: 240,
          height: 120,
        });
      }
    }
  });

  it("crops and scales through a viewport, with a filter margin", () => {
    const g = geom({
      viewportSource: { x: 50, y: 20, width: 100, height: 50 },
      viewportDestination: { width: 50, height: 25 },
    });
    // Surface (10,10)-(20,20) is source (70,40)-(90,60), plus one pixel of margin.
    expect(surfaceToBuffer(g, { x: 10, y: 10, width: 10, height: 10 })).toEqual({
      x: 69,
      y: 39,
      width: 22,
      height: 22,
    });
  });

  it("clamps hostile coordinates near the int32 limits", () => {
    expect(surfaceToBuffer(geom(), { x: -2147483648, y: -5, width: 2147483647, height: 2147483647 })).toEqual(
      {
        x: 0,
        y: 0,
        width: 0,
        height: 100,
      },
    );
    expect(surfaceToBuffer(geom(), { x: 2147483647, y: 0, width: 2147483647, height: 1 }).width).toBe(0);
  });

  it("always lands inside the buffer (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 4 }),
        fc.record({
          x: fc.integer({ min: -2147483648, max: 2147483647 }),
          y: fc.integer({ min: -2147483648, max: 2147483647 }),
          width: fc.integer({ min: -2147483648, max: 2147483647 }),
          height: fc.integer({ min: -2147483648, max: 2147483647 }),
        }),
        (transform, scale, r) => {
          const out = surfaceToBuffer(geom({ transform, scale, bufferWidth: 240, bufferHeight: 120 }), r);
          expect(out.x).toBeGreaterThanOrEqual(0);
          expect(out.y).toBeGreaterThanOrEqual(0);
          expect(out.x + out.width).toBeLessThanOrEqual(240);
          expect(out.y + out.height).toBeLessThanOrEqual(120);
        },
      ),
    );
  });
});

describe("DamageAccumulator", () => {
  it("keeps distinct rectangles and drops contained ones", () => {
    const d = new DamageAccumulator();
    d.addBuffer({ x: 0, y: 0, width: 10, height: 10 }, 100, 100);
    d.addBuffer({ x: 2, y: 2, width: 3, height: 3 }, 100, 100);
    d.addBuffer({ x: 50, y: 50, width: 10, height: 10 }, 100, 100);
    expect(d.take(100, 100)).toHaveLength(2);
    expect(d.isEmpty).toBe(true);
  });

  it("collapses to a bounding box past the limit", () => {
    const d = new DamageAccumulator();
    for (let i = 0; i <= MAX_DAMAGE_RECTS; i++)
      d.addBuffer({ x: i * 5, y: i, width: 2, height: 2 }, 100, 100);
    const rects = d.take(100, 100);
    expect(rects).toEqual([{ x: 0, y: 0, width: MAX_DAMAGE_RECTS * 5 + 2, height: MAX_DAMAGE_RECTS + 2 }]);
  });

  it("reports the whole buffer when full", () => {
    const d = new DamageAccumulator();
    d.setFull();
    d.addBuffer({ x: 1, y: 1, width: 1, height: 1 }, 64, 32);
    expect(d.take(64, 32)).toEqual([{ x: 0, y: 0, width: 64, height: 32 }]);
  });
});
