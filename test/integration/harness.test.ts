// The real-peer harness end to end: weston, sway and PipeWire start, answer real clients, and leave no process.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire } from "../helpers/pipewire.ts";
import { countColor, readPng } from "../helpers/png.ts";
import {
  descendants,
  isAlive,
  type ProcessId,
  processId,
  requireCommand,
  run,
  spawnTracked,
  waitFor,
} from "../helpers/processes.ts";
import { startSway } from "../helpers/sway.ts";
import { startWeston, waylandRoundtrip } from "../helpers/weston.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-harness-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `pid` and every process under it now, to check after stop() that each one is gone. */
function treeNow(pid: number): ProcessId[] {
  const self = processId(pid);
  return [...(self === undefined ? [] : [self]), ...descendants(pid)];
}

describe("requireCommand", () => {
  it("names the Debian package of a missing tool", () => {
    expect(() => requireCommand("crossway-no-such-tool", "crossway-no-such-package")).toThrow(
      /crossway-no-such-tool not found: install Debian package 'crossway-no-such-package'/,
    );
  });
});

describe("weston", () => {
  it("starts headless, answers wayland-info, screenshots, and stops without leftovers", async () => {
    requireCommand("wayland-info", "wayland-utils");
    const weston: Compositor = await startWeston({ width: 640, height: 480 });
    let ids: ProcessId[] = [];
    try {
      ids = treeNow(weston.pid);
      expect(weston.socketPath).toBe(join(weston.runtimeDir, weston.displayName));
      const info = await run("wayland-info", [], { env: weston.env, timeoutMs: 60_000 });
      expect(info.code, info.stderr.toString()).toBe(0);
      expect(info.stdout.toString()).toMatch(/interface: 'wl_compositor'/);
      expect(info.stdout.toString()).toMatch(
        /interface: 'weston_screenshooter'|interface: 'weston_capture_v1'/,
      );
      // weston-image shows a solid red PNG; desktop-shell places it anywhere, so pixels are counted, not located.
      requireCommand("weston-image", "weston");
      const red = new PNG({ width: 100, height: 80 });
      for (let i = 0; i < red.data.length; i += 4) red.data.set([255, 0, 0, 255], i);
      const redPath = join(scratch, "red.png");
      writeFileSync(redPath, PNG.sync.write(red));
      const viewer = spawnTracked("weston-image", "weston-image", [redPath], { env: weston.env });
      try {
        const shot = join(scratch, "weston.png");
        const seen = await waitFor(
          "weston-image's red pixels in a weston-screenshooter screenshot",
          async () => {
            await weston.screenshot(shot);
            const img = readPng(shot);
            expect([img.width, img.height]).toEqual([640, 480]);
            const c = countColor(img, [255, 0, 0]);
            return c.count >= 100 * 80 ? c : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 200 },
        );
        expect(seen.bbox).toBeDefined();
      } finally {
        await viewer.stop();
      }
    } finally {
      await weston.stop();
    }
    await weston.stop(); // idempotent
    for (const id of ids) expect(isAlive(id), `weston pid ${id.pid}`).toBe(false);
  });
});

