// The guest proxy's configuration file: registry policy overrides, tagging and limits, validated strictly.
import { CrosswayError } from "../../errors.ts";
import { MAX_MESSAGE_SIZE_LIMIT } from "../../wire/wayland/framer.ts";
import { readConfigFile } from "../read-config-file.ts";
import { applyGlobalOverrides } from "./globals-overrides.ts";
import { DEFAULT_GLOBALS, type GlobalRule } from "./registry-policy.ts";

/** Everything `crossway guest` can be configured with; every field has a safe default. */
export interface GuestConfig {
  /** The allowlist: interface -> rule. Starts from DEFAULT_GLOBALS; the file can cap, add or remove entries. */
  readonly globals: Readonly<Record<string, GlobalRule>>;
  /** Prepended to every xdg_toplevel title, e.g. "[vm] ", so host windows show where they come from. */
  readonly titlePrefix: string;
  /** Prepended to every xdg_toplevel app_id, e.g. "vm.", a namespace the host can match on. */
  readonly appIdPrefix: string;
  /** Extra protocol XML files or directories, loaded at start (no rebuild for new protocols). */
  readonly protocolPaths: readonly string[];
  /** Largest Wayland message accepted (libwayland's 4096 default; up to 65532 for libwayland >= 1.23 peers). */
  readonly maxMessageSize: number;
  /** Bytes queued towards a client that does not read, before that client is disconnected. */
  readonly clientQueueLimit: number;
  /**
   * Host memory one client's wl_shm pools may hold (their host blobs, old generations included). Host memory is
   * the VMM's: a guest app must not be able to exhaust it. Past the limit the client gets wl_display no_memory.
   */
  readonly maxShmBytes: number;
  /** How long a client may leave its events unread (the channel paused for it) before it is disconnected. */
  readonly clientStallMs: number;
}

/** The defaults: the built-in allowlist, no tags, 4096-byte messages, 16 MiB per-client queue. */
export const DEFAULT_GUEST_CONFIG: GuestConfig = {
  globals: DEFAULT_GLOBALS,
  titlePrefix: "",
  appIdPrefix: "",
  protocolPaths: [],
  maxMessageSize: 4096,
  clientQueueLimit: 16 * 1024 * 1024,
  maxShmBytes: 2 * 1024 * 1024 * 1024,
  clientStallMs: 30_000,
};

const KNOWN_KEYS = new Set([
  "globals",
  "titlePrefix",
  "appIdPrefix",
  "protocolPaths",
  "maxMessageSize",
  "clientQueueLimit",
  "maxShmBytes",
  "clientStallMs",
]);

function fail(file: string, what: string): never {
  throw new CrosswayError("CW_CONFIG", `${file}: ${what}`);
}

/**
 * Parses a JSON config. `globals` maps an interface to a version cap (number), `false` (hide it) or `true`
 * (allow it with the default cap, or version 1 if it has none). Unknown keys are errors, not ignored: a typo
 * in a security policy must not silently fall back to defaults.
 */
export function parseGuestConfig(text: string, file = "config"): GuestConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(file, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    fail(file, "top level must be an object");
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!KNOWN_KEYS.has(k)) fail(file, `unknown key '${k}'`);
  const globals = applyGlobalOverrides(DEFAULT_GLOBALS, obj.globals, (what) => fail(file, what));
  const str = (k: string, def: string): string => {
    const v = obj[k];
    if (v === undefined) return def;
    if (typeof v !== "string" || v.length > 256 || v.includes("\0"))
      fail(file, `'${k}' must be a short string`);
    return v;
  };
  const int = (k: string, def: number, min: number, max: number): number => {
    const v = obj[k];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      fail(file, `'${k}' must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    }
    return v;
  };
  let protocolPaths: string[] = [];
  if (obj.protocolPaths !== undefined) {
    if (!Array.isArray(obj.protocolPaths) || !obj.protocolPaths.every((p) => typeof p === "string")) {
      fail(file, "'protocolPaths' must be an array of paths");
    }
    protocolPaths = obj.protocolPaths as string[];
  }
  const maxMessageSize = int("maxMessageSize", 4096, 4096, MAX_MESSAGE_SIZE_LIMIT);
  if (maxMessageSize % 4 !== 0) fail(file, "'maxMessageSize' must be a multiple of 4");
  return {
    globals,
    titlePrefix: str("titlePrefix", ""),
    appIdPrefix: str("appIdPrefix", ""),
    protocolPaths,
    maxMessageSize,
    clientQueueLimit: int("clientQueueLimit", DEFAULT_GUEST_CONFIG.clientQueueLimit, 65536, 1 << 30),
    maxShmBytes: int("maxShmBytes", DEFAULT_GUEST_CONFIG.maxShmBytes, 1 << 20, 2 ** 40),
    clientStallMs: int("clientStallMs", DEFAULT_GUEST_CONFIG.clientStallMs, 100, 3_600_000),
  };
}

/** Reads and parses a config file; errors name the file and the offending key. */
export function loadGuestConfig(path: string): GuestConfig {
  const text = readConfigFile(path);
  return parseGuestConfig(text, path);
}
