// The host-side Wayland filter's per-VM policy: globals, window tags, selection directions and quotas (strict JSON).
import { CrosswayError } from "../../errors.ts";
import { MAX_MESSAGE_SIZE_LIMIT } from "../../wire/wayland/framer.ts";
import { readConfigFile } from "../read-config-file.ts";
import { applyGlobalOverrides } from "../wayland/globals-overrides.ts";
import { DEFAULT_GLOBALS, type GlobalRule } from "../wayland/registry-policy.ts";
import type { TagMode } from "../wayland/tag-string.ts";

/**
 * Which way a selection kind may carry data. "to-guest": the VM may read what the host offers but not offer its
 * own; "from-guest": the VM may offer data to the host but never read the host's; "both"; "off".
 */
export type SelectionMode = "off" | "to-guest" | "from-guest" | "both";

const SELECTION_MODES: readonly SelectionMode[] = ["off", "to-guest", "from-guest", "both"];

/** Whether `mode` lets the guest read host data. */
export const guestMayRead = (mode: SelectionMode): boolean => mode === "to-guest" || mode === "both";
/** Whether `mode` lets the guest offer data to the host. */
export const guestMayOffer = (mode: SelectionMode): boolean => mode === "from-guest" || mode === "both";

/** A window string tag: the VM's text in front of (prefix) or instead of (replace) what the client sets. */
export interface Tag {
  readonly mode: TagMode;
  readonly text: string;
}

/** Per-connection limits. Past each, the compositor's own error is sent and the connection ends (rate: throttled). */
export interface FilterQuotas {
  /** Client-created objects alive at once (created minus the compositor's delete_id). */
  readonly objects: number;
  /** Bytes of wl_shm pools (create_pool and resize sizes) alive at once. */
  readonly shmBytes: number;
  /** Bytes of events waiting for a client that does not read them. */
  readonly queuedBytes: number;
  /** Sustained requests per second; past the burst the filter stops reading the client until tokens refill. */
  readonly requestsPerSecond: number;
  /** Requests allowed at once above the sustained rate. */
  readonly burst: number;
}

/** Everything the filter enforces for one VM. */
export interface FilterPolicy {
  /** The VM's name, in audit lines and default tags. */
  readonly name: string;
  readonly globals: Readonly<Record<string, GlobalRule>>;
  readonly title: Tag;
  readonly appId: Tag;
  readonly clipboard: SelectionMode;
  readonly primarySelection: SelectionMode;
  readonly dnd: SelectionMode;
  readonly quotas: FilterQuotas;
  /** Largest message accepted from the VM (libwayland's 4096 unless the compositor takes more). */
  readonly maxMessageSize: number;
}

/** Quotas when a policy does not set them: far above what real apps use, well below what hurts a compositor. */
export const DEFAULT_QUOTAS: FilterQuotas = {
  objects: 50_000,
  shmBytes: 2 * 1024 * 1024 * 1024,
  queuedBytes: 16 * 1024 * 1024,
  requestsPerSecond: 50_000,
  burst: 50_000,
};

/**
 * Globals that would bypass the selection policy (they read or set the clipboard without focus or through a
 * second path): a policy may allow them only when every selection kind they touch is "both".
 */
const SELECTION_BYPASS: Readonly<Record<string, readonly ("clipboard" | "primarySelection")[]>> = {
  zwlr_data_control_manager_v1: ["clipboard", "primarySelection"],
  ext_data_control_manager_v1: ["clipboard", "primarySelection"],
  gtk_primary_selection_device_manager: ["primarySelection"],
};

/**
 * The safe default for `--name VM` without a policy file: the guest proxy's allowlist, titles `[VM] `, app_ids
 * `VM.`, clipboard and drag-and-drop both ways, primary selection off (it moves data on a mere text selection),
 * default quotas.
 */
export function defaultPolicy(name: string): FilterPolicy {
  checkName(name, (what) => {
    throw new CrosswayError("CW_USAGE", `crossway wayland-filter: --name ${what}`);
  });
  return {
    name,
    globals: DEFAULT_GLOBALS,
    title: { mode: "prefix", text: `[${name}] ` },
    appId: { mode: "prefix", text: `${name}.` },
    clipboard: "both",
    primarySelection: "off",
    dnd: "both",
    quotas: DEFAULT_QUOTAS,
    maxMessageSize: 4096,
  };
}

function checkName(name: unknown, fail: (what: string) => never): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    fail(
      `must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(name)}`,
    );
  }
  return name as string;
}

