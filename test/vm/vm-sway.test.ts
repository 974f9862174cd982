// VM tier (issue 11): crossway guest --device virtgpu inside a QEMU 10 + rutabaga 0.1.2 guest (TCG) against a
// headless sway on the host: policy, foot pixel-identical to the host's own foot, keymap, clipboard both ways,
// concurrent, killed and garbage clients, and QEMU's host fds after 100 clients. One boot, many checks.
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHECKOUT } from "../../src/harness/vm.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { expectedGlobals, globalsOf } from "../helpers/globals.ts";
import { countColor, diffPngs, readPng } from "../helpers/png.ts";
import { countHoldingStill } from "../helpers/process-fds.ts";
import { run, sleep, spawnTracked, waitFor } from "../helpers/processes.ts";
import { stableShot as stableShotOf } from "../helpers/stable-shot.ts";
import { startSway } from "../helpers/sway.ts";
import { addVirtualKeyboard, type VirtualKeyboard } from "../helpers/virtual-keyboard.ts";
import { GUEST_ENV, GUEST_SHARE, say, startVmStack, type VmStack, vmSkipped } from "../helpers/vm.ts";

useFdLeakCheck();

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const skipped = vmSkipped();
if (skipped) say("VM tier skipped (CROSSWAY_SKIP_VM=1)");

/** Settling time for QEMU's fds after the last guest client: each context's teardown crosses the VMM's threads. */
const FD_SETTLE_TIMEOUT_MS = 60_000;

