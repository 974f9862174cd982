// VM tier: QEMU's cross-domain Wayland channel (wayland-socket-path) connected to crossway wayland-filter in front of
// headless sway. crossway guest in the VM sees the VM's policy, and a guest process that bypasses it and writes
// raw Wayland into its own virtgpu channel is refused by the filter on the host.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHECKOUT } from "../../src/harness/vm.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { globalsOf } from "../helpers/globals.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
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

  it("refuses a guest process that bypasses crossway guest: hidden global and higher version", async () => {
    const direct = RawWaylandClient.connect(sway.socketPath);
    let hidden: [number, { iface: string }] | undefined;
    try {
      direct.getRegistry();
      await direct.roundTrip();
      hidden = [...direct.globals].find(([, g]) => g.iface === "zwlr_data_control_manager_v1");
    } finally {
      direct.close();
    }
    expect(hidden).toBeDefined();
    const [name, { iface }] = hidden as [number, { iface: string }];
    const r = await st.vm.run(
      ["/usr/bin/node", "--import", "tsx", join(CHECKOUT, "test/vm/raw-guest-attacker.ts")],
      {
        env: { ...GUEST_ENV, HOME: "/root", ATTACK_HIDDEN_NAME: String(name), ATTACK_HIDDEN_IFACE: iface },
        // `--import tsx` resolves from the working directory: the checkout (the guest sees the host's root).
        cwd: CHECKOUT,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
      globals: Record<string, number>;
      versionBind?: { code: number; message: string };
      hiddenBind?: { code: number; message: string };
    };
    expect(got.globals.wl_output).toBe(2);
    expect(got.globals[iface]).toBeUndefined();
    expect(got.versionBind?.message).toMatch(
      /^invalid version for global wl_output \(\d+\): have 2, wanted 3$/,
    );
    expect(got.hiddenBind).toEqual({ objectId: 2, code: 0, message: `invalid global ${iface} (${name})` });
    const rules = filter.auditRecords().map((a) => a.rule);
    expect(rules.filter((x) => x === "globals").length).toBeGreaterThanOrEqual(2);
    expect(filter.running()).toBe(true);
  });
});
