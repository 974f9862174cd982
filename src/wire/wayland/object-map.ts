// Per-connection object ids on both sides (client ids from 1, server ids from 0xff000000) with zombies.
import type { InterfaceDesc, ProtocolRegistry } from "./protocol-registry.ts";

/** First id the server allocates (wayland-private.h WL_SERVER_ID_START). */
export const SERVER_ID_START = 0xff000000;
/** Largest id (ids are u32). */
export const MAX_ID = 0xffffffff;

/** Which peer created (and so owns the id range of) an object. */
export const Side = { CLIENT: 0, SERVER: 1 } as const;
/** One of {@link Side}'s values. */
export type Side = (typeof Side)[keyof typeof Side];

/** Slot states. */
export const ObjectState = {
  /** Never used, or freed: may be created again by its side. */
  FREE: 0,
  LIVE: 1,
  /**
   * Destroyed but not yet forgotten: a client id waiting for wl_display.delete_id, or a server id the client
   * destroyed (the server may still send events to it until it processes the destroy). Events to a zombie are
   * discarded but still carry their fds (libwayland client.c queue_event, wl_zombie.fd_count), so the fds are
   * taken from the queue and never go to the wrong message.
   */
  ZOMBIE: 2,
} as const;
/** One of {@link ObjectState}'s values. */
export type ObjectState = (typeof ObjectState)[keyof typeof ObjectState];

/** The server side: ids from 0xff000000, created by the compositor; kept in plain arrays (no native reader). */
class SideTable {
  ifaces: (InterfaceDesc | null)[] = [];
  versions: number[] = [];
  states: number[] = [];
}

/** Fields of {@link ObjectMap.clientMeta}. */
export const ClientMeta = {
  /** Slots in use, [0, NEXT): the next id a client may take besides a free one. */
  NEXT: 0,
  /** {@link ObjectMap.clientIdsReusable} as 0 or 1. */
  IDS_REUSABLE: 1,
} as const;

/**
 * The object table of one Wayland connection, as a proxy between client and server sees it. wl_display@1 exists
 * from the start. Slot i of the client side is id i; slot i of the server side is id 0xff000000 + i.
 *
 * New-id rule (libwayland wl_map_reserve_new, wayland-util.c): an id must be on its creator's side of
 * 0xff000000 and be either the next unused slot or a slot that is free. libwayland's clients take ids from a LIFO
 * free list (wl_map_insert_new), so "lowest free" is not required, only "free or next".
 *
 * The client side lives in typed arrays (state, interface slot, version, pass-through mirror, and the next slot in
 * {@link ObjectMap.clientMeta}), so that native code can read and update it with the same rules as this class
 * (docs/native-data-plane.md, step 1). The arrays are replaced when they grow: read them again after any change.
 */
export class ObjectMap {
  readonly #registry: ProtocolRegistry;
  readonly #server = new SideTable();
  /** Client slot states ({@link ObjectState}). */
  clientStates = new Uint8Array(64);
  /** Client slot interfaces: {@link InterfaceDesc.slot} + 1 while LIVE or ZOMBIE, 0 when FREE. */
  clientSlots = new Int32Array(64);
  /** Client slot versions while LIVE or ZOMBIE (0 when FREE). Also the pass-through scan's versions. */
  clientVersions = new Uint32Array(64);
  /**
   * The pass-through mirror of the client side (pass-through.ts): for client id i, its interface's number + 1
   * while LIVE and known (0 otherwise). A scan reads it with no descriptor lookups.
   */
  passIfaces = new Int32Array(64);
  /** [{@link ClientMeta.NEXT}, {@link ClientMeta.IDS_REUSABLE}]. */
  readonly clientMeta = new Int32Array(2);
  /** Called after the client arrays were replaced by larger ones (a native reader must take the new ones). */
  onClientGrow: (() => void) | null = null;

