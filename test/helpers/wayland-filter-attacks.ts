// The raw-wire attacks every compositor behind the host-side filter must withstand, shared by the sway and weston
// tests: a filter + device + guest stack, a bridge that writes raw Wayland straight into the device (a guest that
// does not run crossway guest), and the attacks that need nothing compositor-specific.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { type Compositor, compositorPid } from "../../src/harness/compositor.ts";
import { MAX_FDS_PER_MSG, native } from "../../src/native.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { type CrosswayStack, startCrosswayStack } from "./crossway-stack.ts";
import { run, sleep, spawnTracked, type TrackedProcess } from "./processes.ts";
import { RawChannelBridge } from "./raw-channel-bridge.ts";
import { RawWaylandClient } from "./raw-wayland-client.ts";
import { startWaylandFilterProcess, type WaylandFilterProcess } from "./wayland-filter.ts";
import { WaylandTestClient } from "./wayland-test-client.ts";

/** Filter + device + guest in front of a compositor, and a bridge that writes raw Wayland into the device. */
export interface FilteredVm {
  filter: WaylandFilterProcess;
  stack: CrosswayStack;
  bridge: RawChannelBridge;
  stop(): Promise<void>;
}

/** Starts a FilteredVm with `policy`; the bridge socket is DIR/LABEL-attacker.sock. */
export async function startFilteredVm(
  compositor: Compositor,
  dir: string,
  label: string,
  policy: Record<string, unknown>,
): Promise<FilteredVm> {
  const filter = await startWaylandFilterProcess(compositor, { policy });
  let stack: CrosswayStack | undefined;
  try {
    stack = await startCrosswayStack(filter.asCompositor());
    const bridge = new RawChannelBridge(
      join(dir, `${label}-attacker.sock`),
      `emulated:${stack.deviceSocketPath}`,
    );
    const s = stack;
    return {
      filter,
      stack: s,
      bridge,
      async stop() {
        await bridge.close();
        await s.stop();
        await filter.stop();
      },
    };
  } catch (err) {
    await stack?.stop();
    await filter.stop();
    throw err;
  }
}

/** The policy of the attack tests: small quotas, wl_output capped at 2, every selection off. */
export const STRICT_POLICY = {
  name: "vmA",
  globals: { wl_output: 2 },
  clipboard: "off",
  primarySelection: "off",
  dnd: "off",
  quotas: {
    objects: 2000,
    shmBytes: 8 * 1024 * 1024,
    queuedBytes: 65_536,
    requestsPerSecond: 2000,
    burst: 500,
  },
} as const;

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

/**
 * Registers the compositor-independent attack tests in the calling describe block. `t()` gives the running
 * compositor and a FilteredVm started with STRICT_POLICY.
 */
