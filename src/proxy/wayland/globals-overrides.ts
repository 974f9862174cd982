// A config file's `globals` object applied to an allowlist: caps, additions and removals, checked strictly.
import type { GlobalRule } from "./registry-policy.ts";

/**
 * Returns `base` with the overrides in `raw` applied: interface -> version cap (number), `false` (hide it) or
 * `true` (allow it with the base cap, or version 1 if it has none). Anything else calls `fail` with the key and
 * value at fault, so a typo in a security policy never silently falls back to defaults.
 */
export function applyGlobalOverrides(
  base: Readonly<Record<string, GlobalRule>>,
  raw: unknown,
  fail: (what: string) => never,
): Record<string, GlobalRule> {
  const globals: Record<string, GlobalRule> = { ...base };
  if (raw === undefined) return globals;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail("'globals' must be an object of interface -> version | true | false");
  }
  for (const [iface, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(iface)) fail(`globals: '${iface}' is not an interface name`);
    if (v === false) {
      delete globals[iface];
    } else if (v === true) {
      globals[iface] = globals[iface] ?? { maxVersion: 1, why: "allowed by the config file" };
    } else if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 0x7fffffff) {
      const prev = globals[iface];
      globals[iface] = { ...(prev ?? { why: "allowed by the config file" }), maxVersion: v };
    } else {
      fail(`globals.${iface}: expected a version >= 1, true or false, got ${JSON.stringify(v)}`);
    }
  }
  return globals;
}
