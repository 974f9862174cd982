// The guest proxy against headless weston: globals as the policy allows, real shm clients, no dmabuf, keymap-free.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGAIN, native } from "../../src/native.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { expectedGlobals, globalsOf } from "../helpers/globals.ts";
import { requireCommand, run, spawnTracked, waitFor } from "../helpers/processes.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

describe("crossway guest in front of headless weston", () => {
  let weston: Compositor;
  let stack: CrosswayStack;

  beforeAll(async () => {
    requireCommand("wayland-info", "wayland-utils");
    requireCommand("weston-simple-shm", "weston");
    weston = await startWeston();
    stack = await startCrosswayStack(weston);
  });

  afterAll(async () => {
    await stack?.stop();
    await weston?.stop();
  });

  it("lists exactly the globals and versions the policy allows from the direct run", async () => {
    const direct = await run("wayland-info", [], { env: weston.env, timeoutMs: 60_000 });
    const proxied = await run("wayland-info", [], { env: stack.env, timeoutMs: 60_000 });
    expect(direct.code).toBe(0);
    expect(proxied.code, proxied.stderr.toString()).toBe(0);
    const d = globalsOf(direct.stdout.toString());
    const p = globalsOf(proxied.stdout.toString());
    expect(d.size).toBeGreaterThan(5);
    expect(p).toEqual(expectedGlobals(d));
    // Never something the compositor does not offer, never above its version.
    for (const [name, v] of p) expect(v).toBeLessThanOrEqual(d.get(name) ?? -1);
  });

  it("does not advertise zwp_linux_dmabuf_v1 on the emulated device", async () => {
    // weston here has no dmabuf either (no DRM): the policy decision itself is what is checked.
    const proxied = await run("wayland-info", [], { env: stack.env, timeoutMs: 60_000 });
    expect(globalsOf(proxied.stdout.toString()).has("zwp_linux_dmabuf_v1")).toBe(false);
    expect(stack.guestLog()).not.toContain('zwp_linux_dmabuf_v1","version"');
  });

  for (const client of ["weston-simple-shm", "weston-simple-damage"]) {
    it(`runs ${client}: frames are copied, committed and released as directly`, async () => {
      // Behaviour, not speed (bench/ measures speed): run until FRAMES frame callbacks and FRAMES - 2 buffer
      // releases have been seen (the last buffers may still be on screen), then interrupt the client.
      const FRAMES = 30;
      const count = async (
        env: Record<string, string>,
      ): Promise<{ done: number; release: number; err: string }> => {
        const child = spawnTracked(client, client, [], {
          env: { ...env, WAYLAND_DEBUG: "1" },
          pipeStderr: true,
        });
        let log = "";
        child.child.stderr?.setEncoding("utf8").on("data", (d: string) => {
          log += d;
        });
        const tally = () => ({
          done: (log.match(/wl_callback@\d+\.done/g) ?? []).length,
          release: (log.match(/wl_buffer@\d+\.release\(\)/g) ?? []).length,
        });
        try {
          await waitFor(
            `${FRAMES} frames of ${client}`,
            () => {
              const t = tally();
              return t.done >= FRAMES && t.release >= FRAMES - 2 ? true : undefined;
            },
            {
              timeoutMs: 60_000,
              intervalMs: 20,
              abort: () => (child.running ? undefined : "it exited"),
              explain: () => `${JSON.stringify(tally())}; its log ends:\n${log.slice(-1500)}`,
            },
          );
        } finally {
          await child.stop();
        }
        return {
          ...tally(),
          err: log
            .split("\n")
            .filter((l) => /error|failed/i.test(l))
            .join("\n"),
        };
      };
      const direct = await count(weston.env);
      const proxied = await count(stack.env);
      expect(direct.err).toBe("");
      expect(proxied.err).toBe("");
      expect(proxied.done).toBeGreaterThanOrEqual(FRAMES);
      expect(proxied.release).toBeGreaterThanOrEqual(FRAMES - 2);
    });
  }

  it("carries a burst of 200 000 requests (host socket back-pressure inside the device)", async () => {
    const c = WaylandTestClient.connect(stack.socketPath);
    try {
      const reg = await c.getRegistry();
      const compositor = c.bind(reg, "wl_compositor", 4);
      const region = c.newId();
      c.request(compositor, "wl_compositor", "create_region", (w) => w.uint(region));
      const add = c.conn.registry.get("wl_region")?.requests.find((r) => r.name === "add");
      if (add === undefined) throw new Error("no wl_region.add");
      const w = new MessageWriter({ capacity: 200_000 * 24 });
      for (let i = 0; i < 200_000; i++)
        w.begin(region, add.opcode)
          .int(i % 100)
          .int(0)
          .int(1)
          .int(1)
          .end();
      const bytes = w.bytes();
      let off = 0;
      while (off < bytes.length) {
        const n = native.sendmsg(c.fd, bytes, off, Math.min(65536, bytes.length - off), null);
        if (n === AGAIN) await new Promise((r) => setTimeout(r, 1));
        else off += n;
      }
      await c.roundtrip(60_000);
      expect(c.error).toBeNull();
    } finally {
      c.close();
    }
    expect(stack.deviceLog()).not.toMatch(/EEXIST/);
  });
});