  constructor(registry: ProtocolRegistry) {
    const display = registry.get("wl_display");
    if (display === undefined)
      throw new RangeError("protocol registry has no wl_display (wayland.xml not loaded)");
    this.#registry = registry;
    // Slot 0 is the null id, never allocatable (wl_display_connect inserts a placeholder at 0 on both sides).
    this.clientStates[0] = ObjectState.LIVE;
    this.clientMeta[ClientMeta.NEXT] = 1;
    this.insert(1, display, 1);
  }

  /**
   * Judge client ids as a libwayland server does: wayland-server.c destroy_resource empties a client id's slot at
   * once (delete_id is only news to the client), so a client may create a new object on a destroyed id before its
   * delete_id arrives, and that delete_id then leaves the new object alone. A server-side filter in front of a
   * real compositor needs this (`crossway guest` recreates a grown shm pool that way); a client-side view does not.
   */
  get clientIdsReusable(): boolean {
    return this.clientMeta[ClientMeta.IDS_REUSABLE] === 1;
  }

  set clientIdsReusable(on: boolean) {
    this.clientMeta[ClientMeta.IDS_REUSABLE] = on ? 1 : 0;
  }

  /** The client side's capacity in slots (every typed array has this length). */
  get clientCapacity(): number {
    return this.clientStates.length;
  }

