// PipeWire interfaces, opcodes and argument signatures (pipewire.md §3), and the strict argument checker.
import { PipeWireWireError } from "./pod-error.ts";
import type { Pod, PodArrayValue } from "./pod-types.ts";

/** Interface type strings (src/pipewire/*.h PW_TYPE_INTERFACE_*). */
export const Iface = {
  Core: "PipeWire:Interface:Core",
  Registry: "PipeWire:Interface:Registry",
  Client: "PipeWire:Interface:Client",
  Node: "PipeWire:Interface:Node",
  Port: "PipeWire:Interface:Port",
  Device: "PipeWire:Interface:Device",
  Factory: "PipeWire:Interface:Factory",
  Module: "PipeWire:Interface:Module",
  Link: "PipeWire:Interface:Link",
  Metadata: "PipeWire:Interface:Metadata",
  Profiler: "PipeWire:Interface:Profiler",
  ClientNode: "PipeWire:Interface:ClientNode",
  SecurityContext: "PipeWire:Interface:SecurityContext",
} as const;

/**
 * Argument signature letters, one per Struct field:
 * `i` Int, `l` Long, `I` Id, `b` Bool, `s` String or None (the parser's `s`, parser.h), `h` Fd,
 * `d` Dict = Struct(Int n, (String|None key, String|None value)*), `O` Object or None, `P` any POD,
 * `T` Struct, `a` Array. Messages with repeated groups use a `*` signature and a custom checker.
 */
export interface MessageSpec {
  readonly name: string;
  readonly sig: string;
  /** Fds the message carries, as [min, max] (pipewire.md §7.7). */
  readonly fds?: readonly [number, number];
}

const m = (name: string, sig: string, fds?: readonly [number, number]): MessageSpec =>
  fds === undefined ? { name, sig } : { name, sig, fds };

/** Methods (C→S) per interface, indexed by opcode; opcode 0 (add_listener) is never on the wire. */
export const METHODS: Readonly<Record<string, readonly (MessageSpec | undefined)[]>> = {
  [Iface.Core]: [
    undefined,
    m("Hello", "i"),
    m("Sync", "ii"),
    m("Pong", "ii"),
    m("Error", "iiis"),
    m("GetRegistry", "ii"),
    m("CreateObject", "ssidi"),
    m("Destroy", "i"),
  ],
  [Iface.Registry]: [undefined, m("Bind", "isii"), m("Destroy", "i")],
  [Iface.Client]: [
    undefined,
    m("Error", "iis"),
    m("UpdateProperties", "d"),
    m("GetPermissions", "ii"),
    m("UpdatePermissions", "*"),
  ],
  [Iface.Node]: [
    undefined,
    m("SubscribeParams", "a"),
    m("EnumParams", "iIiiP"),
    m("SetParam", "IiP"),
    m("SendCommand", "P"),
  ],
  [Iface.Port]: [undefined, m("SubscribeParams", "a"), m("EnumParams", "iIiiP")],
  [Iface.Device]: [undefined, m("SubscribeParams", "a"), m("EnumParams", "iIiiP"), m("SetParam", "IiP")],
  [Iface.Factory]: [undefined],
  [Iface.Module]: [undefined],
  [Iface.Link]: [undefined],
  [Iface.Profiler]: [undefined],
  [Iface.Metadata]: [undefined, m("SetProperty", "isss"), m("Clear", "*")],
  [Iface.SecurityContext]: [undefined, m("Create", "hhd", [2, 2])],
  [Iface.ClientNode]: [
    undefined,
    m("GetNode", "ii"),
    m("Update", "*"),
    m("PortUpdate", "*"),
    m("SetActive", "b"),
    m("Event", "O"),
    m("PortBuffers", "*"),
  ],
};

/** Events (S→C) per interface, indexed by opcode. */
export const EVENTS: Readonly<Record<string, readonly (MessageSpec | undefined)[]>> = {
  [Iface.Core]: [
    m("Info", "iissssld"),
    m("Done", "ii"),
    m("Ping", "ii"),
    m("Error", "iiis"),
    m("RemoveId", "i"),
    m("BoundId", "ii"),
    m("AddMem", "iIhi", [1, 1]),
    m("RemoveMem", "i"),
    m("BoundProps", "iid"),
  ],
  [Iface.Registry]: [m("Global", "iisid"), m("GlobalRemove", "i")],
  [Iface.Client]: [m("Info", "ild"), m("Permissions", "iT")],
  [Iface.Node]: [m("Info", "iiiliiIsdT"), m("Param", "iIiiP")],
  [Iface.Port]: [m("Info", "iildT"), m("Param", "iIiiP")],
  [Iface.Device]: [m("Info", "ildT"), m("Param", "iIiiP")],
  [Iface.Factory]: [m("Info", "issild")],
  [Iface.Module]: [m("Info", "isssld")],
  [Iface.Link]: [m("Info", "iiiiilisPd")],
  [Iface.Profiler]: [m("Profile", "P")],
  [Iface.Metadata]: [m("Property", "isss")],
  [Iface.SecurityContext]: [],
  [Iface.ClientNode]: [
    m("Transport", "hhiii", [2, 2]),
    m("SetParam", "IiO"),
    m("SetIO", "Iiii"),
    m("Event", "O"),
    m("Command", "O"),
    m("AddPort", "iid"),
    m("RemovePort", "ii"),
    m("PortSetParam", "iiIiO"),
    m("PortUseBuffers", "*"),
    m("PortSetIO", "iiiIiii"),
    m("SetActivation", "ihiii", [0, 1]),
    m("PortSetMixInfo", "iiiid"),
  ],
};

