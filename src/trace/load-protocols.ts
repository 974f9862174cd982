// Loads extra protocol XML (files, or directories searched recursively) into a registry at run time.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CrosswayError } from "../errors.ts";
import type { ProtocolRegistry } from "../wire/wayland/protocol-registry.ts";

/** Every *.xml file under `path` (or `path` itself), sorted so the load order does not depend on the filesystem. */
function xmlFiles(path: string): string[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (err) {
    throw new CrosswayError(
      "CW_CONFIG",
      `protocol XML path ${path} cannot be read: ${(err as Error).message}`,
    );
  }
  if (!st.isDirectory()) return [path];
  const out: string[] = [];
  for (const name of readdirSync(path)) {
    const p = join(path, name);
    if (statSync(p).isDirectory()) out.push(...xmlFiles(p));
    else if (name.endsWith(".xml")) out.push(p);
  }
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Adds the protocols in `paths` to `registry`; they override same-named interfaces from the generated tables
 * (a user who points at newer XML wants it). Throws WireXmlError (CW_WIRE_XML) naming file and line on bad XML.
 */
export function loadExtraProtocols(registry: ProtocolRegistry, paths: readonly string[]): number {
  let n = 0;
  for (const p of paths) {
    for (const f of xmlFiles(p)) {
      registry.addXml(readFileSync(f, "utf8"), f, { override: true });
      n++;
    }
  }
  return n;
}