describe.skipIf(skipped)("crossway guest in a QEMU + rutabaga VM, host sway", () => {
  let sway: Compositor;
  let keyboard: VirtualKeyboard;
  let st: VmStack;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "crossway-vm-sway-"));
    sway = await startSway({ width: 800, height: 600 });
    // Headless sway has a seat but no keyboard: a virtual one gives focus, keymaps and selections a meaning.
    keyboard = await addVirtualKeyboard(sway.socketPath);
    st = await startVmStack(sway);
  });

  afterAll(async () => {
    await st?.stop();
    keyboard?.close();
    await sway?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("wayland-info in the guest lists the host's globals as the policy allows, privileged ones hidden", async () => {
    const direct = await run("wayland-info", [], { env: sway.env, timeoutMs: 10_000 });
    const r = await st.vm.run(["wayland-info"], { env: GUEST_ENV });
    say(`wayland-info in the guest: exit ${r.code} in ${r.ms} ms, ${globalsOf(r.stdout).size} globals`);
    expect(r.code, r.stderr).toBe(0);
    const d = globalsOf(direct.stdout.toString());
    const p = globalsOf(r.stdout);
    expect(d.has("wl_seat")).toBe(true);
    expect(p).toEqual(expectedGlobals(d));
    for (const hidden of [
      "zwlr_screencopy_manager_v1",
      "zwlr_data_control_manager_v1",
      "zwlr_layer_shell_v1",
    ]) {
      if (d.has(hidden)) expect(p.has(hidden), hidden).toBe(false);
    }
  });

  const FOOT_INI =
    "[main]\nfont=DejaVu Sans Mono:size=10\n[colors]\nbackground=1030a0\nforeground=f0f0f0\n[cursor]\nblink=no\n";
  const FOOT_TEXT = "printf 'crossway pixel test\\n0123456789 ABCDEF'; sleep 600";

  /** Screenshot once the terminal's background fills the output and two shots in a row agree (it is static). */
  const stableShot = (file: string, timeoutMs: number) =>
    stableShotOf(sway, file, [0x10, 0x30, 0xa0], { timeoutMs, intervalMs: 300 });

  it("draws foot from the VM pixel-identical to foot run on the host", async () => {
    writeFileSync(join(dir, "foot.ini"), FOOT_INI);
    copyFileSync(join(dir, "foot.ini"), join(st.vm.shareDir, "foot.ini"));
    const direct = spawnTracked(
      "foot on the host",
      "foot",
      ["-c", join(dir, "foot.ini"), "sh", "-c", FOOT_TEXT],
      {
        env: sway.env,
      },
    );
    try {
      await stableShot(join(dir, "direct.png"), 60_000);
    } finally {
      await direct.stop();
    }
    await sleep(500);
    const t0 = Date.now();
    const foot = await st.vm.spawn(["foot", "-c", `${GUEST_SHARE}/foot.ini`, "sh", "-c", FOOT_TEXT], {
      env: GUEST_ENV,
    });
    try {
      await stableShot(join(dir, "vm.png"), 240_000);
      say(`foot in the VM drawn and stable on the host after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } finally {
      await foot.kill("SIGKILL");
      await foot.exited;
    }
    const a = readPng(join(dir, "direct.png"));
    const b = readPng(join(dir, "vm.png"));
    expect(countColor(a, [0xf0, 0xf0, 0xf0], 40).count).toBeGreaterThan(50);
    expect(diffPngs(a, b)).toEqual({ sameSize: true, differing: 0 });
  });

  it("hands the guest client the host's keymap intact (same bytes as a host client gets)", async () => {
    const probe = join(CHECKOUT, "test/vm/keymap-probe.ts");
    const host = await run(process.execPath, ["--import", "tsx", probe], {
      env: { ...sway.env, WAYLAND_SOCKET_PATH: sway.socketPath },
      cwd: CHECKOUT,
      timeoutMs: 60_000,
    });
    expect(host.code, host.stderr.toString()).toBe(0);
    const want = JSON.parse(host.stdout.toString()) as { sha256: string; size: number };
    const r = await st.vm.run(["/usr/bin/node", "--import", "tsx", probe], {
      env: { ...GUEST_ENV, HOME: "/root" },
      cwd: CHECKOUT,
    });
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as { format: number; sha256: string; size: number; head: string };
    say(`keymap in the guest: ${got.size} bytes, sha256 ${got.sha256.slice(0, 16)}…`);
    expect(got).toMatchObject({ format: 1, head: "xkb_keymap", size: want.size, sha256: want.sha256 });
  });

  it("copies 1 MiB from a guest app to a host app with identical SHA-256", async () => {
    const data = randomBytes(1024 * 1024);
    writeFileSync(join(st.vm.shareDir, "clip-out.bin"), data);
    const copier = await st.vm.spawn(
      ["sh", "-c", `exec wl-copy --foreground -t application/octet-stream < ${GUEST_SHARE}/clip-out.bin`],
      { env: GUEST_ENV },
    );
    try {
      await waitFor(
        "the guest's selection on the host",
        async () => {
          const t = await run("wl-paste", ["--list-types"], { env: sway.env, timeoutMs: 10_000 });
          return t.stdout.toString().includes("application/octet-stream") ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      const paste = await run("wl-paste", ["-t", "application/octet-stream"], {
        env: sway.env,
        timeoutMs: 120_000,
      });
      expect(paste.code, paste.stderr.toString()).toBe(0);
      say(`guest → host clipboard: ${paste.stdout.length} bytes`);
      expect(paste.stdout.length).toBe(data.length);
      expect(sha256(paste.stdout)).toBe(sha256(data));
    } finally {
      await copier.kill("SIGKILL");
      await copier.exited;
    }
  });

  it("copies 1 MiB from a host app to a guest app with identical SHA-256", async () => {
    const data = randomBytes(1024 * 1024);
    const file = join(dir, "clip-in.bin");
    writeFileSync(file, data);
    const copier = spawnTracked(
      "wl-copy on the host",
      "sh",
      ["-c", `exec wl-copy --foreground -t application/octet-stream < '${file}'`],
      { env: sway.env },
    );
    try {
      await waitFor(
        "the host's selection in the guest",
        async () => {
          const t = await st.vm.run(["wl-paste", "--list-types"], { env: GUEST_ENV });
          return t.stdout.includes("application/octet-stream") ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      const r = await st.vm.run(
        ["sh", "-c", "wl-paste -t application/octet-stream | sha256sum; echo rc=$?"],
        {
          env: GUEST_ENV,
        },
      );
      say(`host → guest clipboard: ${r.stdout.trim()}`);
      expect(r.stdout).toContain(`${sha256(data)}  -`);
    } finally {
      await copier.stop();
    }
  });

  it("serves 20 concurrent guest clients", async () => {
    const r = await st.vm.run(
      [
        "sh",
        "-c",
        'for i in $(seq 20); do (wayland-info > /tmp/wi.$i 2>&1; echo "$i $? $(grep -c "interface: \'wl_compositor\'" /tmp/wi.$i)") & done; wait',
      ],
      { env: GUEST_ENV, timeoutMs: 300_000 },
    );
    const lines = r.stdout
      .trim()
      .split("\n")
      .filter((l) => /^\d+ /.test(l))
      .sort();
    const bad = lines.find((l) => !/ 0 1$/.test(l));
    if (bad !== undefined) {
      const out = await st.vm.run(["sh", "-c", `cat /tmp/wi.${bad.split(" ")[0]}`]);
      say(`a failed concurrent client's output: ${out.stdout.slice(0, 3000)}`);
    }
    say(
      `20 concurrent wayland-info in the guest: ${lines.filter((l) => / 0 1$/.test(l)).length} ok in ${r.ms} ms`,
    );
    expect(lines).toHaveLength(20);
    for (const l of lines) expect(l).toMatch(/^\d+ 0 1$/);
  });

  it("a client killed mid-message and a garbage client end alone; the next client works", async () => {
    const sock = `${GUEST_ENV.XDG_RUNTIME_DIR}/${GUEST_ENV.WAYLAND_DISPLAY}`;
    // Half a wl_display.get_registry header, then SIGKILL before the rest.
    const killed = await st.vm.run([
      "/usr/bin/node",
      "-e",
      `const s=require("net").connect(${JSON.stringify(sock)},()=>{s.write(Buffer.from([1,0,0,0,1,0]),()=>process.kill(process.pid,"SIGKILL"))})`,
    ]);
    expect(killed.signal).toBe("SIGKILL");
    // 64 bytes of garbage: an impossible header; the proxy must drop this client (EOF), nobody else.
    const garbage = await st.vm.run([
      "/usr/bin/node",
      "-e",
      `const s=require("net").connect(${JSON.stringify(sock)},()=>s.write(Buffer.alloc(64,0xff)));s.on("data",()=>{});s.on("close",()=>{console.log("closed by the proxy");});s.on("error",e=>console.log("error",e.code))`,
    ]);
    say(`garbage client: ${garbage.stdout.trim()}`);
    expect(garbage.stdout).toMatch(/closed by the proxy|error ECONNRESET/);
    const after = await st.vm.run(["wayland-info"], { env: GUEST_ENV });
    expect(after.code, after.stderr).toBe(0);
    expect(globalsOf(after.stdout).has("wl_compositor")).toBe(true);
  });

  it("leaves QEMU's host fd count where it was after 100 guest clients", async () => {
    // The baseline once the count holds still: the previous test's last client's context may still be closing in
    // QEMU, and the guest opens its next spare channel (a context of its own) 20 ms after a client takes one. Read at
    // once, a loaded run once took 111 (one context more) against the 105 every other run reads.
    const before = await countHoldingStill(() => st.vm.qemuFdCount(), 5, 250);
    // Each client gets 30 s (one takes about 0.15 s here), and the loop stops at the first that fails or hangs:
    // the failure then names that client, and the proxy's last log lines say what its connection was waiting for.
    const r = await st.vm.run(
      [
        "sh",
        "-c",
        'n=0; for i in $(seq 100); do timeout 30 wayland-info > /dev/null 2>&1; c=$?; if [ $c != 0 ]; then echo "client $i: exit $c"; break; fi; n=$((n+1)); done; echo $n',
      ],
      { env: GUEST_ENV, timeoutMs: 300_000 },
    );
    expect(r.stdout.trim(), `proxy log:\n${st.proxy.lines.slice(-60).join("\n")}`).toBe("100");
    let after = st.vm.qemuFdCount();
    const t0 = Date.now();
    while (after !== before && Date.now() - t0 < FD_SETTLE_TIMEOUT_MS) {
      await sleep(500);
      after = st.vm.qemuFdCount();
    }
    say(`QEMU host fds: ${before} before 100 guest clients (${(r.ms / 1000).toFixed(1)} s), ${after} after`);
    expect(after).toBe(before);
  });

  it("the proxy logged no error in the guest", () => {
    const bad = st.proxy.lines.filter((l) => /"level":(50|60)/.test(l));
    expect(bad).toEqual([]);
  });
});
