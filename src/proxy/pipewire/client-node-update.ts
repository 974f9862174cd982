// The checks of a ClientNode's Update and PortUpdate (pipewire.md §7.4 C→S), pure: they take the message's fields
// and the connection's profile, and return the body to forward (or null: unchanged), stripping what the profile does
// not allow and throwing Violation for what cannot be repaired. Split out of session.ts (issue 12).
import { isStruct, type Pod, pod } from "../../wire/pipewire/pod-types.ts";
import { type DictEntries, expectInt, expectLong, readDictItems } from "../../wire/pipewire/protocol.ts";
import { allowedParamIds, checkParam } from "./param-schema.ts";
import { filterNodeProps, filterPortProps, type NodePropContext, type Profile } from "./policy.ts";
import { Violation } from "./violation.ts";

/** What the checks need of the connection. */
export interface UpdateContext {
  readonly profile: Profile;
  readonly nodeProps: NodePropContext;
  /** Audio monitor ports announced so far on this connection (the checks add to it). */
  readonly monitorPorts: Set<number>;
  /** Records something stripped (an audit record, in order with the connection's others). */
  strip(reason: string, detail: string): void;
}

function params(list: readonly Pod[], where: string, ctx: UpdateContext): { kept: Pod[]; changed: boolean } {
  const allowedIds = allowedParamIds(ctx.profile);
  const kept: Pod[] = [];
  let changed = false;
  for (const p of list) {
    if (p.t === "none") {
      kept.push(p);
      continue;
    }
    if (p.t !== "object") throw new Violation("param-schema", `${where}: param is a ${p.t}`);
    if (!allowedIds.has(p.objectId)) {
      ctx.strip("param-stripped", `${where}: param id ${p.objectId}`);
      changed = true;
      continue;
    }
    const err = checkParam(p, p.objectId, ctx.profile, where);
    if (err !== null) throw new Violation("param-schema", err);
    kept.push(p);
  }
  return { kept, changed };
}

/** Param infos `(Id id, Int flags)*`, stripped to allowed ids. */
function paramInfos(
  fields: readonly Pod[],
  at: number,
  n: number,
  where: string,
  profile: Profile,
): { infos: Pod[]; changed: boolean } {
  if (n < 0 || n > 32 || at + 2 * n !== fields.length)
    throw new Violation("schema", `${where}: ${n} param infos`);
  const allowedIds = allowedParamIds(profile);
  const infos: Pod[] = [];
  let changed = false;
  for (let i = 0; i < n; i++) {
    const id = fields[at + 2 * i];
    const fl = fields[at + 2 * i + 1];
    if (id?.t !== "id" || fl?.t !== "int") throw new Violation("schema", `${where}: param info ${i}`);
    if (allowedIds.has(id.v)) infos.push(id, fl);
    else changed = true;
  }
  return { infos, changed };
}

/**
 * ClientNode.Update (§7.4 C→S): change mask, params (schema-checked, stripped to the profile's ids), node info (port
 * counts, props through the node policy, flags and param infos stripped). Returns the body to send, or null when
 * nothing changed (forward as received); throws Violation for what cannot be repaired.
 */
export function checkClientNodeUpdate(a: readonly Pod[], ctx: UpdateContext): Pod | null {
  const changeMask = expectInt(a[0], "Update change_mask");
  const nParams = expectInt(a[1], "Update n_params");
  if ((changeMask & ~3) !== 0) throw new Violation("schema", `Update change_mask ${changeMask}`);
  if (nParams < 0 || nParams > 64 || a.length !== 3 + nParams)
    throw new Violation("schema", `Update with ${nParams} params, ${a.length} fields`);
  const ps = params(a.slice(2, 2 + nParams), "ClientNode.Update", ctx);
  let changed = ps.changed;
  let info = a[2 + nParams] as Pod;
  if (info.t === "struct") {
    const i = info.fields;
    const maxIn = expectInt(i[0], "max_in");
    const maxOut = expectInt(i[1], "max_out");
    const mask = expectLong(i[2], "info change_mask");
    const flags = expectLong(i[3], "info flags");
    const nItems = expectInt(i[4], "n_items");
    const p = ctx.profile;
    if (maxIn < 0 || maxOut < 0 || maxIn > p.maxPorts + 1 || maxOut > p.maxPorts + 1) {
      throw new Violation("schema", `max ports ${maxIn}/${maxOut}`);
    }
    if ((mask & ~7n) !== 0n) throw new Violation("schema", `node info change_mask ${mask}`);
    const items = readDictItems(i, 5, nItems, "node info props");
    const nInfoAt = 5 + 2 * nItems;
    const nInfos = expectInt(i[nInfoAt], "n_param_infos");
    const pi = paramInfos(i, nInfoAt + 1, nInfos, "node info", ctx.profile);
    const r = filterNodeProps(items, ctx.nodeProps);
    if (r.refusal !== null) throw new Violation("node-props", r.refusal);
    for (const d of r.dropped) ctx.strip(`prop-${d.reason}`, d.key);
    const keptFlags = flags & BigInt(p.nodeFlags);
    if (keptFlags !== flags) ctx.strip("node-flags", `0x${flags.toString(16)}`);
    // PipeWire 0.3.65 dereferences a NULL dict when the PROPS bit (2) comes with zero items
    // (pw_properties_update_ignore, "segfault at 4"; found by test/fuzz/pipewire-session-fuzzer.ts). An empty
    // update changes nothing, so the bit is cleared, whether the client sent no items or the filter removed all.
    let keptMask = mask;
    if ((mask & 2n) !== 0n && r.kept.length === 0) {
      keptMask = mask & ~2n;
      ctx.strip("empty-props-update", "PROPS change bit with no items");
    }
    changed ||=
      r.dropped.length > 0 ||
      pi.changed ||
      keptFlags !== flags ||
      keptMask !== mask ||
      r.kept.some(([k, v], idx) => items[idx]?.[0] !== k || items[idx]?.[1] !== v);
    info = pod.struct(
      i[0] as Pod,
      i[1] as Pod,
      pod.long(keptMask),
      pod.long(keptFlags),
      pod.int(r.kept.length),
      ...dictFields(r.kept),
      pod.int(pi.infos.length / 2),
      ...pi.infos,
    );
  } else if (info.t !== "none") {
    throw new Violation("schema", `Update info is a ${info.t}`);
  }
  if (!changed) return null;
  return pod.struct(pod.int(changeMask), pod.int(ps.kept.length), ...ps.kept, info);
}

