// The compact packed form of protocol IR used by protocols.generated.ts, and the emitter that writes that file.
import type { ArgIr, ArgTypeName, EnumIr, InterfaceIr, MessageIr, ProtocolIr } from "./protocol-ir.ts";

/** [name, since, destructor, args]; args is space-separated `name:[?]T[:iface[:enum]]`, T a signature letter. */
export type PackedMessage = readonly [name: string, since: number, destructor: 0 | 1, args: string];
/** [name, bitfield, since, entries]; entries is space-separated `name=value[@since]`. */
export type PackedEnum = readonly [name: string, bitfield: 0 | 1, since: number, entries: string];
/** [name, version, requests, events, enums]. */
export type PackedInterface = readonly [
  name: string,
  version: number,
  requests: readonly PackedMessage[],
  events: readonly PackedMessage[],
  enums: readonly PackedEnum[],
];
/** [protocol name, source file, interfaces]. */
export type PackedProtocol = readonly [name: string, file: string, interfaces: readonly PackedInterface[]];

/** libwayland's signature letters (connection.c, get_next_argument), indexed by XML type name. */
const LETTER: Readonly<Record<ArgTypeName, string>> = {
  int: "i",
  uint: "u",
  fixed: "f",
  string: "s",
  object: "o",
  new_id: "n",
  array: "a",
  fd: "h",
};
const TYPE_OF_LETTER: Readonly<Record<string, ArgTypeName>> = {
  i: "int",
  u: "uint",
  f: "fixed",
  s: "string",
  o: "object",
  n: "new_id",
  a: "array",
  h: "fd",
};

function packArg(a: ArgIr): string {
  const t = (a.nullable ? "?" : "") + LETTER[a.type];
  if (a.enumRef !== null) return `${a.name}:${t}:${a.iface ?? ""}:${a.enumRef}`;
  if (a.iface !== null) return `${a.name}:${t}:${a.iface}`;
  return `${a.name}:${t}`;
}

function packMessage(m: MessageIr): PackedMessage {
  return [m.name, m.since, m.destructor ? 1 : 0, m.args.map(packArg).join(" ")];
}

function packEnum(e: EnumIr): PackedEnum {
  const entries = e.entries.map((x) => `${x.name}=${x.value}${x.since > 1 ? `@${x.since}` : ""}`).join(" ");
  return [e.name, e.bitfield ? 1 : 0, e.since, entries];
}

/** IR → packed form. */
export function packProtocol(p: ProtocolIr): PackedProtocol {
  return [
    p.name,
    p.file,
    p.interfaces.map((i) => [
      i.name,
      i.version,
      i.requests.map(packMessage),
      i.events.map(packMessage),
      i.enums.map(packEnum),
    ]),
  ];
}

function unpackArg(s: string): ArgIr {
  const [name = "", t = "", iface = "", enumRef = ""] = s.split(":");
  const nullable = t.startsWith("?");
  const type = TYPE_OF_LETTER[nullable ? t.slice(1) : t];
  if (type === undefined) throw new TypeError(`packed arg '${s}' has an unknown type letter`);
  return {
    name,
    type,
    iface: iface === "" ? null : iface,
    nullable,
    enumRef: enumRef === "" ? null : enumRef,
  };
}

function unpackMessage(m: PackedMessage): MessageIr {
  return {
    name: m[0],
    since: m[1],
    destructor: m[2] === 1,
    args: m[3] === "" ? [] : m[3].split(" ").map(unpackArg),
  };
}

function unpackEnum(e: PackedEnum): EnumIr {
  const entries =
    e[3] === ""
      ? []
      : e[3].split(" ").map((x) => {
          const eq = x.indexOf("=");
          const at = x.indexOf("@", eq);
          return {
            name: x.slice(0, eq),
            value: Number(at < 0 ? x.slice(eq + 1) : x.slice(eq + 1, at)),
            since: at < 0 ? 1 : Number(x.slice(at + 1)),
          };
        });
  return { name: e[0], bitfield: e[1] === 1, since: e[2], entries };
}

/** Packed form → IR (done once at startup; not a hot path). */
export function unpackProtocol(p: PackedProtocol): ProtocolIr {
  const interfaces: InterfaceIr[] = p[2].map((i) => ({
    name: i[0],
    version: i[1],
    requests: i[2].map(unpackMessage),
    events: i[3].map(unpackMessage),
    enums: i[4].map(unpackEnum),
  }));
  return { name: p[0], file: p[1], interfaces };
}

/** What the generated file's header records about its inputs. */
export interface GeneratedHeader {
  /** Package name → version as dpkg-query reports it, e.g. {"libwayland-dev": "1.21.0-1"}. */
  readonly packages: Readonly<Record<string, string>>;
  /** Source directories or files, as given to the generator. */
  readonly sources: readonly string[];
  /** The command that regenerates the file. */
  readonly generator: string;
}

const q = (s: string): string => JSON.stringify(s);

/**
 * Emits the text of protocols.generated.ts: a DO-NOT-EDIT header naming sources, package versions and the
 * generator, then one line per message. Deterministic: the same IR and header give the same bytes.
 */
export function emitGeneratedModule(protocols: readonly ProtocolIr[], header: GeneratedHeader): string {
  const out: string[] = [];
  out.push(
    "// DO NOT EDIT: Wayland protocol tables generated from the protocol XML the distribution installs.",
  );
  out.push(`// Generator: ${header.generator}`);
  for (const s of header.sources) out.push(`// Source: ${s}`);
  for (const [k, v] of Object.entries(header.packages)) out.push(`// Package: ${k} ${v}`);
  out.push("// Facts only (names, versions, signatures, enums); the XML's prose is not copied.");
  out.push('import type { PackedProtocol } from "./protocol-pack.ts";');
  out.push("");
  out.push("/** Package versions (dpkg-query) of the XML these tables come from. */");
  out.push(
    `export const GENERATED_PACKAGES: Readonly<Record<string, string>> = {${Object.entries(header.packages)
      .map(([k, v]) => ` ${q(k)}: ${q(v)}`)
      .join(",")} };`,
  );
  out.push("");
  out.push("/** Every protocol found, in load order (wayland.xml, then stable, staging, unstable). */");
  out.push("export const GENERATED_PROTOCOLS: readonly PackedProtocol[] = [");
  for (const p of protocols.map(packProtocol)) {
    out.push(`  [${q(p[0])}, ${q(p[1])}, [`);
    for (const i of p[2]) {
      out.push(`    [${q(i[0])}, ${i[1]},`);
      for (const list of [i[2], i[3]]) {
        if (list.length === 0) {
          out.push("      [],");
          continue;
        }
        out.push("      [");
        for (const m of list) out.push(`        [${q(m[0])}, ${m[1]}, ${m[2]}, ${q(m[3])}],`);
        out.push("      ],");
      }
      if (i[4].length === 0) out.push("      []],");
      else {
        out.push("      [");
        for (const e of i[4]) out.push(`        [${q(e[0])}, ${e[1]}, ${e[2]}, ${q(e[3])}],`);
        out.push("      ]],");
      }
    }
    out.push("  ]],");
  }
  out.push("];");
  out.push("");
  return out.join("\n");
}
