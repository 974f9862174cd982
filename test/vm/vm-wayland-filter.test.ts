// VM tier: QEMU's cross-domain Wayland channel (wayland-socket-path) connected to crossway wayland-filter in front of
// headless sway. crossway guest in the VM sees the VM's policy, and a guest process that bypasses it and writes
// raw Wayland into its own virtgpu channel is refused by the filter on the host, while sway and other clients go on.
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

/** Node loads the attacker's TypeScript under TCG in tens of seconds on a loaded host; it prints one line. */
const ATTACKER_TIMEOUT_MS = 300_000;

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

  it("refuses a guest process that bypasses crossway guest (hidden global, higher version); sway and another client go on", async () => {
    // The hidden global's name as sway numbers it: an attacker could learn it from any unfiltered source.
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
    const auditsBefore = filter.auditRecords().length;
    say("running the raw attacker in the VM");
    const r = await st.vm.run(
      ["/usr/bin/node", "--import", "tsx", join(CHECKOUT, "test/vm/raw-guest-attacker.ts")],
      {
        env: { ...GUEST_ENV, HOME: "/root", ATTACK_HIDDEN_NAME: String(name), ATTACK_HIDDEN_IFACE: iface },
        // `--import tsx` resolves from the working directory: the checkout (the guest sees the host's root).
        cwd: CHECKOUT,
        timeoutMs: ATTACKER_TIMEOUT_MS,
      },
    );
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    const got = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
      globals: Record<string, number>;
      versionBind?: { objectId: number; code: number; message: string };
      hiddenBind?: { objectId: number; code: number; message: string };
      after?: { roundTripMs: number; eof: boolean; displayError: unknown };
      error?: string;
    };
    say(`attacker: ${JSON.stringify(got)}`);
    say(
      `filter: ${filter
        .logRecords()
        .map((l) => `${String(l.client ?? "")} ${String(l.msg ?? "")} ${String(l.reason ?? l.detail ?? "")}`)
        .join(" | ")}`,
    );
    // What the raw channel is shown is the policy's view, exactly as crossway guest sees it.
    expect(got.globals.wl_output).toBe(2);
    expect(got.globals[iface]).toBeUndefined();
    expect(got.globals.wl_compositor).toBeGreaterThan(0);
    // libwayland's own invalid_object (code 0) on wl_registry@2, with its wording.
    expect(got.versionBind).toEqual({
      objectId: 2,
      code: 0,
      message: expect.stringMatching(/^invalid version for global wl_output \(\d+\): have 2, wanted 3$/),
    });
    expect(got.hiddenBind).toEqual({ objectId: 2, code: 0, message: `invalid global ${iface} (${name})` });
    expect(got.error).toBeUndefined();
    expect(got.after).toMatchObject({ eof: false, displayError: null });
    const audits = filter.auditRecords().slice(auditsBefore);
    expect(audits.filter((a) => a.rule === "globals" && a.action === "disconnected")).toHaveLength(2);
    expect(audits.every((a) => a.vm === "vmA" && a.rule === "globals")).toBe(true);
    // The filter and sway are unaffected, and crossway guest's clients in the VM still work after the attack.
    expect(filter.running()).toBe(true);
    const after = RawWaylandClient.connect(sway.socketPath);
    try {
      await after.roundTrip();
    } finally {
      after.close();
    }
    const again = await st.vm.run(["wayland-info"], { env: GUEST_ENV });
    expect(again.code, again.stderr).toBe(0);
    expect(globalsOf(again.stdout).get("wl_output")).toBe(2);
  });
});
