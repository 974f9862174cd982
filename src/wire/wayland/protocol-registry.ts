// Compiled protocol descriptors (per message: arg kinds, nullability, interfaces, fd counts) and their registry.
import { WireXmlError } from "./errors.ts";
import type { EnumIr, MessageIr, ProtocolIr } from "./protocol-ir.ts";
import { protocolFromXml } from "./protocol-ir.ts";
import { unpackProtocol } from "./protocol-pack.ts";
import { GENERATED_PROTOCOLS } from "./protocols.generated.ts";

/** Wire argument kinds, as small ints for Uint8Array signatures (no TS enum, see style.md rule 6). */
export const ArgKind = {
  INT: 0,
  UINT: 1,
  FIXED: 2,
  STRING: 3,
  OBJECT: 4,
  NEW_ID: 5,
  ARRAY: 6,
  FD: 7,
} as const;
/** One of {@link ArgKind}'s values. */
export type ArgKind = (typeof ArgKind)[keyof typeof ArgKind];

/** libwayland's closure limit (WL_CLOSURE_MAX_ARGS in connection.c): no message has more wire arguments. */
export const MAX_ARGS = 20;

const KIND_OF_TYPE = {
  int: ArgKind.INT,
  uint: ArgKind.UINT,
  fixed: ArgKind.FIXED,
  string: ArgKind.STRING,
  object: ArgKind.OBJECT,
  new_id: ArgKind.NEW_ID,
  array: ArgKind.ARRAY,
  fd: ArgKind.FD,
} as const;
const LETTERS = "iufsonah";

/** Special messages the object map must act on, found once at compile time instead of by name per message. */
export const Special = { NONE: 0, DELETE_ID: 1 } as const;

/** One request or event, compiled for the hot path. Wire args: an untyped new_id is three (string, uint, new_id). */
export interface MessageDesc {
  readonly iface: InterfaceDesc;
  readonly opcode: number;
  readonly isEvent: boolean;
  readonly name: string;
  readonly since: number;
  readonly destructor: boolean;
  /** Kind of each wire argument. */
  readonly kinds: Uint8Array;
  /** 1 where the wire argument is allow-null. */
  readonly nullable: Uint8Array;
  readonly argNames: readonly string[];
  /** Interface name of object/new_id args (null: untyped or not an object). */
  readonly argIfaces: readonly (string | null)[];
  /** Enum attribute of each wire argument (facts only). */
  readonly argEnums: readonly (string | null)[];
  readonly fdCount: number;
  /** Wire index of the new_id argument, -1 if none. */
  readonly newIdIndex: number;
  /** True for wl_registry.bind-style untyped new_id: interface name and version precede the id. */
  readonly untypedNewId: boolean;
  /** libwayland's signature string, since prefix included (e.g. "3i", "usun"), for its error wording. */
  readonly signature: string;
  readonly special: number;
  /**
   * The argument count when every argument is an int, uint or fixed and the message has no effect on the object
   * map (no destructor, nothing special): such a message is valid exactly when it is 8 + 4n bytes long, so a
   * decoder can take it without walking its arguments. -1 otherwise.
   */
  readonly scalarArgs: number;
  /** Whether any argument is an object (those are looked up in the object map after decoding). */
  readonly hasObjectArgs: boolean;
  /**
   * A number no other message of its registry has, from 0 up, so a per-connection table can be an array indexed
   * by it (an array read is cheaper than a Map lookup keyed by the descriptor, once per message).
   */
  readonly index: number;
}

/** One interface, compiled. `known` is false for placeholders of interfaces no loaded XML defines. */
export interface InterfaceDesc {
  readonly name: string;
  readonly version: number;
  readonly requests: readonly MessageDesc[];
  readonly events: readonly MessageDesc[];
  readonly enums: readonly EnumIr[];
  /** The protocol file it came from ("" for placeholders). */
  readonly file: string;
  readonly known: boolean;
  /** fd count per event opcode: what an event to a zombie object still carries (libwayland wl_zombie.fd_count). */
  readonly eventFdCounts: Uint8Array;
  /**
   * Sequential number of a known interface in its registry: its entry in {@link ProtocolRegistry.spans} (pass-through
   * scans, pass-through.ts). -1 for placeholders.
   */
  readonly number: number;
  /**
   * Index of this interface, known or placeholder, among every one its registry ever made ({@link
   * ProtocolRegistry.bySlot}): how a typed object table names an object's interface (object-map.ts).
   */
  readonly slot: number;
}