function dictFields(items: DictEntries): Pod[] {
  const out: Pod[] = [];
  for (const [k, v] of items) out.push(pod.string(k), v === null ? pod.none() : pod.string(v));
  return out;
}

/**
 * Audio capture streams announce output "monitor" ports mirroring their input (audioconvert, port.monitor =
 * true; seen from pw-cat --record on 0.3.65). Those are the only wrong-direction ports allowed, and only for
 * audio input profiles; later updates of such a port need not repeat the props.
 */
function monitorPort(
  a: readonly Pod[],
  nParams: number,
  direction: number,
  portId: number,
  ctx: UpdateContext,
): boolean {
  const p = ctx.profile;
  if (p.mediaType !== "Audio" || p.portDirection !== 0 || direction !== 1) return false;
  if (ctx.monitorPorts.has(portId)) return true;
  const info = a[4 + nParams];
  if (!isStruct(info)) return false;
  const nItems = info.fields[4]?.t === "int" ? info.fields[4].v : 0;
  const items = readDictItems(info.fields, 5, nItems, "port info props");
  if (!items.some(([k, v]) => k === "port.monitor" && v === "true")) return false;
  ctx.monitorPorts.add(portId);
  return true;
}

/**
 * ClientNode.PortUpdate (§7.4 C→S): direction (the profile's, or an audio monitor port), port id, params and port
 * info (flags, rate, props through the port policy, param infos). Returns the body to send, or null when unchanged.
 */
export function checkClientNodePortUpdate(a: readonly Pod[], ctx: UpdateContext): Pod | null {
  const direction = expectInt(a[0], "direction");
  const portId = expectInt(a[1], "port_id");
  const changeMask = expectInt(a[2], "change_mask");
  const nParams = expectInt(a[3], "n_params");
  const p = ctx.profile;
  if (direction !== p.portDirection && !monitorPort(a, nParams, direction, portId, ctx)) {
    throw new Violation("port-direction", `direction ${direction} in profile ${p.name}`);
  }
  if (portId < 0 || portId >= p.maxPorts) throw new Violation("schema", `port_id ${portId}`);
  if ((changeMask & ~3) !== 0) throw new Violation("schema", `PortUpdate change_mask ${changeMask}`);
  if (nParams < 0 || nParams > 64 || a.length !== 5 + nParams)
    throw new Violation("schema", `PortUpdate with ${nParams} params`);
  const ps = params(a.slice(4, 4 + nParams), "ClientNode.PortUpdate", ctx);
  let changed = ps.changed;
  let info = a[4 + nParams] as Pod;
  if (info.t === "struct") {
    const i = info.fields;
    const mask = expectLong(i[0], "port change_mask");
    const flags = expectLong(i[1], "port flags");
    const rateNum = expectInt(i[2], "rate num");
    const rateDenom = expectInt(i[3], "rate denom");
    const nItems = expectInt(i[4], "n_items");
    if ((mask & ~15n) !== 0n) throw new Violation("schema", `port info change_mask ${mask}`);
    if (rateNum < 0 || rateDenom < 0 || rateNum > 384000 || rateDenom > 384000)
      throw new Violation("schema", "port rate");
    const items = readDictItems(i, 5, nItems, "port info props");
    const nInfoAt = 5 + 2 * nItems;
    const pi = paramInfos(i, nInfoAt + 1, expectInt(i[nInfoAt], "n_param_infos"), "port info", ctx.profile);
    const r = filterPortProps(items, ctx.nodeProps);
    for (const d of r.dropped) ctx.strip(`prop-${d.reason}`, d.key);
    // REMOVABLE, OPTIONAL, IN_PLACE, NO_REF, LIVE; CAN_ALLOC_BUFFERS would make the client allocate (§7.4).
    const keptFlags = flags & 0x3bn;
    if (keptFlags !== flags) ctx.strip("port-flags", `0x${flags.toString(16)}`);
    changed ||= r.dropped.length > 0 || pi.changed || keptFlags !== flags;
    info = pod.struct(
      i[0] as Pod,
      pod.long(keptFlags),
      i[2] as Pod,
      i[3] as Pod,
      pod.int(r.kept.length),
      ...dictFields(r.kept),
      pod.int(pi.infos.length / 2),
      ...pi.infos,
    );
  } else if (info.t !== "none") {
    throw new Violation("schema", `PortUpdate info is a ${info.t}`);
  }
  if (!changed) return null;
  return pod.struct(a[0] as Pod, a[1] as Pod, a[2] as Pod, pod.int(ps.kept.length), ...ps.kept, info);
}
