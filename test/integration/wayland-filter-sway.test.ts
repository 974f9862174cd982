// The host-side Wayland filter against headless sway with the emulated device in front: a raw-wire attacker that
// bypasses `crossway guest` is refused at every policy rule, while a well-behaved guest client keeps working.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { tempDir } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { requireCommand, run, sleep, spawnTracked } from "../helpers/processes.ts";
import { rawToplevel, type TreeNode, views } from "../helpers/raw-toplevel.ts";
import { startSway } from "../helpers/sway.ts";
import { addVirtualKeyboard, type VirtualKeyboard } from "../helpers/virtual-keyboard.ts";
import {
  type FilteredVm,
  filterAttackTests,
  STRICT_POLICY,
  serveHostSelection,
  startFilteredVm,
} from "../helpers/wayland-filter-attacks.ts";

useFdLeakCheck();

describe("crossway wayland-filter in front of headless sway (strict policy)", () => {
  let sway: Compositor;
  let keyboard: VirtualKeyboard;
  let tmp: ReturnType<typeof tempDir>;
  let vm: FilteredVm;
  beforeAll(async () => {
    for (const [cmd, pkg] of [
      ["swaymsg", "sway"],
      ["wl-copy", "wl-clipboard"],
      ["wl-paste", "wl-clipboard"],
      ["wayland-info", "wayland-utils"],
    ] as const) {
      requireCommand(cmd, pkg);
    }
    tmp = tempDir("crossway-wlfilter-sway-");
    sway = await startSway();
    keyboard = await addVirtualKeyboard(sway.socketPath);
    vm = await startFilteredVm(sway, tmp.dir, "a", STRICT_POLICY);
  });

  afterAll(async () => {
    await vm?.stop();
    keyboard?.close();
    await sway?.stop();
    tmp?.remove();
  });

  /** The filter's audit lines for one rule. */
  const audits = (rule: string): Record<string, unknown>[] =>
    vm.filter.auditRecords().filter((r) => r.rule === rule);

  filterAttackTests(() => ({ compositor: sway, vm }));

  it("tags every raw toplevel with the VM's title and app_id (swaymsg get_tree)", async () => {
    const a = await rawToplevel(vm.bridge.socketPath, "innocent window", "org.example.trusted");
    const b = await rawToplevel(vm.bridge.socketPath, null, null);
    try {
      let found: TreeNode[] = [];
      for (let i = 0; i < 50; i++) {
        found = (await views(sway)).filter(
          (v) => v.app_id?.startsWith("vmA.") || v.name?.includes("innocent"),
        );
        if (found.length >= 2) break;
        await sleep(100);
      }
      const names = found.map((v) => [v.name, v.app_id]).sort();
      expect(names).toEqual([
        ["[vmA] ", "vmA."],
        ["[vmA] innocent window", "vmA.org.example.trusted"],
      ]);
      // Setting the title again (the tag's removal attempt) is tagged again.
      a.c.request(a.toplevel, "xdg_toplevel", "set_title", (w) => w.string("no tag here"));
      a.c.request(a.surface, "wl_surface", "commit", () => {});
      await a.c.roundtrip();
      let retitled: TreeNode | undefined;
      for (let i = 0; i < 50 && retitled === undefined; i++) {
        retitled = (await views(sway)).find((v) => v.name?.includes("no tag here"));
        if (retitled === undefined) await sleep(100);
      }
      expect(retitled?.name).toBe("[vmA] no tag here");
    } finally {
      a.c.close();
      b.c.close();
    }
  });

  it("with clipboard off: the guest reads nothing of the host clipboard, and a raw receive is refused", async () => {
    const secret = `host-secret-${randomBytes(8).toString("hex")}`;
    const copier = await serveHostSelection(sway, tmp.dir, secret);
    try {
      // A real client through guest proxy + device + filter: the selection it sees is empty.
      const paste = await run("wl-paste", ["-n"], { env: vm.stack.env, timeoutMs: 20_000 });
      expect(paste.stdout.toString()).not.toContain(secret);
      expect(paste.code).not.toBe(0);
      // A raw guest that keeps the offer id from data_offer and asks for it anyway gets an empty pipe.
      // Its data device exists before its window maps, so the focus it gets brings the selection.
      let dd = 0;
      const t = await rawToplevel(vm.bridge.socketPath, "reader", null, (c, reg) => {
        const seat = c.bind(reg, "wl_seat", 5);
        const ddm = c.bind(reg, "wl_data_device_manager", 3);
        dd = c.newId();
        c.request(ddm, "wl_data_device_manager", "get_data_device", (w) => w.uint(dd).uint(seat));
      });
      try {
        const offer = await t.c.waitFor((e) => e.objectId === dd && e.name === "data_offer", 20_000);
        const sel = await t.c.waitFor((e) => e.objectId === dd && e.name === "selection", 20_000);
        expect(sel.args[0]).toBe(0); // rewritten: the guest is told there is no selection
        const [r, w] = native.pipe2();
        const auditedBefore = audits("clipboard").length;
        try {
          t.c.request(
            offer.args[0] as number,
            "wl_data_offer",
            "receive",
            (m) => m.string("text/plain;charset=utf-8").fd(w),
            [w],
          );
          native.close(w);
          await t.c.roundtrip();
          const got = await import("../helpers/crossdomain.ts").then((h) => h.readToEof(r, 1 << 20));
          expect(new TextDecoder().decode(got)).toBe("");
        } finally {
          native.close(r);
        }
        // The filter writes its audit lines to its log asynchronously: the line can land just after the round trip.
        const deadline = Date.now() + 10_000;
        while (audits("clipboard").length === auditedBefore && Date.now() < deadline) await sleep(50);
        expect(audits("clipboard").at(-1)).toMatchObject({ message: "receive", action: "dropped" });
      } finally {
        t.c.close();
      }
    } finally {
      await copier.stop();
    }
  });
});