function compileMessage(
  iface: InterfaceDesc,
  m: MessageIr,
  opcode: number,
  isEvent: boolean,
  file: string,
  index: number,
): MessageDesc {
  const kinds: number[] = [];
  const nullable: number[] = [];
  const names: string[] = [];
  const ifaces: (string | null)[] = [];
  const enums: (string | null)[] = [];
  let sig = m.since > 1 ? String(m.since) : "";
  let newIdIndex = -1;
  let untyped = false;
  let fds = 0;
  const push = (kind: number, name: string, nul: boolean, ifc: string | null, en: string | null): void => {
    kinds.push(kind);
    nullable.push(nul ? 1 : 0);
    names.push(name);
    ifaces.push(ifc);
    enums.push(en);
    sig += (nul ? "?" : "") + LETTERS[kind];
  };
  for (const a of m.args) {
    const kind = KIND_OF_TYPE[a.type];
    if (kind === ArgKind.NEW_ID && a.iface === null) {
      // wayland-scanner expands an untyped new_id to "sun" (interface name, version, id): scanner.c emit_messages.
      push(ArgKind.STRING, "interface", false, null, null);
      push(ArgKind.UINT, "version", false, null, null);
      untyped = true;
    }
    if (kind === ArgKind.NEW_ID) newIdIndex = kinds.length;
    if (kind === ArgKind.FD) fds++;
    push(kind, a.name, a.nullable, a.iface, a.enumRef);
  }
  const special =
    isEvent && iface.name === "wl_display" && m.name === "delete_id" ? Special.DELETE_ID : Special.NONE;
  if (kinds.length > MAX_ARGS)
    throw new WireXmlError(
      `${file}: ${iface.name}.${m.name} has ${kinds.length} wire arguments (at most ${MAX_ARGS})`,
      {
        source: file,
        line: 0,
      },
    );
  return {
    iface,
    opcode,
    isEvent,
    name: m.name,
    since: m.since,
    destructor: m.destructor,
    kinds: Uint8Array.from(kinds),
    nullable: Uint8Array.from(nullable),
    argNames: names,
    argIfaces: ifaces,
    argEnums: enums,
    fdCount: fds,
    newIdIndex,
    untypedNewId: untyped,
    signature: sig,
    special,
    scalarArgs:
      kinds.every((k) => k <= ArgKind.FIXED) && !m.destructor && special === Special.NONE ? kinds.length : -1,
    hasObjectArgs: kinds.includes(ArgKind.OBJECT),
    index,
  };
}

/** Where a protocol came from and what it replaced, for diagnostics. */
export interface ShadowedInterface {
  readonly name: string;
  /** The file whose definition is in use. */
  readonly kept: string;
  /** The file whose definition was ignored. */
  readonly ignored: string;
}

/**
 * All known interfaces by name. Built from the generated tables, extended at run time with extra XML (a new
 * protocol needs no rebuild). Interface names are global on the wire, so a name defined twice is resolved by
 * load order: the first definition wins unless `override` is set (extra XML given by the user overrides).
 * For example unstable xdg-shell v5 redefines stable xdg-shell's xdg_surface/xdg_popup; stable is loaded first.
 */
export class ProtocolRegistry {
  readonly #byName = new Map<string, InterfaceDesc>();
  readonly #placeholders = new Map<string, InterfaceDesc>();
  /** Interface definitions that lost to an earlier (or overriding) one. */
  readonly shadowed: ShadowedInterface[] = [];
  #messageCount = 0;
  #spans = new Int32Array(4 * 64);
  #interfaceCount = 0;
  /** Every interface made, known, overridden or placeholder, by {@link InterfaceDesc.slot}. */
  readonly #bySlot: InterfaceDesc[] = [];

  /** Messages compiled into this registry: every {@link MessageDesc.index} of it is below this. */
  get messageCount(): number {
    return this.#messageCount;
  }

