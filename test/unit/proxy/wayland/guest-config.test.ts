// Tests for the guest config parser: overrides of the allowlist, and precise errors for every bad field.
import { describe, expect, it } from "vitest";
import { parseGuestConfig } from "../../../../src/proxy/wayland/guest-config.ts";
import { decideGlobal } from "../../../../src/proxy/wayland/registry-policy.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("parseGuestConfig", () => {
  it("starts from the default allowlist", () => {
    const c = parseGuestConfig("{}");
    expect(c.globals.wl_compositor?.maxVersion).toBe(6);
    expect(c.globals.zwlr_screencopy_manager_v1).toBeUndefined();
    expect(c.maxMessageSize).toBe(4096);
  });

  it("caps, hides and adds globals", () => {
    const c = parseGuestConfig(
      JSON.stringify({
        globals: { wl_seat: 5, wp_viewporter: false, zwlr_layer_shell_v1: 4 },
        titlePrefix: "[vm] ",
      }),
    );
    expect(c.globals.wl_seat?.maxVersion).toBe(5);
    expect(c.globals.wp_viewporter).toBeUndefined();
    expect(c.globals.zwlr_layer_shell_v1?.maxVersion).toBe(4);
    expect(c.titlePrefix).toBe("[vm] ");
  });

  it.each([
    ["not json", "config: not valid JSON"],
    ["[]", "top level must be an object"],
    ['{"global": {}}', "unknown key 'global'"],
    ['{"globals": {"wl_seat": 0}}', "globals.wl_seat: expected a version >= 1"],
    ['{"globals": {"bad name": 1}}', "'bad name' is not an interface name"],
    ['{"maxMessageSize": 100000}', "'maxMessageSize' must be an integer in [4096, 65532]"],
    ['{"maxMessageSize": 4098}', "multiple of 4"],
    ['{"protocolPaths": [1]}', "'protocolPaths' must be an array of paths"],
    ['{"maxShmBytes": 1000}', "'maxShmBytes' must be an integer in [1048576, 1099511627776]"],
  ])("rejects %s with a precise error", (text, message) => {
    expect(() => parseGuestConfig(text)).toThrow(message);
  });
});

describe("decideGlobal", () => {
  const policy = { globals: parseGuestConfig("{}").globals, dmabuf: false };

  it("never advertises above the host's or the XML's version", () => {
    expect(decideGlobal(policy, "wl_compositor", 4, 6)).toEqual({ show: true, version: 4 });
    expect(decideGlobal(policy, "wl_seat", 9, 7)).toEqual({ show: true, version: 7 });
    expect(decideGlobal(policy, "xdg_wm_base", 9, 9)).toEqual({ show: true, version: 6 });
  });

  it("hides unknown globals, dmabuf on the emulated device, and interfaces without XML", () => {
    expect(decideGlobal(policy, "zwlr_screencopy_manager_v1", 3, 3).show).toBe(false);
    expect(decideGlobal(policy, "zwp_linux_dmabuf_v1", 4, 4)).toEqual({
      show: false,
      reason: "the transport cannot carry DMA-BUFs (emulated device)",
    });
    // v4 feedback would carry the host's dev_t (main_device, tranche_target_device) to the guest: capped at 3.
    expect(decideGlobal({ ...policy, dmabuf: true }, "zwp_linux_dmabuf_v1", 4, 4)).toEqual({
      show: true,
      version: 3,
    });
    expect(decideGlobal(policy, "wl_output", 4, 0).show).toBe(false);
  });
});
