// Which messages a native data plane may forward undecoded, with the object-map effects it must apply to each.
import { HookedTableCache } from "./hooked-table-cache.ts";
import type { MessageTable } from "./message-table.ts";
import { ArgKind, type MessageDesc, type ProtocolRegistry, Special } from "./protocol-registry.ts";

/** Fields of a {@link FastScanTable} entry (native/src/wayland_scan.h kScan*). */
export const FastScanField = {
  /** Exact wire size, or -1: the message must be decoded. */
  SIZE: 0,
  /** The version the message needs. */
  SINCE: 1,
  /** {@link FastScanFlag} bits. */
  FLAGS: 2,
  /** Wire index of the typed new_id argument. */
  NEW_ID_ARG: 3,
  /** InterfaceDesc.slot of the object the new_id creates. */
  NEW_SLOT: 4,
  /** InterfaceDesc.number of the object the new_id creates. */
  NEW_NUMBER: 5,
} as const;

/** Entries per message. */
export const FAST_SCAN_STRIDE = 6;

/** What a message does to the object map besides being forwarded. */
export const FastScanFlag = { NEW_ID: 1, DESTRUCTOR: 2, DELETE_ID: 4 } as const;

/**
 * A superset of {@link PassThroughTable}'s messages: besides scalar-only messages without effects, it admits those
 * whose only effects a scan can apply from the bytes alone, so that a Wayland round trip (wl_display.sync,
 * wl_callback.done, wl_display.delete_id) needs no decoder either:
 * - a request with one typed new_id among scalar arguments (wl_display.sync, wl_compositor.create_region): the id
 *   must pass ObjectMap.canCreate for the client, and the object inherits its factory's version;
 * - a destructor with scalar arguments (wl_callback.done, wl_region.destroy);
 * - wl_display.delete_id.
 * Not admitted: anything with fds, strings, arrays or object arguments, an untyped new_id (wl_registry.bind), a
 * new_id in an event (a server id), a new_id of an interface no loaded XML defines, and any message with a hook.
 * For an admitted message, libwayland's argument check is its exact size and the new_id rule (connection.c
 * wl_connection_demarshal, wl_map_reserve_new), which the scan applies (native/src/wayland_scan.cc).
 */
export class FastScanTable {
  readonly registry: ProtocolRegistry;
  /** {@link FAST_SCAN_STRIDE} entries per MessageDesc.index, laid out as {@link FastScanField}. */
  readonly entries: Int32Array;

  /** `hooked(desc)`: the proxy acts on this message, so it must be decoded. */
  constructor(registry: ProtocolRegistry, hooked: (desc: MessageDesc) => boolean) {
    this.registry = registry;
    this.entries = new Int32Array(FAST_SCAN_STRIDE * registry.messageCount);
    for (let i = 0; i < registry.messageCount; i++) this.entries[FAST_SCAN_STRIDE * i] = -1;
    for (const iface of registry.interfaces()) {
      for (const list of [iface.requests, iface.events]) {
        for (const d of list) {
          if (!hooked(d)) this.#admit(d);
        }
      }
    }
  }

  #admit(d: MessageDesc): void {
    if (d.fdCount > 0) return;
    let newIdArg = -1;
    for (let i = 0; i < d.kinds.length; i++) {
      const k = d.kinds[i];
      if (k === ArgKind.INT || k === ArgKind.UINT || k === ArgKind.FIXED) continue;
      if (k !== ArgKind.NEW_ID || newIdArg >= 0 || d.isEvent || d.untypedNewId) return;
      newIdArg = i;
    }
    let flags = 0;
    let created = null;
    if (newIdArg >= 0) {
      created = this.registry.get(d.argIfaces[newIdArg] ?? "");
      if (created === undefined) return;
      flags |= FastScanFlag.NEW_ID;
    }
    if (d.destructor) flags |= FastScanFlag.DESTRUCTOR;
    if (d.special === Special.DELETE_ID) {
      if (d.kinds.length !== 1 || d.kinds[0] !== ArgKind.UINT) return;
      flags |= FastScanFlag.DELETE_ID;
    }
    const e = FAST_SCAN_STRIDE * d.index;
    this.entries[e + FastScanField.SIZE] = 8 + 4 * d.kinds.length;
    this.entries[e + FastScanField.SINCE] = d.since;
    this.entries[e + FastScanField.FLAGS] = flags;
    this.entries[e + FastScanField.NEW_ID_ARG] = newIdArg;
    this.entries[e + FastScanField.NEW_SLOT] = created?.slot ?? -1;
    this.entries[e + FastScanField.NEW_NUMBER] = created?.number ?? -1;
  }

  /**
   * The table of a proxy whose hooks are `requests` and `events`, shared by every connection with the same hooks
   * (see PassThroughTable.forHooks): one table is six numbers per message of the registry.
   */
  static forHooks<T>(
    registry: ProtocolRegistry,
    requests: MessageTable<T>,
    events: MessageTable<T>,
    options: { deleteIdGuarded?: boolean } = {},
  ): FastScanTable {
    // deleteIdGuarded: the caller's hook on wl_display.delete_id acts only on some ids, and the caller tells the scan
    // when it may (FastState.DELETE_ID_WATCHED); the table then admits delete_id despite the hook.
    const guarded = options.deleteIdGuarded === true;
    return sharedTables.get(
      registry,
      requests,
      events,
      guarded ? "delete_id guarded" : "",
      () =>
        new FastScanTable(
          registry,
          (d) =>
            !(guarded && d.special === Special.DELETE_ID) &&
            (requests.get(d) !== undefined || events.get(d) !== undefined),
        ),
    );
  }
}

const sharedTables = new HookedTableCache<FastScanTable>();