export function filterAttackTests(t: () => { compositor: Compositor; vm: FilteredVm }): void {
  // Bridged channels close asynchronously after their client: the fd-leak check must see them gone.
  afterEach(async () => {
    await t().vm.bridge.idle();
  });

  /** The filter's audit lines for one rule. */
  const audits = (rule: string): Record<string, unknown>[] =>
    t()
      .vm.filter.auditRecords()
      .filter((r) => r.rule === rule);

  /**
   * The audit lines for one rule once there are at least `n`: the filter writes them to its log asynchronously,
   * so a line can land just after the client saw its error (seen once for quotas.shmBytes on weston).
   */
  const awaitAudits = async (rule: string, n = 1): Promise<Record<string, unknown>[]> => {
    const deadline = Date.now() + 10_000;
    while (audits(rule).length < n && Date.now() < deadline) await sleep(50);
    return audits(rule);
  };

  it("hides what the policy does not allow and refuses a bind of a hidden global with invalid_object", async () => {
    const direct = RawWaylandClient.connect(t().compositor.socketPath);
    const attacker = RawWaylandClient.connect(t().vm.bridge.socketPath);
    try {
      direct.getRegistry();
      await direct.roundTrip();
      attacker.getRegistry();
      await attacker.roundTrip();
      const hostIfaces = new Set([...direct.globals.values()].map((g) => g.iface));
      const seen = new Set([...attacker.globals.values()].map((g) => g.iface));
      // Capture, injection, overlay and compositor-debug globals stay hidden (those this compositor offers).
      const privileged = [
        "zwlr_data_control_manager_v1",
        "zwlr_screencopy_manager_v1",
        "zwlr_layer_shell_v1",
        "zwlr_export_dmabuf_manager_v1",
        "zwp_virtual_keyboard_manager_v1",
        "zwlr_virtual_pointer_manager_v1",
        "weston_debug_v1",
        "weston_capture_v1",
      ].filter((i) => hostIfaces.has(i));
      for (const i of privileged) expect(seen.has(i), i).toBe(false);
      expect(seen.has("wl_compositor")).toBe(true);
      const target = privileged[0] ?? [...hostIfaces].find((i) => !seen.has(i));
      expect(target, "the compositor offers a global the policy hides").toBeDefined();
      // The attacker knows the host's name for it (names are the compositor's) and binds it anyway.
      const [name] = [...direct.globals].find(([, g]) => g.iface === target) as [number, unknown];
      const w = new MessageWriter()
        .begin(2, 0)
        .uint(name)
        .string(target as string);
      attacker.send(w.uint(1).uint(attacker.newId()).end().bytes());
      await attacker.waitEof();
      expect(attacker.displayError).toEqual({
        objectId: 2,
        code: 0,
        message: `invalid global ${target} (${name})`,
      });
      const a = (await awaitAudits("globals")).at(-1);
      expect(a).toMatchObject({
        vm: "vmA",
        object: "wl_registry@2",
        message: "bind",
        action: "disconnected",
      });
    } finally {
      direct.close();
      attacker.close();
    }
  });

  it("caps versions and refuses a bind above the cap", async () => {
    const attacker = RawWaylandClient.connect(t().vm.bridge.socketPath);
    try {
      attacker.getRegistry();
      await attacker.roundTrip();
      const out = [...attacker.globals].find(([, g]) => g.iface === "wl_output");
      expect(out?.[1].version).toBe(2);
      const w = new MessageWriter()
        .begin(2, 0)
        .uint(out?.[0] as number)
        .string("wl_output");
      attacker.send(w.uint(3).uint(attacker.newId()).end().bytes());
      await attacker.waitEof();
      expect(attacker.displayError?.message).toBe(
        `invalid version for global wl_output (${out?.[0]}): have 2, wanted 3`,
      );
    } finally {
      attacker.close();
    }
  });

  it("answers malformed input with libwayland's error and ends only that connection", async () => {
    const good = WaylandTestClient.connect(t().vm.stack.socketPath);
    try {
      await good.getRegistry();
      // A request to an object that does not exist: wayland-server.c's "invalid object N".
      const a = RawWaylandClient.connect(t().vm.bridge.socketPath);
      try {
        a.send(new MessageWriter().begin(77, 0).end().bytes());
        await a.waitEof();
        expect(a.displayError).toEqual({ objectId: 1, code: 0, message: "invalid object 77" });
      } finally {
        a.close();
      }
      // A header whose size field is below the header's 8 bytes: not framable; the filter says so with
      // implementation. Size 0 on wl_display.sync once left the session throttled forever (the pass-through scan
      // counted that header again and again without moving), never answering, never ending.
      for (const size of [0, 3, 4]) {
        const b = RawWaylandClient.connect(t().vm.bridge.socketPath);
        try {
          const bad = new Uint8Array(8);
          new DataView(bad.buffer).setUint32(0, 1, true);
          new DataView(bad.buffer).setUint32(4, (size << 16) | 0, true);
          b.send(bad);
          await b.waitEof();
          expect(b.displayError?.code, `size ${size}`).toBe(3);
          expect(b.displayError?.message, `size ${size}`).toMatch(
            new RegExp(`size ${size} is smaller than the 8-byte header`),
          );
        } finally {
          b.close();
        }
      }
      expect((await awaitAudits("protocol", 4)).length).toBeGreaterThanOrEqual(4);
      await good.roundtrip();
    } finally {
      good.close();
    }
  });

  it("ends a client that floods fds no message takes, closing every one of them", async () => {
    // Straight at the filter's socket (what the VMM's channel would deliver): a header announcing a 4096-byte
    // sync, then one byte at a time, each with 28 fds, so the message never completes and fds pile up.
    const before = readdirSync(`/proc/${t().vm.filter.pid}/fd`).length;
    const c = RawWaylandClient.connect(t().vm.filter.socketPath);
    const memfd = native.memfdCreate("fd-flood", 0);
    try {
      const head = new Uint8Array(8);
      new DataView(head.buffer).setUint32(0, 1, true);
      new DataView(head.buffer).setUint32(4, 4096 << 16, true);
      expect(native.sendmsg(c.fd, head, 0, 8, [memfd])).toBe(8);
      const one = new Uint8Array(1);
      for (let i = 0; i < 40 && !c.eof; i++) {
        try {
          if (native.sendmsg(c.fd, one, 0, 1, new Array<number>(MAX_FDS_PER_MSG).fill(memfd)) !== 1) break;
        } catch {
          break; // EPIPE/ECONNRESET: the filter hung up, as it should
        }
      }
      await c.waitEof();
    } finally {
      native.close(memfd);
      c.close();
    }
    expect((await awaitAudits("connection")).at(-1)).toMatchObject({
      action: "disconnected",
      detail: "client queued 1024 fds without messages for them (limit 1024)",
    });
    expect(t().vm.filter.running()).toBe(true);
    // Every fd the flood brought in is closed again (the queued ones and those the full queue refused).
    const deadline = Date.now() + 10_000;
    while (readdirSync(`/proc/${t().vm.filter.pid}/fd`).length > before && Date.now() < deadline)
      await sleep(50);
    expect(readdirSync(`/proc/${t().vm.filter.pid}/fd`).length).toBeLessThanOrEqual(before);
  });

  it("refuses objects past the quota with no_memory", async () => {
    const attacker = RawWaylandClient.connect(t().vm.bridge.socketPath);
    try {
      attacker.getRegistry();
      await attacker.roundTrip();
      const compositor = attacker.bind("wl_compositor", 4);
      const w = new MessageWriter({ capacity: 1 << 16 });
      for (let i = 0; i < 2100; i++) w.begin(compositor, 1).uint(attacker.newId()).end();
      attacker.send(w.bytes(), 20_000);
      await attacker.waitEof(20_000);
      expect(attacker.displayError?.code).toBe(2);
      expect(attacker.displayError?.message).toMatch(
        /^no memory: wl_compositor@\d+\.create_region .*limit 2000\)$/,
      );
      expect((await awaitAudits("quotas.objects")).at(-1)).toMatchObject({
        vm: "vmA",
        message: "create_region",
      });
    } finally {
      attacker.close();
    }
  });

  it("refuses shm pools past the quota with no_memory, after a pool within it worked", async () => {
    const attacker = RawWaylandClient.connect(t().vm.bridge.socketPath);
    try {
      attacker.getRegistry();
      await attacker.roundTrip();
      const shm = attacker.bind("wl_shm", 1);
      attacker.createShmPool(shm, 4 * 1024 * 1024);
      await attacker.roundTrip(20_000);
      attacker.createShmPool(shm, 6 * 1024 * 1024);
      await attacker.waitEof(20_000);
      expect(attacker.displayError?.code).toBe(2);
      expect(attacker.displayError?.message).toMatch(/create_pool.*to 10485760 bytes \(limit 8388608\)/);
      expect((await awaitAudits("quotas.shmBytes")).length).toBeGreaterThan(0);
    } finally {
      attacker.close();
    }
  });

  it("ends a client that leaves more than its queued-bytes quota of events unread", async () => {
    const attacker = RawWaylandClient.connect(t().vm.bridge.socketPath, { read: false });
    try {
      // Each get_registry answers with every shown global (~2 KiB of events per 12-byte request). Sent in small
      // batches: a burst would overflow the compositor's own 4 KiB output buffer to the filter (libwayland 1.21 then drops
      // the connection itself), and this test is about the filter's bound on what it holds for the client.
      for (let batch = 0; batch < 150; batch++) {
        const w = new MessageWriter({ capacity: 1 << 12 });
        for (let i = 0; i < 8; i++) w.begin(1, 1).uint(attacker.newId()).end();
        if (attacker.send(w.bytes(), 5000) < w.length) break;
        await sleep(15);
        if (audits("quotas.queuedBytes").length > 0) break;
      }
      let rec: Record<string, unknown> | undefined;
      for (let i = 0; i < 200 && rec === undefined; i++) {
        rec = audits("quotas.queuedBytes").at(-1);
        if (rec === undefined) await sleep(100);
      }
      expect(rec).toMatchObject({ vm: "vmA", action: "disconnected" });
      expect(String(rec?.detail)).toMatch(/limit 65536/);
    } finally {
      attacker.close();
    }
  });

  it("throttles a request flood to the rate while a second client keeps its latency", async () => {
    const attacker = RawWaylandClient.connect(t().vm.bridge.socketPath);
    const good = WaylandTestClient.connect(t().vm.stack.socketPath);
    try {
      await good.getRegistry();
      const t0 = performance.now();
      const flood = 3000;
      const w = new MessageWriter({ capacity: 1 << 16 });
      let last = 0;
      for (let i = 0; i < flood; i++) {
        last = attacker.newId();
        w.begin(1, 0).uint(last).end();
      }
      attacker.send(w.bytes(), 20_000);
      // While the attacker is throttled, the good client's round trips stay fast.
      const lat: number[] = [];
      for (let i = 0; i < 10; i++) {
        const s = performance.now();
        await good.roundtrip();
        lat.push(performance.now() - s);
      }
      await attacker.roundTrip(30_000);
      const took = performance.now() - t0;
      // (flood - burst) / rate = 1.25 s at least; the tokens only refill at 2000/s.
      expect(took).toBeGreaterThan(1200);
      lat.sort((a, b) => a - b);
      expect(lat[5]).toBeLessThan(250);
      expect((await awaitAudits("quotas.requestsPerSecond")).length).toBeGreaterThan(0);
      expect(attacker.eof).toBe(false);
    } finally {
      attacker.close();
      good.close();
    }
  });

  it("keeps the compositor's fd count and RSS bounded across repeated attacks, and the good client working", async () => {
    const pid = compositorPid(t().compositor);
    const fds0 = fdCount(pid);
    const rss0 = rssKiB(pid);
    for (let round = 0; round < 20; round++) {
      const a = RawWaylandClient.connect(t().vm.bridge.socketPath);
      try {
        a.getRegistry();
        await a.roundTrip(20_000);
        const shm = a.bind("wl_shm", 1);
        a.createShmPool(shm, 2 * 1024 * 1024);
        const comp = a.bind("wl_compositor", 4);
        const w = new MessageWriter({ capacity: 1 << 16 });
        for (let i = 0; i < 2100; i++) w.begin(comp, 1).uint(a.newId()).end();
        a.send(w.bytes(), 20_000);
        await a.waitEof(20_000);
      } finally {
        a.close();
      }
    }
    const good = WaylandTestClient.connect(t().vm.stack.socketPath);
    try {
      await good.getRegistry();
      await good.roundtrip();
    } finally {
      good.close();
    }
    const info = await run("wayland-info", [], { env: t().vm.stack.env, timeoutMs: 20_000 });
    expect(info.code, info.stderr.toString()).toBe(0);
    // Every attacker connection is gone from sway: its fd count is back where it was (a few fds of slack for
    // sway's own lazily opened files), and RSS grew by less than 32 MiB over 20 rounds.
    let fds1 = fdCount(pid);
    for (let i = 0; i < 50 && fds1 > fds0 + 4; i++) {
      await sleep(100);
      fds1 = fdCount(pid);
    }
    expect(fds1).toBeLessThanOrEqual(fds0 + 4);
    expect(rssKiB(pid) - rss0).toBeLessThan(32 * 1024);
    expect(t().vm.filter.running()).toBe(true);
  });
}

/**
 * Serves `text` as the host's selection (`wl-copy --foreground`, `--primary` if asked) directly on `compositor`, and
 * resolves once the host's own `wl-paste` reads it back (a named deadline). The caller stops the returned process.
 */
export async function serveHostSelection(
  compositor: Compositor,
  dir: string,
  text: string,
  opts: { primary?: boolean; timeoutMs?: number } = {},
): Promise<TrackedProcess> {
  const flags = opts.primary === true ? ["--primary"] : [];
  const file = join(dir, `host-selection-${flags.length}.txt`);
  writeFileSync(file, text);
  const copier = spawnTracked(
    `host wl-copy ${flags.join(" ")}`,
    "sh",
    ["-c", `exec wl-copy ${flags.join(" ")} --foreground < '${file}'`],
    { env: compositor.env },
  );
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await run("wl-paste", [...flags, "-n"], { env: compositor.env, timeoutMs: 10_000 });
    if (r.stdout.toString() === text) return copier;
    if (Date.now() > deadline || !copier.running) {
      await copier.stop();
      throw new Error(`host wl-copy ${flags.join(" ")} did not take the selection within ${timeoutMs} ms`);
    }
    await sleep(100);
  }
}
