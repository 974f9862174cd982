// The guest proxy against headless sway: globals, foot and weston-terminal, pixel-identical screenshots,
// 16 MiB clipboard transfers both ways, and a keymap that reaches the client and maps.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { expectedGlobals, globalsOf } from "../helpers/globals.ts";
import { countColor, diffPngs, readPng } from "../helpers/png.ts";
import { requireCommand, run, spawnTracked, type TrackedProcess, waitFor } from "../helpers/processes.ts";
import { stableShot as stableShotOf } from "../helpers/stable-shot.ts";
import { startSway } from "../helpers/sway.ts";
import { addVirtualKeyboard, type VirtualKeyboard } from "../helpers/virtual-keyboard.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";

useFdLeakCheck();

/** How long a client may take to reach the screen or the tree on a loaded 2-core machine. */
const SCREEN_TIMEOUT_MS = 60_000;

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("crossway guest in front of headless sway", () => {
  let sway: Compositor;
  let stack: CrosswayStack;
  let keyboard: VirtualKeyboard;
  let dir: string;

  beforeAll(async () => {
    for (const [cmd, pkg] of [
      ["wayland-info", "wayland-utils"],
      ["foot", "foot"],
      ["weston-terminal", "weston"],
      ["grim", "grim"],
      ["wl-copy", "wl-clipboard"],
      ["wl-paste", "wl-clipboard"],
    ] as const) {
      requireCommand(cmd, pkg);
    }
    dir = mkdtempSync(join(tmpdir(), "crossway-guest-sway-"));
    sway = await startSway();
    // Headless sway has a seat but no keyboard: a virtual one gives focus, keymaps and selections a meaning.
    keyboard = await addVirtualKeyboard(sway.socketPath);
    stack = await startCrosswayStack(sway);
  });

  afterAll(async () => {
    await stack?.stop();
    keyboard?.close();
    await sway?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("lists exactly the globals and versions the policy allows from the direct run", async () => {
    const direct = await run("wayland-info", [], { env: sway.env, timeoutMs: 60_000 });
    const proxied = await run("wayland-info", [], { env: stack.env, timeoutMs: 60_000 });
    expect(proxied.code, proxied.stderr.toString()).toBe(0);
    const d = globalsOf(direct.stdout.toString());
    const p = globalsOf(proxied.stdout.toString());
    expect(d.has("wl_seat")).toBe(true);
    expect(p).toEqual(expectedGlobals(d));
    // Privileged wlroots globals stay hidden by default.
    for (const hidden of [
      "zwlr_screencopy_manager_v1",
      "zwlr_data_control_manager_v1",
      "zwlr_layer_shell_v1",
    ]) {
      if (d.has(hidden)) expect(p.has(hidden), hidden).toBe(false);
    }
  });

  /** Runs foot showing fixed text with a non-blinking cursor; returns the process (caller stops it). */
  function startFoot(env: Record<string, string>, name: string): TrackedProcess {
    const ini = join(dir, "foot.ini");
    writeFileSync(
      ini,
      "[main]\nfont=DejaVu Sans Mono:size=10\n[colors]\nbackground=1030a0\nforeground=f0f0f0\n[cursor]\nblink=no\n",
    );
    return spawnTracked(
      name,
      "foot",
      ["-c", ini, "sh", "-c", "printf 'crossway pixel test\\n0123456789 ABCDEF'; sleep 60"],
      {
        env,
      },
    );
  }

  /** The views (toplevels) in sway's tree now, with their app_id and title (`name`). */
  async function swayViews(): Promise<Array<{ name?: string; app_id?: string }>> {
    const tree = await run("swaymsg", ["-t", "get_tree", "-r"], { env: sway.env, timeoutMs: 30_000 });
    if (tree.code !== 0) throw new Error(`swaymsg get_tree failed: ${tree.stderr.toString()}`);
    const views: Array<{ name?: string; app_id?: string }> = [];
    const walk = (n: { name?: string; app_id?: string | null; pid?: number; nodes?: unknown[] }): void => {
      if (n.pid !== undefined && n.app_id !== undefined) views.push({ ...n, app_id: n.app_id ?? "" });
      for (const c of n.nodes ?? []) walk(c as typeof n);
    };
    walk(JSON.parse(tree.stdout.toString()) as Parameters<typeof walk>[0]);
    return views;
  }

  /** Screenshot once the terminal's background fills the output and two shots in a row agree (it is static). */
  const stableShot = (file: string) =>
    stableShotOf(sway, file, [0x10, 0x30, 0xa0], { timeoutMs: SCREEN_TIMEOUT_MS });

  it("runs foot, and its screenshot through crossway is pixel-identical to the direct one", async () => {
    const direct = startFoot(sway.env, "foot direct");
    let directShot: string;
    try {
      await stableShot(join(dir, "direct.png"));
      directShot = join(dir, "direct.png");
    } finally {
      await direct.stop();
    }
    // The next screenshots must not catch the direct terminal's last frame: wait until sway has unmapped it.
    await waitFor(
      "sway to unmap the direct foot",
      async () => ((await swayViews()).length === 0 ? true : undefined),
      {
        timeoutMs: SCREEN_TIMEOUT_MS,
        intervalMs: 50,
      },
    );
    const proxied = startFoot(stack.env, "foot through crossway");
    try {
      await stableShot(join(dir, "proxied.png"));
    } finally {
      await proxied.stop();
    }
    const a = readPng(directShot);
    const b = readPng(join(dir, "proxied.png"));
    // Text was drawn (not just the background), and every pixel matches.
    expect(countColor(a, [0xf0, 0xf0, 0xf0], 40).count).toBeGreaterThan(50);
    expect(diffPngs(a, b)).toEqual({ sameSize: true, differing: 0 });
  });

  it("runs weston-terminal through crossway", async () => {
    const term = spawnTracked("weston-terminal", "weston-terminal", ["--shell=/bin/sh"], { env: stack.env });
    try {
      const lit = await waitFor(
        "weston-terminal's window on sway's output",
        async () => {
          await sway.screenshot(join(dir, "wt.png"));
          const img = readPng(join(dir, "wt.png"));
          const n = img.width * img.height - countColor(img, [0, 0, 0]).count;
          return n > 10_000 ? n : undefined;
        },
        {
          timeoutMs: SCREEN_TIMEOUT_MS,
          intervalMs: 150,
          abort: () => (term.running ? undefined : "it exited"),
        },
      );
      expect(term.running).toBe(true);
      expect(lit).toBeGreaterThan(10_000);
    } finally {
      await term.stop();
    }
    expect(stack.guestRunning()).toBe(true);
  });

  /**
   * Copies `data` with `wl-copy --foreground` run in `copyEnv` and pastes it with wl-paste in `pasteEnv`. The
   * copying process serves the selection until it is stopped, so it runs tracked, not with run().
   */
  async function clipboardRoundTrip(
    data: Buffer,
    copyEnv: Record<string, string>,
    pasteEnv: Record<string, string>,
  ) {
    const file = join(dir, "clip.bin");
    writeFileSync(file, data);
    const copier = spawnTracked(
      "wl-copy",
      "sh",
      ["-c", `exec wl-copy --foreground -t application/octet-stream < '${file}'`],
      {
        env: copyEnv,
      },
    );
    try {
      // The selection exists once wl-paste lists our type.
      await waitFor(
        "wl-paste --list-types to show wl-copy's selection",
        async () => {
          const types = await run("wl-paste", ["--list-types"], { env: pasteEnv, timeoutMs: 30_000 });
          return types.stdout.toString().includes("application/octet-stream") ? true : undefined;
        },
        {
          timeoutMs: SCREEN_TIMEOUT_MS,
          intervalMs: 100,
          abort: () => (copier.running ? undefined : "wl-copy exited"),
        },
      );
      const started = Date.now();
      const paste = await run("wl-paste", ["-t", "application/octet-stream"], {
        env: pasteEnv,
        timeoutMs: 60_000,
      });
      return { paste, ms: Date.now() - started };
    } finally {
      await copier.stop();
    }
  }

  it("copies 16 MiB from a guest app to a host app with identical SHA-256", async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const { paste } = await clipboardRoundTrip(data, stack.env, sway.env);
    expect(paste.code, paste.stderr.toString()).toBe(0);
    expect(paste.stdout.length).toBe(data.length);
    expect(sha256(paste.stdout)).toBe(sha256(data));
  });

  it("copies 16 MiB from a host app to a guest app with identical SHA-256", async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const { paste } = await clipboardRoundTrip(data, sway.env, stack.env);
    expect(paste.code, paste.stderr.toString()).toBe(0);
    expect(paste.stdout.length).toBe(data.length);
    expect(sha256(paste.stdout)).toBe(sha256(data));
  });

  it("hands the compositor's keymap to the client as a sealed fd it can map privately", async () => {
    const c = WaylandTestClient.connect(stack.socketPath);
    try {
      const reg = await c.getRegistry();
      const seat = c.bind(reg, "wl_seat", 7);
      const kbd = c.newId();
      c.request(seat, "wl_seat", "get_keyboard", (w) => w.uint(kbd));
      const ev = await c.waitFor((e) => e.objectId === kbd && e.name === "keymap");
      const [format, fd, size] = ev.args as [number, number, number];
      expect(format).toBe(1); // xkb_v1
      expect(size).toBeGreaterThan(1000);
      // wl_keyboard v7+: the client must map with MAP_PRIVATE (PROT_READ).
      const ab = native.mmap(fd, size, 1, 2, 0);
      try {
        const text = new TextDecoder().decode(new Uint8Array(ab, 0, size));
        expect(text.startsWith("xkb_keymap")).toBe(true);
        expect(text).toContain("xkb_symbols");
      } finally {
        native.munmap(ab);
      }
      // A private copy: the client cannot write into it or resize it.
      expect(() => native.ftruncate(fd, 1)).toThrow(/EPERM/);
      expect(native.fdPath(fd)).toMatch(/^\/memfd:crossway-keymap/);
    } finally {
      c.close();
    }
  });

  it("tags window titles and app_ids so host windows say where they come from", async () => {
    const tagged = await startCrosswayStack(sway, {
      guestArgs: ["--title-prefix", "[vm] ", "--app-id-prefix", "vm."],
    });
    const foot = spawnTracked(
      "foot tagged",
      "foot",
      ["--title", "tagged-term", "--app-id", "footapp", "sh", "-c", "sleep 60"],
      {
        env: tagged.env,
      },
    );
    try {
      const found = await waitFor(
        "foot's tagged toplevel in swaymsg -t get_tree",
        async () => (await swayViews()).find((v) => String(v.app_id).includes("footapp")),
        {
          timeoutMs: SCREEN_TIMEOUT_MS,
          intervalMs: 100,
          abort: () => (foot.running ? undefined : "foot exited"),
        },
      );
      expect(found?.app_id).toBe("vm.footapp");
      expect(found?.name).toBe("[vm] tagged-term");
    } finally {
      await foot.stop();
      await tagged.stop();
    }
  });
});
