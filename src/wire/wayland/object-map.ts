// Per-connection object ids on both sides (client ids from 1, server ids from 0xff000000) with zombies.
import type { InterfaceDesc } from "./protocol-registry.ts";

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

/** Slot index of `id` in its side's table. */
function idx(id: number): number {
  return id >= SERVER_ID_START ? id - SERVER_ID_START : id;
}

class SideTable {
  ifaces: (InterfaceDesc | null)[] = [];
  versions: number[] = [];
  states: number[] = [];
}

/**
 * The object table of one Wayland connection, as a proxy between client and server sees it. wl_display@1 exists
 * from the start. Slot i of the client side is id i; slot i of the server side is id 0xff000000 + i.
 *
 * New-id rule (libwayland wl_map_reserve_new, wayland-util.c): an id must be on its creator's side of
 * 0xff000000 and be either the next unused slot or a slot that is free. libwayland's clients take ids from a LIFO
 * free list (wl_map_insert_new), so "lowest free" is not required, only "free or next".
 */
export class ObjectMap {
  readonly #client = new SideTable();
  readonly #server = new SideTable();
  /**
   * Judge client ids as a libwayland server does: wayland-server.c destroy_resource empties a client id's slot at
   * once (delete_id is only news to the client), so a client may create a new object on a destroyed id before its
   * delete_id arrives, and that delete_id then leaves the new object alone. A server-side filter in front of a
   * real compositor needs this (`crossway guest` recreates a grown shm pool that way); a client-side view does not.
   */
  clientIdsReusable = false;
  /**
   * The pass-through mirror of the client side (pass-through.ts): for client id i, its interface's number + 1
   * while LIVE and known (0 otherwise), and its version. Typed arrays a scan reads with no descriptor lookups.
   * Replaced when they grow: read them again after any change to the map.
   */
  passIfaces = new Int32Array(64);
  passVersions = new Uint32Array(64);

  constructor(display: InterfaceDesc) {
    // Slot 0 is the null id, never allocatable (wl_display_connect inserts a placeholder at 0 on both sides).
    this.#client.ifaces.push(null);
    this.#client.versions.push(0);
    this.#client.states.push(ObjectState.LIVE);
    this.#client.ifaces.push(display);
    this.#client.versions.push(1);
    this.#client.states.push(ObjectState.LIVE);
    this.#mirror(1, display, 1);
  }

  /** Keeps {@link ObjectMap.passIfaces} in step with a client slot (null: not LIVE). */
  #mirror(id: number, iface: InterfaceDesc | null, version: number): void {
    if (id >= SERVER_ID_START) return;
    if (id >= this.passIfaces.length) {
      // Client ids are dense (canCreate: the next slot or a free one), so this doubles at most once per call.
      const ifaces = new Int32Array(2 * this.passIfaces.length);
      const versions = new Uint32Array(ifaces.length);
      ifaces.set(this.passIfaces);
      versions.set(this.passVersions);
      this.passIfaces = ifaces;
      this.passVersions = versions;
    }
    this.passIfaces[id] = iface?.known ? iface.number + 1 : 0;
    this.passVersions[id] = version;
  }

  // Hot-path lookups inline the side choice instead of returning a [table, index] pair (no allocation per call).
  #t(id: number): SideTable {
    return id >= SERVER_ID_START ? this.#server : this.#client;
  }

  /** State of `id` (FREE for ids never seen). Id 0 is never LIVE for callers: check for null first. */
  state(id: number): ObjectState {
    if (id === 0) return ObjectState.FREE;
    const t = id >= SERVER_ID_START ? this.#server : this.#client;
    const i = id >= SERVER_ID_START ? id - SERVER_ID_START : id;
    return (t.states[i] ?? ObjectState.FREE) as ObjectState;
  }

  /** Interface of a LIVE or ZOMBIE object (null if free). */
  iface(id: number): InterfaceDesc | null {
    if (id === 0) return null;
    const t = id >= SERVER_ID_START ? this.#server : this.#client;
    const i = id >= SERVER_ID_START ? id - SERVER_ID_START : id;
    return t.states[i] === ObjectState.FREE ? null : (t.ifaces[i] ?? null);
  }

  /** Interface of a LIVE object, else null (the common lookup). */
  live(id: number): InterfaceDesc | null {
    if (id === 0) return null;
    const t = id >= SERVER_ID_START ? this.#server : this.#client;
    const i = id >= SERVER_ID_START ? id - SERVER_ID_START : id;
    return t.states[i] === ObjectState.LIVE ? (t.ifaces[i] ?? null) : null;
  }

  /** Version of a LIVE or ZOMBIE object (0 if free). */
  version(id: number): number {
    const t = this.#t(id);
    const i = idx(id);
    return t.states[i] === ObjectState.FREE ? 0 : (t.versions[i] ?? 0);
  }

  /**
   * Whether `creator` may create `id` now: on its own side, and the next slot or a free one. A server id in the
   * ZOMBIE state is reusable (the server frees its ids at once, wayland-server.c wl_resource_destroy); a client id
   * is not until delete_id.
   */
  canCreate(id: number, creator: Side): boolean {
    if (id === 0) return false;
    if ((id >= SERVER_ID_START ? Side.SERVER : Side.CLIENT) !== creator) return false;
    const t = this.#t(id);
    const i = idx(id);
    if (i > t.states.length) return false;
    if (i === t.states.length) return true;
    const s = t.states[i];
    return (
      s === ObjectState.FREE ||
      (s === ObjectState.ZOMBIE && (creator === Side.SERVER || this.clientIdsReusable))
    );
  }

  /** Records a new object (after {@link ObjectMap.canCreate}). */
  insert(id: number, iface: InterfaceDesc, version: number): void {
    const t = this.#t(id);
    const i = idx(id);
    if (i > t.states.length) throw new RangeError(`object id ${id} skips ahead of the next free id`);
    t.ifaces[i] = iface;
    t.versions[i] = version;
    t.states[i] = ObjectState.LIVE;
    this.#mirror(id, iface, version);
  }

  /** A destructor ran on `id`: it becomes a zombie (see {@link ObjectState.ZOMBIE}). */
  destroy(id: number): void {
    const t = this.#t(id);
    const i = idx(id);
    if (t.states[i] === ObjectState.LIVE) {
      t.states[i] = ObjectState.ZOMBIE;
      this.#mirror(id, null, 0);
    }
  }

  /** wl_display.delete_id: the client id is free for reuse. Returns false if it was not a zombie or live. */
  deleteId(id: number): boolean {
    if (id === 0 || id >= SERVER_ID_START) return false;
    const s = this.#client.states[id];
    if (s === undefined || s === ObjectState.FREE) return false;
    // The id was already taken again (clientIdsReusable): the delete_id was about the object before it.
    if (s === ObjectState.LIVE && this.clientIdsReusable) return true;
    this.#client.states[id] = ObjectState.FREE;
    this.#client.ifaces[id] = null;
    this.#mirror(id, null, 0);
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
    for (const s of this.#client.states) if (s === ObjectState.LIVE) n++;
    for (const s of this.#server.states) if (s === ObjectState.LIVE) n++;
    return n - 1; // slot 0
  }
}
