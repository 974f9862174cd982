import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { globalsOf } from "../helpers/globals.ts";
import { startSway } from "../helpers/sway.ts";
import { GUEST_ENV, say, startVmStack, type VmStack, vmSkipped } from "../helpers/vm.ts";
import { startWaylandFilterProcess, type WaylandFilterProcess } from "../helpers/wayland-filter.ts";
import { STRICT_POLICY } from "../helpers/wayland-filter-attacks.ts";

useFdLeakCheck();

const skipped = vmSkipped();
if (skipped) say("VM tier skipped (CROSSWAY_SKIP_VM=1)");

describe.skipIf(skipped)("crossway wayland-filter behind QEMU + rutabaga, host sway", () => {
  let sway: Compositor;
  let filter: WaylandFilterProcess;
  let st: VmStack;

  beforeAll(async () => {
    sway = await startSway({ width: 800, height: 600 });
    filter = await startWaylandFilterProcess(sway, { policy: STRICT_POLICY });
    st = await startVmStack(filter.asCompositor());
  });

  afterAll(async () => {
    await st?.stop();
    await filter?.stop();
    await sway?.stop();
  });

  it("crossway guest in the VM sees the VM's policy (wl_output capped at 2 by the filter)", async () => {
    const r = await st.vm.run(["wayland-info"], { env: GUEST_ENV });
    expect(r.code, r.stderr).toBe(0);
    const g = globalsOf(r.stdout);
    expect(g.get("wl_output")).toBe(2);
    expect(g.has("zwlr_data_control_manager_v1")).toBe(false);
  });
});
