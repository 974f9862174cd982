// Real apps through the whole chain a VM client takes, guest proxy + device + host-side filter with the default
// policy (`--name vm`), against headless sway: the globals are the guest proxy's, foot and weston-terminal draw and
// are tagged on the host, and the clipboard works both ways (the default allows it).
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { tempDir } from "../helpers/crossdomain.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { expectedGlobals, globalsOf } from "../helpers/globals.ts";
import { countColor, readPng } from "../helpers/png.ts";
import { requireCommand, run, sleep, spawnTracked, type TrackedProcess } from "../helpers/processes.ts";
import { startSway } from "../helpers/sway.ts";
import { addVirtualKeyboard, type VirtualKeyboard } from "../helpers/virtual-keyboard.ts";
import { startWaylandFilterProcess, type WaylandFilterProcess } from "../helpers/wayland-filter.ts";
import { serveHostSelection } from "../helpers/wayland-filter-attacks.ts";

useFdLeakCheck();

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Named deadlines: apps start slowly on a loaded 2-core machine. */
const APP_WINDOW_MS = 30_000;
const CLIPBOARD_MS = 30_000;

interface View {
  name?: string | null;
  app_id?: string | null;
  nodes?: View[];
  floating_nodes?: View[];
}

describe("apps through crossway guest + device + wayland-filter (default policy) on headless sway", () => {
  let sway: Compositor;
  let keyboard: VirtualKeyboard;
  let filter: WaylandFilterProcess;
  let stack: CrosswayStack;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    for (const [cmd, pkg] of [
      ["wayland-info", "wayland-utils"],
      ["foot", "foot"],
      ["weston-terminal", "weston"],
      ["grim", "grim"],
      ["swaymsg", "sway"],
      ["wl-copy", "wl-clipboard"],
      ["wl-paste", "wl-clipboard"],
    ] as const) {
      requireCommand(cmd, pkg);
    }
    tmp = tempDir("crossway-wlfilter-apps-");
    sway = await startSway();
    keyboard = await addVirtualKeyboard(sway.socketPath);
    filter = await startWaylandFilterProcess(sway, { name: "vm" });
    stack = await startCrosswayStack(filter.asCompositor());
  });

  afterAll(async () => {
    await stack?.stop();
    await filter?.stop();
    keyboard?.close();
    await sway?.stop();
    tmp?.remove();
  });

  /** The view whose app_id matches, once sway's tree has it (a named deadline, polled). */
  async function waitForView(match: (v: View) => boolean, what: string): Promise<View> {
    const deadline = Date.now() + APP_WINDOW_MS;
    for (;;) {
      const r = await run("swaymsg", ["-t", "get_tree", "-r"], { env: sway.env, timeoutMs: 5000 });
      const found: View[] = [];
      const walk = (n: View): void => {
        if (match(n)) found.push(n);
        for (const c of [...(n.nodes ?? []), ...(n.floating_nodes ?? [])]) walk(c);
      };
      if (r.code === 0) walk(JSON.parse(r.stdout.toString()) as View);
      if (found[0] !== undefined) return found[0];
      if (Date.now() > deadline)
        throw new Error(`${what}: no window in sway's tree after ${APP_WINDOW_MS} ms`);
      await sleep(100);
    }
  }

  it("shows the guest proxy's globals and versions: the filter's default allowlist is the same", async () => {
    const direct = await run("wayland-info", [], { env: sway.env, timeoutMs: 20_000 });
    const chain = await run("wayland-info", [], { env: stack.env, timeoutMs: 20_000 });
    expect(chain.code, chain.stderr.toString()).toBe(0);
    expect(globalsOf(chain.stdout.toString())).toEqual(expectedGlobals(globalsOf(direct.stdout.toString())));
  });

  it("runs foot: it draws its background, and sway shows it tagged [vm] / vm.", async () => {
    const ini = join(tmp.dir, "foot.ini");
    writeFileSync(
      ini,
      "[main]\nfont=DejaVu Sans Mono:size=10\n[colors]\nbackground=1030a0\n[cursor]\nblink=no\n",
    );
    const foot: TrackedProcess = spawnTracked(
      "foot via filter",
      "foot",
      ["-c", ini, "--title", "term", "--app-id", "footapp", "sh", "-c", "sleep 60"],
      { env: stack.env },
    );
    try {
      const v = await waitForView((n) => n.app_id === "vm.footapp", "foot");
      expect(v.name).toBe("[vm] term");
      const shot = join(tmp.dir, "foot.png");
      let blue = 0;
      const deadline = Date.now() + APP_WINDOW_MS;
      while (Date.now() < deadline) {
        await sway.screenshot(shot);
        const img = readPng(shot);
        blue = countColor(img, [0x10, 0x30, 0xa0]).count;
        if (blue > (img.width * img.height) / 2) break;
        await sleep(150);
      }
      expect(blue).toBeGreaterThan(800 * 600 * 0.5);
    } finally {
      await foot.stop();
    }
  });

  it("runs weston-terminal, tagged", async () => {
    const term = spawnTracked("weston-terminal via filter", "weston-terminal", ["--shell=/bin/sh"], {
      env: stack.env,
    });
    try {
      const v = await waitForView(
        (n) => typeof n.app_id === "string" && n.app_id.startsWith("vm."),
        "weston-terminal",
      );
      expect(v.name?.startsWith("[vm] ")).toBe(true);
      expect(term.running).toBe(true);
    } finally {
      await term.stop();
    }
  });

  /** wl-copy --foreground of `data` in `from`, then wl-paste in `to`; returns what was pasted. */
  async function transfer(data: Buffer, from: Record<string, string>, to: Record<string, string>) {
    const file = join(tmp.dir, "clip.bin");
    writeFileSync(file, data);
    const copier = spawnTracked(
      "wl-copy",
      "sh",
      ["-c", `exec wl-copy -t application/octet-stream --foreground < '${file}'`],
      {
        env: from,
      },
    );
    try {
      const deadline = Date.now() + CLIPBOARD_MS;
      for (;;) {
        const types = await run("wl-paste", ["--list-types"], { env: to, timeoutMs: 10_000 });
        if (types.stdout.toString().includes("application/octet-stream")) break;
        if (Date.now() > deadline || !copier.running) throw new Error("wl-copy never set the selection");
        await sleep(100);
      }
      return await run("wl-paste", ["-t", "application/octet-stream"], { env: to, timeoutMs: CLIPBOARD_MS });
    } finally {
      await copier.stop();
    }
  }

  it("copies 1 MiB guest → host and host → guest with identical SHA-256", async () => {
    for (const [from, to] of [
      [stack.env, sway.env],
      [sway.env, stack.env],
    ] as const) {
      const data = randomBytes(1024 * 1024);
      const paste = await transfer(data, from, to);
      expect(paste.code, paste.stderr.toString()).toBe(0);
      expect(sha256(paste.stdout)).toBe(sha256(data));
    }
    expect(filter.running()).toBe(true);
  });

  it("keeps the primary selection on the host (the default policy has it off)", async () => {
    const secret = `primary-${randomBytes(6).toString("hex")}`;
    const copier = await serveHostSelection(sway, tmp.dir, secret, { primary: true });
    try {
      const guest = await run("wl-paste", ["--primary", "-n"], { env: stack.env, timeoutMs: CLIPBOARD_MS });
      expect(guest.stdout.toString()).not.toContain(secret);
    } finally {
      await copier.stop();
    }
  });

  it("has refused nothing a normal app did", () => {
    expect(filter.auditRecords().map((r) => `${r.rule} ${r.object}.${r.message}: ${r.detail}`)).toEqual([]);
    expect(filter.running()).toBe(true);
  });
});