  /** A registry holding the generated tables (the installed XML at generation time). */
  static fromGenerated(): ProtocolRegistry {
    const r = new ProtocolRegistry();
    for (const p of GENERATED_PROTOCOLS) r.addProtocol(unpackProtocol(p));
    return r;
  }

  /** Adds a protocol given as XML text (`file` names it in errors). Throws WireXmlError on bad XML. */
  addXml(text: string, file: string, options: { override?: boolean } = {}): void {
    this.addProtocol(protocolFromXml(text, file), options);
  }

  /** Adds a protocol in IR form. */
  addProtocol(p: ProtocolIr, options: { override?: boolean } = {}): void {
    for (const i of p.interfaces) {
      const prev = this.#byName.get(i.name);
      if (prev !== undefined && options.override !== true) {
        this.shadowed.push({ name: i.name, kept: prev.file, ignored: p.file });
        continue;
      }
      if (prev !== undefined) this.shadowed.push({ name: i.name, kept: p.file, ignored: prev.file });
      const requests: MessageDesc[] = [];
      const events: MessageDesc[] = [];
      const desc: InterfaceDesc = {
        name: i.name,
        version: i.version,
        requests,
        events,
        enums: i.enums,
        file: p.file,
        known: true,
        eventFdCounts: new Uint8Array(i.events.length),
        number: this.#interfaceCount++,
        slot: this.#bySlot.length,
      };
      this.#bySlot.push(desc);
      const firstRequest = this.#messageCount;
      i.requests.forEach((m, op) => {
        requests.push(compileMessage(desc, m, op, false, p.file, this.#messageCount++));
      });
      const firstEvent = this.#messageCount;
      i.events.forEach((m, op) => {
        const d = compileMessage(desc, m, op, true, p.file, this.#messageCount++);
        events.push(d);
        desc.eventFdCounts[op] = d.fdCount;
      });
      this.#setSpan(desc.number, firstRequest, requests.length, firstEvent, events.length);
      Object.freeze(requests);
      Object.freeze(events);
      this.#byName.set(i.name, Object.freeze(desc));
    }
  }

  /**
   * Where each known interface's messages sit in the registry's message indexes (MessageDesc.index): for the
   * interface numbered k, `[4k]` its first request's index, `[4k+1]` its request count, `[4k+2]` and `[4k+3]` the
   * same for its events. Typed, so a pass-through scan reads it without touching the descriptors. Replaced (not
   * mutated in place) when it grows: read it again after adding protocols.
   */
  get spans(): Int32Array {
    return this.#spans;
  }

  #setSpan(n: number, firstRequest: number, requests: number, firstEvent: number, events: number): void {
    if (4 * n + 4 > this.#spans.length) {
      const grown = new Int32Array(this.#spans.length * 2);
      grown.set(this.#spans);
      this.#spans = grown;
    }
    this.#spans.set([firstRequest, requests, firstEvent, events], 4 * n);
  }

  /** The interface called `name`, or undefined. */
  get(name: string): InterfaceDesc | undefined {
    return this.#byName.get(name);
  }

  /** The interface called `name`, or a placeholder with no messages (known: false) so an object can still be tracked. */
  getOrPlaceholder(name: string): InterfaceDesc {
    const known = this.#byName.get(name);
    if (known !== undefined) return known;
    let ph = this.#placeholders.get(name);
    if (ph === undefined) {
      ph = Object.freeze({
        name,
        version: 0,
        requests: [],
        events: [],
        enums: [],
        file: "",
        known: false,
        eventFdCounts: new Uint8Array(0),
        number: -1,
        slot: this.#bySlot.length,
      });
      this.#bySlot.push(ph);
      this.#placeholders.set(name, ph);
    }
    return ph;
  }

  /** The interface whose {@link InterfaceDesc.slot} is `slot` (undefined if none has it). */
  bySlot(slot: number): InterfaceDesc | undefined {
    return this.#bySlot[slot];
  }

  /** All known interfaces, in load order. */
  interfaces(): IterableIterator<InterfaceDesc> {
    return this.#byName.values();
  }

  get size(): number {
    return this.#byName.size;
  }
}