  /** Makes room for client slot `id` (ids are dense: canCreate allows only the next slot or a free one). */
  #growClient(id: number): void {
    let n = this.clientStates.length;
    while (n <= id) n *= 2;
    const states = new Uint8Array(n);
    const slots = new Int32Array(n);
    const versions = new Uint32Array(n);
    const pass = new Int32Array(n);
    states.set(this.clientStates);
    slots.set(this.clientSlots);
    versions.set(this.clientVersions);
    pass.set(this.passIfaces);
    this.clientStates = states;
    this.clientSlots = slots;
    this.clientVersions = versions;
    this.passIfaces = pass;
    this.onClientGrow?.();
  }

  #clientIface(i: number): InterfaceDesc | null {
    const slot = this.clientSlots[i] as number;
    return slot === 0 ? null : (this.#registry.bySlot(slot - 1) ?? null);
  }

  /** State of `id` (FREE for ids never seen). Id 0 is never LIVE for callers: check for null first. */
  state(id: number): ObjectState {
    if (id === 0) return ObjectState.FREE;
    if (id >= SERVER_ID_START)
      return (this.#server.states[id - SERVER_ID_START] ?? ObjectState.FREE) as ObjectState;
    return (id < this.clientStates.length ? this.clientStates[id] : ObjectState.FREE) as ObjectState;
  }

  /** Interface of a LIVE or ZOMBIE object (null if free). */
  iface(id: number): InterfaceDesc | null {
    if (id === 0) return null;
    if (id >= SERVER_ID_START) {
      const i = id - SERVER_ID_START;
      const t = this.#server;
      return t.states[i] === ObjectState.FREE ? null : (t.ifaces[i] ?? null);
    }
    if (id >= this.clientStates.length || this.clientStates[id] === ObjectState.FREE) return null;
    return this.#clientIface(id);
  }

  /** Interface of a LIVE object, else null (the common lookup). */
  live(id: number): InterfaceDesc | null {
    if (id === 0) return null;
    if (id >= SERVER_ID_START) {
      const i = id - SERVER_ID_START;
      const t = this.#server;
      return t.states[i] === ObjectState.LIVE ? (t.ifaces[i] ?? null) : null;
    }
    if (id >= this.clientStates.length || this.clientStates[id] !== ObjectState.LIVE) return null;
    return this.#clientIface(id);
  }

  /** Version of a LIVE or ZOMBIE object (0 if free). */
  version(id: number): number {
    if (id >= SERVER_ID_START) {
      const i = id - SERVER_ID_START;
      const t = this.#server;
      return t.states[i] === ObjectState.FREE || t.states[i] === undefined ? 0 : (t.versions[i] ?? 0);
    }
    if (id >= this.clientStates.length || this.clientStates[id] === ObjectState.FREE) return 0;
    return this.clientVersions[id] as number;
  }

  /**
   * Whether `creator` may create `id` now: on its own side, and the next slot or a free one. A server id in the
   * ZOMBIE state is reusable (the server frees its ids at once, wayland-server.c wl_resource_destroy); a client id
   * is not until delete_id.
   */
  canCreate(id: number, creator: Side): boolean {
    if (id === 0) return false;
    if ((id >= SERVER_ID_START ? Side.SERVER : Side.CLIENT) !== creator) return false;
    let i: number;
    let next: number;
    let s: number | undefined;
    if (id >= SERVER_ID_START) {
      i = id - SERVER_ID_START;
      next = this.#server.states.length;
      s = this.#server.states[i];
    } else {
      i = id;
      next = this.clientMeta[ClientMeta.NEXT] as number;
      s = i < next ? this.clientStates[i] : undefined;
    }
    if (i > next) return false;
    if (i === next) return true;
    return (
      s === ObjectState.FREE ||
      (s === ObjectState.ZOMBIE && (creator === Side.SERVER || this.clientIdsReusable))
    );
  }

  /** Records a new object (after {@link ObjectMap.canCreate}). */
  insert(id: number, iface: InterfaceDesc, version: number): void {
    if (id >= SERVER_ID_START) {
      const t = this.#server;
      const i = id - SERVER_ID_START;
      if (i > t.states.length) throw new RangeError(`object id ${id} skips ahead of the next free id`);
      t.ifaces[i] = iface;
      t.versions[i] = version;
      t.states[i] = ObjectState.LIVE;
      return;
    }
    const next = this.clientMeta[ClientMeta.NEXT] as number;
    if (id > next) throw new RangeError(`object id ${id} skips ahead of the next free id`);
    if (id >= this.clientStates.length) this.#growClient(id);
    if (id === next) this.clientMeta[ClientMeta.NEXT] = next + 1;
    this.clientStates[id] = ObjectState.LIVE;
    this.clientSlots[id] = iface.slot + 1;
    this.clientVersions[id] = version;
    this.passIfaces[id] = iface.known ? iface.number + 1 : 0;
  }

  /** A destructor ran on `id`: it becomes a zombie (see {@link ObjectState.ZOMBIE}). */
  destroy(id: number): void {
    if (id >= SERVER_ID_START) {
      const t = this.#server;
      const i = id - SERVER_ID_START;
      if (t.states[i] === ObjectState.LIVE) t.states[i] = ObjectState.ZOMBIE;
      return;
    }
    if (id < this.clientStates.length && this.clientStates[id] === ObjectState.LIVE) {
      this.clientStates[id] = ObjectState.ZOMBIE;
      this.passIfaces[id] = 0;
    }
  }

  /** wl_display.delete_id: the client id is free for reuse. Returns false if it was not a zombie or live. */
  deleteId(id: number): boolean {
    if (id === 0 || id >= SERVER_ID_START || id >= this.clientStates.length) return false;
    const s = this.clientStates[id];
    if (s === ObjectState.FREE) return false;
    // The id was already taken again (clientIdsReusable): the delete_id was about the object before it.
    if (s === ObjectState.LIVE && this.clientIdsReusable) return true;
    this.clientStates[id] = ObjectState.FREE;
    this.clientSlots[id] = 0;
    this.clientVersions[id] = 0;
    this.passIfaces[id] = 0;
    return true;
  }

  /** fds an event with `opcode` to the zombie `id` carries (0 if unknown). */
  zombieFdCount(id: number, opcode: number): number {
    const iface = this.iface(id);
    return iface === null ? 0 : (iface.eventFdCounts[opcode] ?? 0);
  }

  /** Number of LIVE objects (diagnostics: `crossway status` on the ship branch counts a client's objects with it). */
  liveCount(): number {
    let n = 0;
    const next = this.clientMeta[ClientMeta.NEXT] as number;
    for (let i = 1; i < next; i++) if (this.clientStates[i] === ObjectState.LIVE) n++;
    for (const s of this.#server.states) if (s === ObjectState.LIVE) n++;
    return n;
  }
}
