// The native fast paths and JavaScript share one array and one set of notice codes each: both sides must agree.
import { describe, expect, it } from "vitest";
import { DeviceFastNotice } from "../../../src/crossdomain/device-fast-path.ts";
import { DeviceFastState } from "../../../src/crossdomain/device-fast-state.ts";
import { FastState } from "../../../src/crossdomain/fast-state.ts";
import { native } from "../../../src/native.ts";
import { FastNotice } from "../../../src/proxy/wayland/fast-path.ts";

describe("native fast path layout", () => {
  it("has the state fields of fast-state.ts and the notice codes of fast-path.ts, index for index", () => {
    const ctor = native.FastPath as unknown as {
      stateLayout: Record<string, number>;
      notices: Record<string, number>;
    };
    expect(ctor.stateLayout).toEqual({ ...FastState });
    expect(ctor.notices).toEqual({ ...FastNotice });
  });

  it("refuses a state array of another size", () => {
    const entries = new Int32Array(6);
    const spans = new Int32Array(4);
    expect(
      () => new native.FastPath(0, 1, new Float64Array(FastState.SIZE + 1), entries, spans, () => {}),
    ).toThrow(/another layout/);
  });
});

describe("device fast path layout", () => {
  it("has the state fields of device-fast-state.ts and the notice codes of device.ts, index for index", () => {
    expect(native.DeviceFastPath.stateLayout).toEqual({ ...DeviceFastState });
    expect(native.DeviceFastPath.notices).toEqual({ ...DeviceFastNotice });
  });

  it("refuses a state array of another size", () => {
    expect(
      () => new native.DeviceFastPath(0, 1, new Float64Array(DeviceFastState.SIZE - 1), () => {}),
    ).toThrow(/another layout/);
  });
});