describe("crossway wayland-filter clipboard directions against headless sway", () => {
  let sway: Compositor;
  let keyboard: VirtualKeyboard;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    requireCommand("wl-copy", "wl-clipboard");
    requireCommand("wl-paste", "wl-clipboard");
    tmp = tempDir("crossway-wlfilter-clip-");
    sway = await startSway();
    keyboard = await addVirtualKeyboard(sway.socketPath);
  });

  afterAll(async () => {
    keyboard?.close();
    await sway?.stop();
    tmp?.remove();
  });

  /** Serves `text` as the selection with `wl-copy --foreground` in `env`; the caller stops it. */
  async function copy(text: string, env: Record<string, string>, label: string) {
    const file = join(tmp.dir, `${label}.txt`);
    writeFileSync(file, text);
    return spawnTracked(label, "sh", ["-c", `exec wl-copy --foreground < '${file}'`], { env });
  }

  async function hostPaste(): Promise<string> {
    const r = await run("wl-paste", ["-n"], { env: sway.env, timeoutMs: 10_000 });
    return r.stdout.toString();
  }

  it("to-guest: the guest pastes the host clipboard (and primary selection) but cannot set it", async () => {
    const vm = await startFilteredVm(sway, tmp.dir, "to", {
      name: "vmB",
      clipboard: "to-guest",
      primarySelection: "to-guest",
    });
    try {
      // The primary selection, readable here: the positive control of the default policy's "off" (apps test).
      const primary = `primary-${randomBytes(6).toString("hex")}`;
      const pcopy = await serveHostSelection(sway, tmp.dir, primary, { primary: true });
      try {
        const paste = await run("wl-paste", ["--primary", "-n"], { env: vm.stack.env, timeoutMs: 20_000 });
        expect(paste.stdout.toString()).toBe(primary);
      } finally {
        await pcopy.stop();
      }
      const secret = `host-${randomBytes(6).toString("hex")}`;
      const host = await serveHostSelection(sway, tmp.dir, secret);
      try {
        const paste = await run("wl-paste", ["-n"], { env: vm.stack.env, timeoutMs: 20_000 });
        expect(paste.stdout.toString()).toBe(secret);
      } finally {
        await host.stop();
      }
      const guestText = `guest-${randomBytes(6).toString("hex")}`;
      const guest = await copy(guestText, vm.stack.env, "guest-copy");
      try {
        // The refusal is audited when wl-copy's set_selection reaches the filter.
        for (let i = 0; vm.filter.auditRecords().every((r) => r.rule !== "clipboard"); i++) {
          if (i > 100) throw new Error("no clipboard refusal was audited");
          await sleep(100);
        }
        expect(vm.filter.auditRecords().find((r) => r.rule === "clipboard")).toMatchObject({
          vm: "vmB",
          message: "set_selection",
          action: "dropped",
        });
        expect(await hostPaste()).not.toBe(guestText);
      } finally {
        await guest.stop();
      }
    } finally {
      await vm.stop();
    }
  });

  it("from-guest: the guest sets the host clipboard but pastes nothing of the host's", async () => {
    const vm = await startFilteredVm(sway, tmp.dir, "from", { name: "vmC", clipboard: "from-guest" });
    try {
      const guestText = `guest-${randomBytes(6).toString("hex")}`;
      const guest = await copy(guestText, vm.stack.env, "guest-copy");
      try {
        let seen = "";
        for (let i = 0; i < 100 && seen !== guestText; i++) {
          seen = await hostPaste();
          if (seen !== guestText) await sleep(100);
        }
        expect(seen).toBe(guestText);
      } finally {
        await guest.stop();
      }
      const secret = `host-${randomBytes(6).toString("hex")}`;
      const host = await serveHostSelection(sway, tmp.dir, secret);
      try {
        const paste = await run("wl-paste", ["-n"], { env: vm.stack.env, timeoutMs: 20_000 });
        expect(paste.stdout.toString()).not.toContain(secret);
      } finally {
        await host.stop();
      }
    } finally {
      await vm.stop();
    }
  });
});
