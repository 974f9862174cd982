// The plain intermediate form of a Wayland protocol (facts from its XML, no prose), and XML text → IR.
import { WireXmlError } from "./errors.ts";
import { parseXml, type XmlElement } from "./xml-parser.ts";

/** Argument types as spelled in protocol XML (wayland.dtd, <arg type=...>). */
export type ArgTypeName = "int" | "uint" | "fixed" | "string" | "object" | "new_id" | "array" | "fd";

/** One <arg>: `iface` is the interface attribute (null for untyped object/new_id). */
export interface ArgIr {
  readonly name: string;
  readonly type: ArgTypeName;
  readonly iface: string | null;
  readonly nullable: boolean;
  /** The enum attribute, e.g. "wl_shm.format" or "format" (local to the interface); a fact, not enforced. */
  readonly enumRef: string | null;
}

/** One <request> or <event>. */
export interface MessageIr {
  readonly name: string;
  readonly since: number;
  readonly destructor: boolean;
  readonly args: readonly ArgIr[];
}

/** One <entry> of an <enum>. */
export interface EnumEntryIr {
  readonly name: string;
  readonly value: number;
  readonly since: number;
}

/** One <enum>. */
export interface EnumIr {
  readonly name: string;
  readonly bitfield: boolean;
  readonly since: number;
  readonly entries: readonly EnumEntryIr[];
}

/** One <interface>. */
export interface InterfaceIr {
  readonly name: string;
  readonly version: number;
  readonly requests: readonly MessageIr[];
  readonly events: readonly MessageIr[];
  readonly enums: readonly EnumIr[];
}

/** One <protocol> file. `file` is the path relative to the directory it was found in (for headers and errors). */
export interface ProtocolIr {
  readonly name: string;
  readonly file: string;
  readonly interfaces: readonly InterfaceIr[];
}

const ARG_TYPES: ReadonlySet<string> = new Set([
  "int",
  "uint",
  "fixed",
  "string",
  "object",
  "new_id",
  "array",
  "fd",
]);

/**
 * Parses one protocol XML text into IR. `file` names it in errors, which read `file:line: what`. Checks what
 * libwayland's scanner checks that matters on the wire: names present, known arg types, positive integer
 * versions/since, numeric enum values, at most one new_id per message, allow-null only on string/object/new_id.
 */
export function protocolFromXml(text: string, file: string): ProtocolIr {
  const root = parseXml(text, file);
  const fail = (el: XmlElement, what: string): never => {
    throw new WireXmlError(`${file}:${el.line}: ${what}`, { source: file, line: el.line });
  };
  const need = (el: XmlElement, attr: string): string => {
    const v = el.attrs.get(attr);
    if (v === undefined || v === "") fail(el, `<${el.name}> has no ${attr} attribute`);
    return v as string;
  };
  const positive = (el: XmlElement, attr: string, dflt: number | null): number => {
    const raw = el.attrs.get(attr);
    if (raw === undefined) {
      if (dflt === null) fail(el, `<${el.name}> has no ${attr} attribute`);
      return dflt as number;
    }
    if (!/^[0-9]+$/.test(raw) || Number(raw) < 1 || Number(raw) > 0xffffffff)
      fail(el, `<${el.name}> ${attr}="${raw}" is not a positive integer`);
    return Number(raw);
  };
  if (root.name !== "protocol") fail(root, `root element is <${root.name}>, expected <protocol>`);
  const pname = need(root, "name");
  const interfaces: InterfaceIr[] = [];
  const seen = new Set<string>();
  for (const ie of root.children) {
    if (ie.name !== "interface") continue;
    const name = need(ie, "name");
    if (seen.has(name)) fail(ie, `interface ${name} is defined twice`);
    seen.add(name);
    const version = positive(ie, "version", null);
    const requests: MessageIr[] = [];
    const events: MessageIr[] = [];
    const enums: EnumIr[] = [];
    for (const me of ie.children) {
      if (me.name === "request" || me.name === "event") {
        const mname = need(me, "name");
        const type = me.attrs.get("type");
        if (type !== undefined && type !== "destructor")
          fail(me, `${name}.${mname} has unknown type "${type}" (only "destructor" exists)`);
        const since = positive(me, "since", 1);
        if (since > version)
          fail(me, `${name}.${mname} since ${since} is above interface version ${version}`);
        const args: ArgIr[] = [];
        let newIds = 0;
        for (const ae of me.children) {
          if (ae.name !== "arg") continue;
          const aname = need(ae, "name");
          const atype = need(ae, "type");
          if (!ARG_TYPES.has(atype))
            fail(ae, `${name}.${mname} argument ${aname} has unknown type "${atype}"`);
          const allowNull = ae.attrs.get("allow-null");
          if (allowNull !== undefined && allowNull !== "true" && allowNull !== "false")
            fail(ae, `${name}.${mname} argument ${aname} has allow-null="${allowNull}" (true or false)`);
          const nullable = allowNull === "true";
          if (nullable && atype !== "string" && atype !== "object" && atype !== "new_id")
            fail(ae, `${name}.${mname} argument ${aname} of type ${atype} cannot be allow-null`);
          if (atype === "new_id") newIds++;
          const iface = ae.attrs.get("interface") ?? null;
          if (iface !== null && atype !== "object" && atype !== "new_id")
            fail(ae, `${name}.${mname} argument ${aname} of type ${atype} cannot have an interface`);
          args.push({
            name: aname,
            type: atype as ArgTypeName,
            iface,
            nullable,
            enumRef: ae.attrs.get("enum") ?? null,
          });
        }
        if (newIds > 1) fail(me, `${name}.${mname} has ${newIds} new_id arguments (at most 1)`);
        (me.name === "request" ? requests : events).push({
          name: mname,
          since,
          destructor: type === "destructor",
          args,
        });
      } else if (me.name === "enum") {
        const ename = need(me, "name");
        const bf = me.attrs.get("bitfield");
        if (bf !== undefined && bf !== "true" && bf !== "false")
          fail(me, `enum ${name}.${ename} has bitfield="${bf}" (true or false)`);
        const entries: EnumEntryIr[] = [];
        for (const ee of me.children) {
          if (ee.name !== "entry") continue;
          const en = need(ee, "name");
          const raw = need(ee, "value");
          if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(raw) || Number(raw) > 0xffffffff)
            fail(ee, `enum ${name}.${ename} entry ${en} has value "${raw}", not a 32-bit unsigned integer`);
          entries.push({ name: en, value: Number(raw), since: positive(ee, "since", 1) });
        }
        enums.push({ name: ename, bitfield: bf === "true", since: positive(me, "since", 1), entries });
      }
    }
    interfaces.push({ name, version, requests, events, enums });
  }
  return { name: pname, file, interfaces };
}
