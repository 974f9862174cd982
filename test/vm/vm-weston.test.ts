// VM tier (issue 11): crossway guest --device virtgpu inside a QEMU 10 + rutabaga 0.1.2 guest (TCG), through the
// kernel's virtio_gpu and QEMU's real cross-domain, against a headless weston on the host. One boot, many checks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHECKOUT } from "../../src/harness/vm.ts";
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

  it("crossway doctor --guest in the VM: the real device passes, and its round trip sees weston's globals", async () => {
    const direct = await run("wayland-info", [], { env: weston.env, timeoutMs: 10_000 });
    const n = (direct.stdout.toString().match(/^interface: '/gm) ?? []).length;
    const r = await st.vm.run(
      ["/usr/bin/node", `${CHECKOUT}/bin/crossway.js`, "doctor", "--guest", "--json"],
      {
        env: GUEST_ENV,
        timeoutMs: 240_000,
      },
    );
    say(`crossway doctor --guest in the VM: exit ${r.code} in ${r.ms} ms`);
    const found = JSON.parse(r.stdout) as Array<{ status: string; check: string; detail: string }>;
    for (const f of found) say(`  ${f.status} ${f.check}: ${f.detail}`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const by = (check: string) => found.find((f) => f.check === check);
    expect(by("virtio-gpu node")?.detail).toMatch(/^\/dev\/dri\/renderD\d+ \(driver virtio_gpu;/);
    for (const c of [
      "3D features",
      "resource blobs",
      "host-visible memory",
      "context init",
      "Wayland channel",
    ])
      expect(by(c)?.status, c).toBe("ok");
    // rutabaga 0.1.2: SUPPORTED_CAPSET_IDs 0x20, supported_channels 0x2 (Wayland only), no dmabuf (RECIPE.md).
    expect(by("capsets")?.detail).toBe("0x20 (cross-domain) includes cross-domain (5)");
    expect(by("cross-domain caps")?.detail).toBe("version 1, supported_channels 0x2");
    expect(by("PipeWire channel")?.status).toBe("warn");
    expect(by("host dmabuf")?.status).toBe("warn");
    expect(by("Wayland round trip")?.status).toBe("ok");
    expect(by("Wayland round trip")?.detail).toContain(`the host compositor answers: ${n} globals`);
    expect(by("Wayland round trip")?.detail).toMatch(/; the host parses 4 identifier slots$/);
  });

  it("a guest fixed to 28 identifier slots gets a clear layout error from this 4-slot host, not garbage", async () => {
    // The default proxy learned the layout (everything above went through it); this one is told the wrong one.
    const wrong = await st.vm.spawn(
      ["/usr/bin/node", `${CHECKOUT}/bin/crossway.js`, "guest", "--device", "virtgpu", "--identifiers", "28"],
      { env: { XDG_RUNTIME_DIR: "/run/user/0", CROSSWAY_LOG: "info" } },
    );
    try {
      const line = await wrong.waitLine(
        /WAYLAND_DISPLAY=(wayland-\d+)/,
        240_000,
        "crossway guest --identifiers 28",
      );
      const display = /WAYLAND_DISPLAY=(wayland-\d+)/.exec(line)![1]!;
      const r = await st.vm.run(["wayland-info"], { env: { ...GUEST_ENV, WAYLAND_DISPLAY: display } });
      // wayland-info may exit 0 on a closed connection; what matters is that it saw no global at all.
      expect(globalsOf(r.stdout).size, r.stdout).toBe(0);
      const err = await wrong.waitLine(/CW_CROSSDOMAIN_LAYOUT|identifier slots/, 60_000, "the layout error");
      say(`guest fixed to 28 slots: ${err.slice(0, 300)}`);
      expect(err).toContain("the host parses 4 identifier slots per SEND/RECEIVE, the guest is set to 28");
    } finally {
      await wrong.kill("SIGKILL");
      await wrong.exited;
    }
  });

  it("a virtgpu ioctl asleep in the real kernel stalls only its context: another's round trips flow", async () => {
    // test/vm/stall-probe.ts: context A's RESOURCE_CREATE_BLOB sleeps in virtio_gpu's ioctl (its argument on a
    // userfaultfd page filled only later) while context B makes 20 wl_display.sync round trips to weston via QEMU.
    const r = await st.vm.run(
      ["/usr/bin/node", "--import", "tsx", `${CHECKOUT}/test/vm/stall-probe.ts`, "20"],
      {
        env: { ...GUEST_ENV, HOME: "/root" },
        cwd: CHECKOUT,
        timeoutMs: 240_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
      roundTrips: number;
      maxRoundTripMs: number;
      aOpenedDuringB: boolean;
      aRoundTripMs: number;
    };
    say(
      `stalled context: B made ${out.roundTrips} round trips (slowest ${out.maxRoundTripMs} ms) while A's CREATE_BLOB slept in the kernel; A then answered in ${out.aRoundTripMs} ms`,
    );
    expect(out.roundTrips).toBe(20);
    expect(out.aOpenedDuringB, "A could not get past its sleeping ioctl").toBe(false);
  });

  it("a burst of 1000 wl_display.sync in one write crosses as batched SENDs: every callback back, in order", async () => {
    // 12 KB in one write: crossway guest reads up to 8 KiB at a time and sends each read as SENDs of at most 3744
    // bytes, several in one EXECBUFFER. QEMU's rutabaga must walk them all by cmd_size for weston to answer each.
    const r = await st.vm.run(
      ["/usr/bin/node", "--import", "tsx", `${CHECKOUT}/test/vm/sync-burst-probe.ts`, "1000"],
      { env: { ...GUEST_ENV, HOME: "/root" }, cwd: CHECKOUT, timeoutMs: 180_000 },
    );
    say(`sync burst in the guest: ${r.stdout.trim()} (exit ${r.code})`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(out).toMatchObject({
      why: "complete",
      sent: 1000,
      done: 1000,
      deleted: 1000,
      inOrder: true,
      errors: 0,
    });
  });

  it("the VM's agent answers a command whose descendant keeps its output open (and the next one)", async () => {
    // setsid leaves the process group the agent kills at a timeout: only the agent's exit grace can answer.
    const r = await st.vm.run(["sh", "-c", "setsid sleep 120 & echo started"], { timeoutMs: 60_000 });
    expect(r).toMatchObject({ code: 0, stdout: "started\n" });
    expect(r.stderr).toContain("a descendant holds it");
    expect(r.ms).toBeLessThan(60_000);
    const next = await st.vm.run(["echo", "next"]);
    expect(next.stdout).toBe("next\n");
  });

  it("the proxy logged no error in the guest", () => {
    const bad = st.proxy.lines.filter((l) => /"level":(50|60)/.test(l));
    expect(bad).toEqual([]);
  });
});
