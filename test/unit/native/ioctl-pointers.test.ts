// ioctlPointers: addresses of the given buffers are written into the struct before the call; errors are thrown.
import { describe, expect, it } from "vitest";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("native.ioctlPointers", () => {
  it("patches distinct non-zero addresses at the given offsets, then reports the ioctl's errno", () => {
    const fd = native.memfdCreate("ioctl-target", 0);
    try {
      const arg = new Uint8Array(24);
      const a = new Uint8Array(16);
      const b = new Uint8Array(4096);
      // DRM_IOCTL_VIRTGPU_GET_CAPS on a memfd: not a DRM device, so the kernel says ENOTTY.
      expect(() => native.ioctlPointers(fd, 0xc0186449, arg, [0, 8], [a, b])).toThrow(/ENOTTY/);
      const v = new DataView(arg.buffer);
      const pa = v.getBigUint64(0, true);
      const pb = v.getBigUint64(8, true);
      expect(pa).not.toBe(0n);
      expect(pb).not.toBe(0n);
      expect(pa).not.toBe(pb);
      expect(() => native.ioctlPointers(fd, 0xc0186449, arg, [20], [a])).toThrow(
        /pointer offset out of range/,
      );
      expect(() => native.ioctlPointers(fd, 0xc0186449, arg, [0, 8], [a])).toThrow(/differ in length/);
    } finally {
      native.close(fd);
    }
  });
});
