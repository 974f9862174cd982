// The pipewire-filter policy file (JSON): profile, targets, tag, camera controls; strict, so SIGHUP can refuse it.
import { readFileSync } from "node:fs";
import { CrosswayError } from "../../errors.ts";
import { PROFILES, type ProfileName } from "./policy.ts";

/** What one VM's PipeWire clients may do: the same choices as the command-line options. */
export interface PipeWirePolicy {
  readonly profile: ProfileName;
  readonly targets: readonly string[];
  readonly tag: string;
  readonly cameraControls: boolean;
}

const KEYS = ["profile", "targets", "tag", "cameraControls"] as const;

function bad(where: string, what: string, value?: unknown): CrosswayError {
  return new CrosswayError("CW_CONFIG", `${where}: ${what}`, value === undefined ? {} : { value });
}

/** Parses a policy document; `where` names it in errors (a path). Unknown keys are errors. */
export function parsePipeWirePolicy(text: string, where: string): PipeWirePolicy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bad(where, `not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw bad(where, "must be a JSON object");
  const o = doc as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(k)) {
      throw bad(where, `unknown key '${k}' (known: ${KEYS.join(", ")})`, k);
    }
  }
  const profile = o.profile;
  if (typeof profile !== "string" || !Object.hasOwn(PROFILES, profile)) {
    throw bad(
      where,
      `'profile' must be one of ${Object.keys(PROFILES).join("|")}, not ${JSON.stringify(profile)}`,
      profile,
    );
  }
  const targets = o.targets ?? [];
  if (!Array.isArray(targets) || targets.some((t) => typeof t !== "string" || t === "")) {
    throw bad(where, `'targets' must be an array of non-empty node names, ids or serials`, targets);
  }
  const tag = o.tag ?? "guest.";
  if (typeof tag !== "string") throw bad(where, `'tag' must be a string, not ${JSON.stringify(tag)}`, tag);
  const cameraControls = o.cameraControls ?? false;
  if (typeof cameraControls !== "boolean") {
    throw bad(
      where,
      `'cameraControls' must be true or false, not ${JSON.stringify(cameraControls)}`,
      cameraControls,
    );
  }
  return { profile: profile as ProfileName, targets: targets as string[], tag, cameraControls };
}

/** Reads and parses a policy file; CW_CONFIG names the file and what is wrong. */
export function loadPipeWirePolicy(path: string): PipeWirePolicy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw bad(path, `cannot read (${(err as Error).message})`);
  }
  return parsePipeWirePolicy(text, path);
}