const TOP_KEYS = new Set([
  "name",
  "globals",
  "title",
  "appId",
  "clipboard",
  "primarySelection",
  "dnd",
  "quotas",
  "maxMessageSize",
]);
const QUOTA_LIMITS: Readonly<Record<keyof FilterQuotas, readonly [number, number]>> = {
  objects: [16, 10_000_000],
  shmBytes: [4096, 2 ** 40],
  queuedBytes: [65_536, 1 << 30],
  requestsPerSecond: [1, 10_000_000],
  burst: [1, 10_000_000],
};

/**
 * Parses a policy file. Every key is checked; unknown keys are errors. `name` may come from the file or from
 * `nameOverride` (`--name`, which wins); tags default to the name as in {@link defaultPolicy}.
 */
export function parseFilterPolicy(text: string, file: string, nameOverride?: string): FilterPolicy {
  const fail = (what: string): never => {
    throw new CrosswayError("CW_CONFIG", `${file}: ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(`not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("top level must be an object");
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!TOP_KEYS.has(k)) fail(`unknown key '${k}'`);
  if (nameOverride === undefined && obj.name === undefined) {
    fail("no 'name' (give one in the file or with --name)");
  }
  const name = checkName(nameOverride ?? obj.name, (what) => fail(`'name' ${what}`));
  const base = defaultPolicy(name);
  const tag = (key: "title" | "appId", def: Tag): Tag => {
    const v = obj[key];
    if (v === undefined) return def;
    const bad = (): never =>
      fail(`'${key}' must be {"prefix": TEXT} or {"replace": TEXT} (TEXT up to 256 characters, no NUL)`);
    if (typeof v !== "object" || v === null || Array.isArray(v)) return bad();
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length !== 1) return bad();
    const [mode, t] = entries[0] as [string, unknown];
    if ((mode !== "prefix" && mode !== "replace") || typeof t !== "string") return bad();
    if (t.length > 256 || t.includes("\0")) return bad();
    if (mode === "replace" && t === "") fail(`'${key}': "replace" needs a non-empty text`);
    return { mode, text: t };
  };
  const selection = (key: "clipboard" | "primarySelection" | "dnd"): SelectionMode => {
    const v = obj[key];
    if (v === undefined) return base[key];
    if (typeof v !== "string" || !SELECTION_MODES.includes(v as SelectionMode)) {
      fail(`'${key}' must be one of ${SELECTION_MODES.join(", ")}, got ${JSON.stringify(v)}`);
    }
    return v as SelectionMode;
  };
  let quotas = DEFAULT_QUOTAS;
  if (obj.quotas !== undefined) {
    const q = obj.quotas;
    if (typeof q !== "object" || q === null || Array.isArray(q)) fail("'quotas' must be an object");
    const out: Record<string, number> = { ...DEFAULT_QUOTAS };
    for (const [k, v] of Object.entries(q as Record<string, unknown>)) {
      const lim = QUOTA_LIMITS[k as keyof FilterQuotas];
      if (lim === undefined) fail(`quotas: unknown key '${k}'`);
      const [min, max] = lim as readonly [number, number];
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        fail(`quotas.${k} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
      }
      out[k] = v as number;
    }
    quotas = out as unknown as FilterQuotas;
  }
  let maxMessageSize = 4096;
  if (obj.maxMessageSize !== undefined) {
    const v = obj.maxMessageSize;
    if (
      typeof v !== "number" ||
      !Number.isInteger(v) ||
      v < 4096 ||
      v > MAX_MESSAGE_SIZE_LIMIT ||
      v % 4 !== 0
    ) {
      fail(
        `'maxMessageSize' must be a multiple of 4 in [4096, ${MAX_MESSAGE_SIZE_LIMIT}], got ${JSON.stringify(v)}`,
      );
    }
    maxMessageSize = v as number;
  }
  const policy: FilterPolicy = {
    name,
    globals: applyGlobalOverrides(DEFAULT_GLOBALS, obj.globals, fail),
    title: tag("title", base.title),
    appId: tag("appId", base.appId),
    clipboard: selection("clipboard"),
    primarySelection: selection("primarySelection"),
    dnd: selection("dnd"),
    quotas,
    maxMessageSize,
  };
  for (const [iface, kinds] of Object.entries(SELECTION_BYPASS)) {
    if (policy.globals[iface] === undefined) continue;
    for (const k of kinds) {
      if (policy[k] !== "both") {
        fail(`globals.${iface} would bypass ${k} "${policy[k]}": allow it only with ${k} "both"`);
      }
    }
  }
  return policy;
}

/** Reads and parses a policy file; errors name the file and the offending key. */
export function loadFilterPolicy(path: string, nameOverride?: string): FilterPolicy {
  const text = readConfigFile(path);
  return parseFilterPolicy(text, path, nameOverride);
}
