// The guest proxy against headless weston: globals as the policy allows, real shm clients, no dmabuf, keymap-free.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { expectedGlobals, globalsOf } from "../helpers/globals.ts";
import { requireCommand, run } from "../helpers/processes.ts";
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
    const direct = await run("wayland-info", [], { env: weston.env, timeoutMs: 10_000 });
    const proxied = await run("wayland-info", [], { env: stack.env, timeoutMs: 10_000 });
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
    const proxied = await run("wayland-info", [], { env: stack.env, timeoutMs: 10_000 });
    expect(globalsOf(proxied.stdout.toString()).has("zwp_linux_dmabuf_v1")).toBe(false);
    expect(stack.guestLog()).not.toContain('zwp_linux_dmabuf_v1","version"');
  });

  for (const client of ["weston-simple-shm", "weston-simple-damage"]) {
    it(`runs ${client}: frames are copied, committed and released as directly`, async () => {
      const count = async (
        env: Record<string, string>,
      ): Promise<{ done: number; release: number; err: string }> => {
        const r = await run(client, [], { env: { ...env, WAYLAND_DEBUG: "1" }, timeoutMs: 2500 });
        const log = r.stderr.toString();
        return {
          done: (log.match(/wl_callback@\d+\.done/g) ?? []).length,
          release: (log.match(/wl_buffer@\d+\.release\(\)/g) ?? []).length,
          err: log
            .split("\n")
            .filter((l) => /error|failed/i.test(l))
            .join("\n"),
        };
      };
      const direct = await count(weston.env);
      const proxied = await count(stack.env);
      expect(proxied.err).toBe("");
      expect(direct.done).toBeGreaterThan(20);
      // Paced by the compositor's repaint: through the proxy within 30% of direct.
      expect(proxied.done).toBeGreaterThan(direct.done * 0.7);
      expect(proxied.release).toBeGreaterThan(direct.done * 0.7);
    });
  }
});
