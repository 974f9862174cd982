// The guest's native fast path (native/src/fast_path.cc) against headless weston: what it carries, and that a client
// sees exactly what it sees without it, including when the client stops reading.
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestStatus } from "../../src/control/control-client.ts";
import { makePeerDirs } from "../../src/harness/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../../src/harness/crossway-stack.ts";
import { AGAIN, native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { controlStatus } from "../helpers/control-status.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { run, waitFor } from "../helpers/processes.ts";
import { regionRounds } from "../helpers/region-rounds.ts";
import { type TestEvent, WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

/** An event as the client saw it, without the compositor's serials (they differ from run to run). */
function shape(e: TestEvent): string {
  const args = e.iface === "wl_callback" && e.name === "done" ? [] : e.args;
  return `${e.iface}@${e.objectId}.${e.name}(${args.map((a) => (a instanceof Uint8Array ? `[${a.length}]` : String(a))).join(",")})`;
}

describe("crossway guest's native fast path", () => {
  let weston: Compositor;
  const stacks: { fast?: CrosswayStack; slow?: CrosswayStack } = {};
  const controls = { fast: "", slow: "" };

  beforeAll(async () => {
    weston = await startWeston();
    const dirs = makePeerDirs("fastpath");
    mkdirSync(dirs.base, { recursive: true });
    controls.fast = join(dirs.base, "fast.ctl");
    controls.slow = join(dirs.base, "slow.ctl");
    stacks.fast = await startCrosswayStack(weston, { guestArgs: ["--control", controls.fast] });
    stacks.slow = await startCrosswayStack(weston, {
      guestArgs: ["--control", controls.slow],
      env: { CROSSWAY_FAST_PATH: "0" },
    });
  });

  afterAll(async () => {
    await stacks.fast?.stop();
    await stacks.slow?.stop();
    await weston?.stop();
  });

  /** Registry, a region, then `rounds` writes of three wl_region.add and a wl_display.sync, each awaited. */
  async function session(stack: CrosswayStack, control: string, rounds: number) {
    const c = WaylandTestClient.connect(stack.socketPath);
    try {
      const registry = await c.getRegistry();
      await c.roundtrip();
      const name = [...c.globals].find(([, g]) => g.iface === "wl_compositor")?.[0];
      expect(name).toBeDefined();
      const compositor = c.bind(registry, "wl_compositor", 4);
      await regionRounds(c, compositor, rounds);
      const mine = (await controlStatus(control)).connections[0];
      return { events: c.events.map(shape), fastPath: mine?.fastPath, error: c.error };
    } finally {
      c.close();
    }
  }

  it("carries round trips and pass-through requests, and the client sees what it sees without it", async () => {
    const ROUNDS = 300;
    const fast = await session(stacks.fast as CrosswayStack, controls.fast, ROUNDS);
    const slow = await session(stacks.slow as CrosswayStack, controls.slow, ROUNDS);
    expect(fast.error).toBeNull();
    expect(fast.events).toEqual(slow.events);
    // Each round: done and delete_id back; four requests out. The set-up's first round trips go through
    // JavaScript (registry, bind: hooked); the rounds themselves must not.
    expect(fast.events.filter((e) => e.endsWith(".done()")).length).toBe(ROUNDS + 3);
    expect(slow.fastPath).toBeUndefined();
    const fp = fast.fastPath;
    expect(fp).toBeDefined();
    expect(fp?.requestMessages).toBeGreaterThanOrEqual(4 * ROUNDS);
    expect(fp?.eventMessages).toBeGreaterThanOrEqual(2 * ROUNDS);
    expect(fp?.requestRuns).toBeGreaterThanOrEqual(ROUNDS);
  });

  it("a client that sends more fds than one message may carry ends as it would without the fast path", async () => {
    // Python's socket.send_fds is independent of the addon: 40 fds with a wl_display.sync, which the fast path's
    // read receives. The session must end with native.recvmsg's EMSGSIZE, every fd closed, the guest alive.
    const stack = stacks.fast as CrosswayStack;
    const fdsBefore = readdirSync(`/proc/${stack.guestPid}/fd`).length;
    const script = [
      "import os, socket, struct, sys",
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
      "s.connect(sys.argv[1])",
      "fds = [os.memfd_create('x%d' % i) for i in range(40)]",
      "socket.send_fds(s, [struct.pack('<III', 1, 12 << 16, 2)], fds)",
      "while s.recv(4096): pass",
    ].join("\n");
    const r = await run("python3", ["-c", script, stack.socketPath], { timeoutMs: 30_000 });
    expect(r.code, r.stderr.toString()).toBe(0);
    await stack.waitForGuestLog("more than 28 fds in one message");
    expect(stack.guestRunning()).toBe(true);
    await waitFor("the guest's fds back where they were", () =>
      readdirSync(`/proc/${stack.guestPid}/fd`).length === fdsBefore ? true : undefined,
    );
  });

  it("a client that stops reading gets every event in order once it reads again", async () => {
    // A raw client that writes one wl_display.sync at a time and reads nothing: each answer reaches the guest as its
    // own RECEIVE and its own write to the client, so the client's socket fills after a few hundred (the kernel
    // counts each write's buffer overhead). The fast path's write then comes up short: JavaScript queues the rest
    // and pauses the channel. Sending stops once the guest says so (its status), well before weston's own buffer
    // for a client that does not read would overflow; then the client reads everything back.
    const stack = stacks.fast as CrosswayStack;
    const fd = native.unixConnect(stack.socketPath);
    const sync = new Uint8Array(12);
    const view = new DataView(sync.buffer);
    view.setUint32(0, 1, true);
    view.setUint32(4, (12 << 16) | 0, true);
    let sent = 0;
    try {
      const remainders = async () =>
        (await requestStatus(controls.fast, 10_000)).connections[0]?.fastPath?.clientRemainders ?? 0;
      while ((await remainders()) === 0) {
        expect(sent, "the guest never found the client's socket full").toBeLessThan(2000);
        for (let k = 0; k < 20; k++) {
          view.setUint32(8, 2 + sent++, true);
          expect(native.sendmsg(fd, sync, 0, 12, null)).toBe(12);
          // One request per guest wake-up: the next goes once the guest has forwarded this one.
          await new Promise((r) => setTimeout(r, 1));
        }
      }
      // Everything back, in order: done(callback) then delete_id(callback) for each sync.
      const got: string[] = [];
      const buf = new Uint8Array(65536);
      const fds = new Int32Array(29);
      let pending = new Uint8Array(0);
      await waitFor(
        `${sent} answers`,
        () => {
          for (;;) {
            const n = native.recvmsg(fd, buf, 0, buf.length, fds);
            if (n === AGAIN || n === 0) break;
            const all = new Uint8Array(pending.length + n);
            all.set(pending);
            all.set(buf.subarray(0, n), pending.length);
            let p = 0;
            const dv = new DataView(all.buffer);
            while (all.length - p >= 8 && all.length - p >= dv.getUint32(p + 4, true) >>> 16) {
              const id = dv.getUint32(p, true);
              const op = dv.getUint32(p + 4, true) & 0xffff;
              got.push(id === 1 ? `delete_id(${dv.getUint32(p + 8, true)})` : `${id}.${op}`);
              p += dv.getUint32(p + 4, true) >>> 16;
            }
            pending = all.slice(p);
          }
          return got.length >= 2 * sent ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 5 },
      );
      expect(got).toEqual(
        Array.from({ length: sent }, (_, i) => [`${2 + i}.0`, `delete_id(${2 + i})`]).flat(),
      );
      expect(pending.length).toBe(0);
      const s = await requestStatus(controls.fast, 10_000);
      console.log(
        `${sent} syncs before the client's socket was full: ${JSON.stringify(s.connections[0]?.fastPath)}`,
      );
      expect(s.connections[0]?.fastPath?.clientRemainders).toBeGreaterThan(0);
      expect(s.connections[0]?.fastPath?.eventMessages).toBeGreaterThan(sent);
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n(${sent} syncs sent) guest log:\n${stack.guestLog().slice(-3000)}`,
      );
    } finally {
      native.close(fd);
    }
  });
});