/** Short interface name for logs: "PipeWire:Interface:ClientNode" → "ClientNode". */
export function shortIface(type: string): string {
  const i = type.lastIndexOf(":");
  return i >= 0 ? type.slice(i + 1) : type;
}

/** Dict entries; values may be null (a None POD), keys are never null after checking. */
export type DictEntries = Array<[string, string | null]>;

/** MAX_DICT in protocol-native.c: receivers refuse more items. */
export const MAX_DICT_ITEMS = 1024;
/** Longest dict key we pass (pipewire.md §2.4 item 5). */
export const MAX_KEY_BYTES = 256;

function schemaError(reason: string, what: string, detail: string): PipeWireWireError {
  return new PipeWireWireError("CW_PW_SCHEMA", reason, 0, `${what}: ${detail}`);
}

/** Checks that `p` is an Int and returns it. */
export function expectInt(p: Pod | undefined, what: string): number {
  if (p?.t !== "int") throw schemaError("arg-type", what, `expected Int, got ${p?.t ?? "nothing"}`);
  return p.v;
}

/** Checks that `p` is a Long and returns it. */
export function expectLong(p: Pod | undefined, what: string): bigint {
  if (p?.t !== "long") throw schemaError("arg-type", what, `expected Long, got ${p?.t ?? "nothing"}`);
  return p.v;
}

/** Checks that `p` is a String or None; returns the string or null. */
export function expectString(p: Pod | undefined, what: string): string | null {
  if (p?.t === "string") return p.v;
  if (p?.t === "none") return null;
  throw schemaError("arg-type", what, `expected String, got ${p?.t ?? "nothing"}`);
}

/** Reads `n` inline (key, value) string pairs starting at fields[at]. */
export function readDictItems(fields: readonly Pod[], at: number, n: number, what: string): DictEntries {
  if (n < 0 || n > MAX_DICT_ITEMS) throw schemaError("dict-count", what, `${n} dict items`);
  if (at + 2 * n > fields.length)
    throw schemaError("dict-short", what, `${n} items announced, fewer present`);
  const out: DictEntries = [];
  for (let i = 0; i < n; i++) {
    const k = expectString(fields[at + 2 * i], `${what} key ${i}`);
    if (k === null || k.length === 0) throw schemaError("dict-key", what, `item ${i} has no key`);
    if (k.length > MAX_KEY_BYTES) throw schemaError("dict-key", what, `key of ${k.length} chars`);
    out.push([k, expectString(fields[at + 2 * i + 1], `${what} value ${k}`)]);
  }
  return out;
}

/** Checks a Dict POD: Struct(Int n, (String, String)*) with exactly n items. */
export function expectDict(p: Pod | undefined, what: string): DictEntries {
  if (p?.t !== "struct") throw schemaError("arg-type", what, `expected Dict, got ${p?.t ?? "nothing"}`);
  const n = expectInt(p.fields[0], `${what} count`);
  if (p.fields.length !== 1 + 2 * n)
    throw schemaError("dict-count", what, `count ${n} with ${p.fields.length - 1} strings`);
  return readDictItems(p.fields, 1, n, what);
}

/**
 * Checks `fields` against a flat signature. `exact` rejects extra trailing fields (C→S, pipewire.md §2.4 item 14);
 * S→C messages from newer daemons may append fields, so events are checked with `exact = false`.
 */
export function checkSignature(fields: readonly Pod[], sig: string, what: string, exact: boolean): void {
  if (fields.length < sig.length || (exact && fields.length !== sig.length)) {
    throw schemaError("arg-count", what, `${fields.length} fields, signature '${sig}'`);
  }
  for (let i = 0; i < sig.length; i++) {
    const f = fields[i] as Pod;
    const c = sig[i];
    const ok =
      c === "i"
        ? f.t === "int"
        : c === "l"
          ? f.t === "long"
          : c === "I"
            ? f.t === "id"
            : c === "b"
              ? f.t === "bool"
              : c === "s"
                ? f.t === "string" || f.t === "none"
                : c === "h"
                  ? f.t === "fd"
                  : c === "O"
                    ? f.t === "object" || f.t === "none"
                    : c === "T"
                      ? f.t === "struct" || f.t === "none"
                      : c === "a"
                        ? f.t === "array"
                        : c === "P"
                          ? true
                          : c === "d"
                            ? f.t === "struct"
                            : false;
    if (!ok) throw schemaError("arg-type", `${what} arg ${i}`, `expected '${c}', got ${f.t}`);
    if (c === "d") expectDict(f, `${what} arg ${i}`);
  }
}

/** The elements of an Array<Id> argument (SubscribeParams; element size checked by the POD reader). */
export function expectIdArray(p: Pod | undefined, what: string): number[] {
  if (p?.t !== "array") throw schemaError("arg-type", what, "expected Array<Id>");
  const a = p as PodArrayValue;
  const out: number[] = [];
  for (const v of a.values) {
    if (v.t !== "id") throw schemaError("arg-type", what, `Array of ${v.t}, not Id`);
    out.push(v.v);
  }
  return out;
}

/**
 * The opcodes of `names` on `iface` in a METHODS or EVENTS table, so handlers name what they match (`case
 * CoreEvent.AddMem`, never `case 6`). Throws at load time for a name the table does not have at all.
 */
export function opcodes<const N extends string>(
  table: Readonly<Record<string, readonly (MessageSpec | undefined)[]>>,
  iface: string,
  names: readonly N[],
): Readonly<Record<N, number>> {
  const specs = table[iface] ?? [];
  const out = {} as Record<N, number>;
  for (const name of names) {
    const op = specs.findIndex((x) => x?.name === name);
    if (op < 0) throw new Error(`${shortIface(iface)} has no ${name} in this table`);
    out[name] = op;
  }
  return Object.freeze(out);
}
