// GlobalFilter: hide, cap and rewrite announced globals; judge binds against what this client was shown.
import { describe, expect, it } from "vitest";
import { GlobalFilter } from "../../../../src/proxy/wayland/global-filter.ts";
import { DEFAULT_GLOBALS } from "../../../../src/proxy/wayland/registry-policy.ts";
import { ProtocolRegistry } from "../../../../src/wire/wayland/protocol-registry.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("GlobalFilter", () => {
  const registry = ProtocolRegistry.fromGenerated();
  const make = () =>
    new GlobalFilter(
      { globals: { ...DEFAULT_GLOBALS, wl_output: { maxVersion: 2, why: "test" } }, dmabuf: false },
      registry,
    );

  it("forwards, rewrites to the cap, or hides", () => {
    const f = make();
    expect(f.onGlobal(1, "wl_compositor", 4)).toEqual({ kind: "forward" });
    expect(f.onGlobal(2, "wl_output", 4)).toEqual({ kind: "rewrite", version: 2 });
    expect(f.onGlobal(3, "zwlr_data_control_manager_v1", 2)).toEqual({
      kind: "hide",
      reason: "not in the allowlist",
    });
    expect(f.onGlobal(4, "zwp_linux_dmabuf_v1", 4).kind).toBe("hide");
    expect(f.onGlobalRemove(3)).toBe(true);
    expect(f.onGlobalRemove(3)).toBe(false);
    expect(f.onGlobalRemove(1)).toBe(false);
  });

  it("refuses binds of hidden, unknown or renamed globals and versions above what was shown", () => {
    const f = make();
    f.onGlobal(1, "wl_compositor", 4);
    f.onGlobal(2, "wl_output", 4);
    f.onGlobal(3, "zwlr_data_control_manager_v1", 2);
    expect(f.checkBind(1, "wl_compositor", 4)).toBeUndefined();
    expect(f.checkBind(2, "wl_output", 2)).toBeUndefined();
    expect(f.checkBind(2, "wl_output", 3)).toBe("invalid version for global wl_output (2): have 2, wanted 3");
    expect(f.checkBind(1, "wl_compositor", 0)).toBe(
      "invalid version for global wl_compositor (1): have 4, wanted 0",
    );
    expect(f.checkBind(3, "zwlr_data_control_manager_v1", 1)).toBe(
      "invalid global zwlr_data_control_manager_v1 (3)",
    );
    expect(f.checkBind(1, "wl_shm", 1)).toBe("invalid global wl_shm (1)");
    expect(f.checkBind(9, "wl_compositor", 1)).toBe("invalid global wl_compositor (9)");
  });
});
