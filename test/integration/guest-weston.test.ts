// The guest proxy against headless weston: globals as the policy allows, real shm clients, no dmabuf, keymap-free.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_GLOBALS } from "../../src/proxy/wayland/registry-policy.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { requireCommand, run } from "../helpers/processes.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

/** Parses wayland-info's "interface: 'NAME', version: N, name: M" lines into NAME -> version. */
export function globalsOf(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^interface: '([^']+)',\s+version:\s+(\d+),\s+name:\s+\d+/gm)) {
    out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

/** What the default policy should let through of `direct`: allowed names, versions capped. */
export function expectedGlobals(direct: Map<string, number>): Map<string, number> {
  const registry = ProtocolRegistry.fromGenerated();
  const out = new Map<string, number>();
  for (const [name, version] of direct) {
    const rule = DEFAULT_GLOBALS[name];
    const known = registry.get(name);
    if (rule === undefined || rule.requires === "dmabuf" || known === undefined || !known.known) continue;
    out.set(name, Math.min(version, rule.maxVersion, known.version));
  }
  return out;
}

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
