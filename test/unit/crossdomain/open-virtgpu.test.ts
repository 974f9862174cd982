// The --device argument: emulated:PATH, virtgpu, virtgpu:NODE.
import { describe, expect, it } from "vitest";
import { openVirtGpu } from "../../../src/crossdomain/open-virtgpu.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("openVirtGpu", () => {
  it("rejects malformed specs and explains an unreachable device", () => {
    expect(() => openVirtGpu("bogus")).toThrow(/must be emulated:PATH, virtgpu or virtgpu:NODE/);
    expect(() => openVirtGpu("emulated:")).toThrow(/must be emulated:PATH/);
    expect(() => openVirtGpu("emulated:/nonexistent/device.sock")).toThrow(
      /cannot connect to crossway device at \/nonexistent\/device.sock: ENOENT/,
    );
    expect(() => openVirtGpu("virtgpu:/nonexistent/renderD200")).toThrow(
      /cannot open \/nonexistent\/renderD200/,
    );
  });
});
