// Reads the globals wayland-info prints, and what crossway's default policy should make of them.
import { DEFAULT_GLOBALS } from "../../src/proxy/wayland/registry-policy.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";

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
