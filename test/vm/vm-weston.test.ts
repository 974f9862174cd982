// VM tier (issue 11): crossway guest --device virtgpu inside a QEMU 10 + rutabaga 0.1.2 guest (TCG), through the
// kernel's virtio_gpu and QEMU's real cross-domain, against a headless weston on the host. One boot, many checks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { expectedGlobals, globalsOf } from "../helpers/globals.ts";
import { run } from "../helpers/processes.ts";
import { frameStats, GUEST_ENV, say, startVmStack, type VmStack, vmSkipped } from "../helpers/vm.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const skipped = vmSkipped();
if (skipped) say("VM tier skipped (CROSSWAY_SKIP_VM=1)");

describe.skipIf(skipped)("crossway guest in a QEMU + rutabaga VM, host weston", () => {
  let weston: Compositor;
  let st: VmStack;

  beforeAll(async () => {
    weston = await startWeston();
    st = await startVmStack(weston);
  });

  afterAll(async () => {
    await st?.stop();
    await weston?.stop();
  });

  it("finds the virtio_gpu node through its virtio-pci parent (sysfs as the guest kernel lays it out)", async () => {
    const r = await st.vm.run([
      "sh",
      "-c",
      "for n in /sys/class/drm/renderD*; do echo $n $(readlink $n/device/driver) $(readlink $n/device/virtio*/driver); done",
    ]);
    say(`guest sysfs: ${r.stdout.trim()}`);
    expect(r.stdout).toMatch(/renderD128 \S*virtio-pci \S*virtio_gpu/);
  });

  it("wayland-info in the guest lists the host's globals as the policy allows", async () => {
    const direct = await run("wayland-info", [], { env: weston.env, timeoutMs: 10_000 });
    const r = await st.vm.run(["wayland-info"], { env: GUEST_ENV, timeoutMs: 120_000 });
    say(`wayland-info in the guest: exit ${r.code} in ${r.ms} ms, ${globalsOf(r.stdout).size} globals`);
    expect(r.code, r.stderr).toBe(0);
    const d = globalsOf(direct.stdout.toString());
    expect(d.size).toBeGreaterThan(5);
    expect(globalsOf(r.stdout)).toEqual(expectedGlobals(d));
  });

  for (const client of ["weston-simple-shm", "weston-simple-damage"]) {
    it(`runs ${client} in the guest: frames drawn, committed and released`, async () => {
      const r = await st.vm.run(["timeout", "15", client], {
        env: { ...GUEST_ENV, WAYLAND_DEBUG: "1" },
        timeoutMs: 120_000,
      });
      const s = frameStats(r.stderr);
      say(`${client} in the guest for 15 s: ${s.done} frame callbacks, ${s.release} buffer releases`);
      // timeout(1) ends it: 124. Anything else is the client failing.
      expect(r.code, r.stderr.slice(-2000)).toBe(124);
      expect(s.errors).toBe("");
      expect(s.done).toBeGreaterThan(10);
      expect(s.release).toBeGreaterThan(5);
    });
  }

  it("the proxy logged no error in the guest", () => {
    const bad = st.proxy.lines.filter((l) => /"level":(50|60)/.test(l));
    expect(bad).toEqual([]);
  });
});
