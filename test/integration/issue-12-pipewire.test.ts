// Regression test for issue 12, defect 2: no `pipewire.sec.*` or `pipewire.access*` key of the filter's own daemon
// connection reaches a filtered client by any path (Client.Info on any id, Registry.Global props), checked on every
// key of a real pw-dump through the filter.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPipeWireFilter } from "../../src/proxy/pipewire/filter-server.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire } from "../helpers/pipewire.ts";
import { run, waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

let stack: PipeWireStack;

beforeAll(async () => {
  stack = await startPipeWire();
});

afterAll(async () => {
  await stack?.stop();
});

/** Every "path: key" in a JSON value whose key names a security or access property of a PipeWire client. */
function securityKeys(v: unknown, path = "$"): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => securityKeys(x, `${path}[${i}]`));
  if (v === null || typeof v !== "object") return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k.startsWith("pipewire.sec.") || k.startsWith("pipewire.access"))
      out.push(`${path}.${k} = ${JSON.stringify(x)}`);
    out.push(...securityKeys(x, `${path}.${k}`));
  }
  return out;
}

describe("issue 12 regressions: PipeWire filter", () => {
  it("defect 2: pw-dump through the filter shows no pipewire.sec.* or pipewire.access* key anywhere", async () => {
    // Outside truth first: the daemon does publish these keys to an unfiltered pw-dump.
    const direct = await run("pw-dump", [], { env: stack.env, timeoutMs: 15_000 });
    expect(direct.code, direct.stderr.toString()).toBe(0);
    expect(securityKeys(JSON.parse(direct.stdout.toString())).length).toBeGreaterThan(0);

    const listen = join(stack.runtimeDir, "filter-i12");
    const filter = startPipeWireFilter({
      listenPath: listen,
      upstreamPath: stack.socketPath,
      profile: "camera",
      audit: () => {},
    });
    try {
      const r = await run("pw-dump", [], {
        env: { ...stack.env, PIPEWIRE_REMOTE: listen },
        timeoutMs: 15_000,
      });
      expect(r.code, r.stderr.toString()).toBe(0);
      const dump = JSON.parse(r.stdout.toString()) as unknown[];
      // pw-dump binds its own Client global, so its Client.Info and Registry.Global both went through the filter.
      expect(JSON.stringify(dump)).toContain("PipeWire:Interface:Client");
      expect(securityKeys(dump)).toEqual([]);
    } finally {
      filter.close();
      await waitFor("the filter to drop its connections", () =>
        filter.sessions.size === 0 ? true : undefined,
      );
    }
  });
});
