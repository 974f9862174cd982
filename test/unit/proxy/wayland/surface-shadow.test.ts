// Tests for per-commit copy planning: first copies are full, damage reaches every mirror that missed it.
import { describe, expect, it } from "vitest";
import { ShadowBuffer, SurfaceShadow } from "../../../../src/proxy/wayland/surface-shadow.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

const full = (w: number, h: number) => [{ x: 0, y: 0, width: w, height: h }];

describe("SurfaceShadow", () => {
  it("copies a buffer fully the first time, then only damage", () => {
    const s = new SurfaceShadow();
    const a = new ShadowBuffer(10, 100, 50);
    s.attach(a);
    s.damage({ x: 0, y: 0, width: 1, height: 1 });
    expect(s.commit().plan?.rects).toEqual(full(100, 50));
    s.attach(a);
    s.damageBuffer({ x: 5, y: 5, width: 2, height: 2 });
    expect(s.commit()).toEqual({
      plan: { buffer: a, rects: [{ x: 5, y: 5, width: 2, height: 2 }] },
      attached: true,
    });
  });

  it("gives a re-attached buffer the damage committed on the other buffers meanwhile", () => {
    const s = new SurfaceShadow();
    const a = new ShadowBuffer(1, 100, 100);
    const b = new ShadowBuffer(2, 100, 100);
    s.attach(a);
    s.commit();
    s.attach(b);
    s.commit();
    // Frame on b: damage (10,10 5x5); a missed it.
    s.attach(b);
    s.damageBuffer({ x: 10, y: 10, width: 5, height: 5 });
    expect(s.commit().plan?.rects).toEqual([{ x: 10, y: 10, width: 5, height: 5 }]);
    // Frame on a: damage (50,50 1x1); a must also get (10,10 5x5) it missed.
    s.attach(a);
    s.damageBuffer({ x: 50, y: 50, width: 1, height: 1 });
    expect(s.commit().plan?.rects).toEqual([
      { x: 10, y: 10, width: 5, height: 5 },
      { x: 50, y: 50, width: 1, height: 1 },
    ]);
  });

  it("copies everything when scale, transform or buffer size change", () => {
    const s = new SurfaceShadow();
    const a = new ShadowBuffer(1, 64, 64);
    s.attach(a);
    s.commit();
    s.attach(a);
    s.setScale(2);
    s.damage({ x: 0, y: 0, width: 1, height: 1 });
    expect(s.commit().plan?.rects).toEqual(full(64, 64));
    const big = new ShadowBuffer(2, 128, 128);
    s.attach(big);
    s.commit();
    s.attach(big);
    s.damage({ x: 1, y: 1, width: 1, height: 1 });
    expect(s.commit().plan?.rects).toEqual([{ x: 2, y: 2, width: 2, height: 2 }]);
  });

  it("bounds damage requests: a flood becomes one full copy", () => {
    const s = new SurfaceShadow();
    const a = new ShadowBuffer(1, 32, 32);
    s.attach(a);
    s.commit();
    s.attach(a);
    for (let i = 0; i < 10_000; i++) s.damageBuffer({ x: i % 32, y: 0, width: 1, height: 1 });
    expect(s.commit().plan?.rects).toEqual(full(32, 32));
  });

  it("does nothing for commits without a buffer, and forgets destroyed buffers", () => {
    const s = new SurfaceShadow();
    expect(s.commit()).toEqual({ plan: null, attached: false });
    const a = new ShadowBuffer(1, 8, 8);
    s.attach(a);
    s.forgetBuffer(a);
    expect(s.commit().plan).toBeNull();
  });
});