describe("Wayland readiness probe", () => {
  it("a round trip lists the globals a real weston announces", async () => {
    const weston = await startWeston();
    try {
      const r = await waylandRoundtrip(weston.socketPath);
      expect(r.globals).toContain("wl_compositor");
      expect(r.globals).toContain("wl_shm");
    } finally {
      await weston.stop();
    }
  });

  it("a listener that accepts and closes without answering is not ready", async () => {
    // What weston 10 looks like between creating its socket and exiting on a bad option.
    const path = join(scratch, "mute.sock");
    const server = createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(path, r));
    try {
      await expect(waylandRoundtrip(path, 5000)).rejects.toThrow(
        /(closed the connection|EPIPE|ECONNRESET) before wl_callback.done/,
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe("weston start failures", () => {
  it("reports weston's own log when it refuses to start, and leaves nothing behind", async () => {
    const err = await startWeston({ extraArgs: ["--crossway-bogus-option"] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "CW_HARNESS_START" });
    expect(String((err as Error).message)).toMatch(/unhandled option: --crossway-bogus-option/);
  });
});

describe("sway", () => {
  it("runs foot with a solid background and grim sees it; stops without leftovers", async () => {
    requireCommand("wayland-info", "wayland-utils");
    requireCommand("foot", "foot");
    requireCommand("grim", "grim");
    const sway = await startSway({ width: 800, height: 600, extraConfig: ["focus_follows_mouse no"] });
    // runuser, sway and swaybg (double-forked, same group; it appears shortly after the socket): the whole tree
    // is checked, not just our child.
    let ids: ProcessId[] = [];
    try {
      ids = await waitFor("sway's process tree", () => {
        const t = treeNow(sway.pid);
        return t.length >= 3 ? t : undefined;
      });
      const info = await run("wayland-info", [], { env: sway.env, timeoutMs: 60_000 });
      expect(info.code, info.stderr.toString()).toBe(0);
      expect(info.stdout.toString()).toMatch(/interface: 'wl_seat'/);
      expect(info.stdout.toString()).toMatch(/interface: 'zwlr_screencopy_manager_v1'/);
      requireCommand("swaymsg", "sway");
      const outputs = await run("swaymsg", ["-t", "get_outputs", "-r"], { env: sway.env, timeoutMs: 60_000 });
      expect(outputs.code, outputs.stderr.toString()).toBe(0);
      expect(JSON.parse(outputs.stdout.toString())).toMatchObject([
        { name: "HEADLESS-1", current_mode: { width: 800, height: 600 } },
      ]);
      const config = await run("swaymsg", ["-t", "get_config", "-r"], { env: sway.env, timeoutMs: 60_000 });
      expect(config.stdout.toString()).toContain("focus_follows_mouse no");

      const footIni = join(scratch, "foot.ini");
      writeFileSync(
        footIni,
        "[colors]\nbackground=0000ff\nforeground=ffffff\n[main]\nfont=DejaVu Sans Mono:size=8\n",
      );
      const foot = spawnTracked("foot", "foot", ["-c", footIni, "sh", "-c", "sleep 60"], { env: sway.env });
      ids.push(...treeNow(foot.pid));
      try {
        const shot = join(scratch, "sway.png");
        // The tiled window fills the 800x600 output once foot has drawn its first frame (~260 ms here).
        const blue = await waitFor(
          "foot's blue background in a grim screenshot",
          async () => {
            await sway.screenshot(shot);
            const c = countColor(readPng(shot), [0, 0, 255]);
            return c.count > 400_000 ? c : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        expect(blue.bbox).toEqual({ x0: 0, y0: 0, x1: 799, y1: 599 });
      } finally {
        await foot.stop();
      }
    } finally {
      await sway.stop();
    }
    for (const id of ids) expect(isAlive(id), `pid ${id.pid}`).toBe(false);
  });
});

describe("pipewire", () => {
  it("starts dbus + pipewire + wireplumber, answers pw-cli info 0, and stops without leftovers", async () => {
    const pw: PipeWireStack = await startPipeWire();
    let ids: ProcessId[] = [];
    try {
      ids = pw.pids.map((p) => processId(p)).filter((p): p is ProcessId => p !== undefined);
      expect(ids).toHaveLength(3);
      const info = await run("pw-cli", ["info", "0"], { env: pw.env, timeoutMs: 60_000 });
      expect(info.code, info.stderr.toString()).toBe(0);
      expect(info.stdout.toString()).toMatch(/core\.daemon = "true"/);
      expect(info.stdout.toString()).toMatch(/name: "pipewire-0"/);
      const nodes = await run("pw-cli", ["ls", "Node"], { env: pw.env, timeoutMs: 60_000 });
      expect(nodes.stdout.toString()).toContain('node.name = "testsink"');
    } finally {
      await pw.stop();
    }
    for (const id of ids) expect(isAlive(id), `pipewire-stack pid ${id.pid}`).toBe(false);
  });
});
