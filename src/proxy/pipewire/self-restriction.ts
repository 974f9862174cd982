// What the filter grants its own daemon connection before any client message passes (pipewire.md §7.1): the
// client-node factory, the target nodes and their ports, its own Client, nothing else. Pure: the daemon's globals
// in, the UpdatePermissions list and what the client may see out.
import { CrosswayError } from "../../errors.ts";
import { Iface } from "../../wire/pipewire/protocol.ts";
import type { Profile } from "./policy.ts";

/** PW_PERM_* (src/pipewire/permission.h). */
const PERM_R = 0o400;
const PERM_W = 0o200;
const PERM_X = 0o100;
/** PW_ID_ANY: the default-permission entry of UpdatePermissions. */
const ID_ANY = 0xffffffff;

/** A global as the registry announced it. */
export interface GlobalEntry {
  type: string;
  version: number;
  props: Map<string, string | null>;
}

/** The connection's settings that decide the grant. */
export interface RestrictionInput {
  readonly profile: Profile;
  /** Node names, ids or serials; empty: the profile's default media classes. */
  readonly targets: readonly string[];
  readonly cameraControls: boolean;
  /** The filter's own Client global, or -1 when the registry did not show it. */
  readonly ownClientGlobal: number;
}

/** The grant: permissions for UpdatePermissions (ending with the ID_ANY default of none), and what is visible. */
export interface RestrictionPlan {
  readonly perms: [number, number][];
  readonly targetNodes: ReadonlySet<number>;
  /** Names, ids and serials of the target nodes (node props may name them). */
  readonly targetNames: ReadonlySet<string>;
  readonly allowed: ReadonlySet<number>;
}

/** Plans the self-restriction from the enumerated globals; throws CW_PW_UPSTREAM without a client-node factory. */
export function planRestriction(
  globals: ReadonlyMap<number, GlobalEntry>,
  input: RestrictionInput,
): RestrictionPlan {
  const p = input.profile;
  let factory = -1;
  for (const [gid, g] of globals) {
    if (g.type === Iface.Factory && g.props.get("factory.name") === "client-node") factory = gid;
  }
  if (factory < 0) throw new CrosswayError("CW_PW_UPSTREAM", "the daemon has no client-node factory");
  const targetNodes = new Set<number>();
  const targetNames = new Set<string>();
  const allowed = new Set<number>();
  const wanted = new Set(input.targets);
  for (const [gid, g] of globals) {
    if (g.type !== Iface.Node) continue;
    const name = g.props.get("node.name") ?? "";
    const serial = g.props.get("object.serial") ?? "";
    const hit =
      wanted.size > 0
        ? wanted.has(name) || wanted.has(String(gid)) || wanted.has(serial)
        : p.defaultTargetClasses.includes(g.props.get("media.class") ?? "");
    if (hit) {
      targetNodes.add(gid);
      targetNames.add(name).add(String(gid));
      if (serial !== "") targetNames.add(serial);
    }
  }
  const targetPerm = PERM_R | PERM_X | (input.cameraControls && p.name === "camera" ? PERM_W : 0);
  const perms: [number, number][] = [
    [0, PERM_R | PERM_W | PERM_X],
    [factory, PERM_R],
  ];
  if (input.ownClientGlobal >= 0) perms.push([input.ownClientGlobal, PERM_R | PERM_W | PERM_X]);
  allowed.add(0).add(factory);
  if (input.ownClientGlobal >= 0) allowed.add(input.ownClientGlobal);
  for (const gid of targetNodes) {
    perms.push([gid, targetPerm]);
    allowed.add(gid);
  }
  for (const [gid, g] of globals) {
    if (g.type === Iface.Port && targetNodes.has(Number(g.props.get("node.id")))) {
      perms.push([gid, PERM_R | PERM_X]);
      allowed.add(gid);
    }
  }
  perms.push([ID_ANY, 0]);
  return { perms, targetNodes, targetNames, allowed };
}
