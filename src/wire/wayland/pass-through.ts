// Which messages a proxy forwards byte for byte without decoding them, and the scan that finds a run of them.
import { HookedTableCache } from "./hooked-table-cache.ts";
import type { MessageTable } from "./message-table.ts";
import type { MessageDesc, ProtocolRegistry } from "./protocol-registry.ts";

/**
 * A proxy's pass-through messages, by MessageDesc.index: a message passes through when its arguments are only int,
 * uint and fixed, it creates and destroys nothing (no new_id, not a destructor, not wl_display.delete_id), carries
 * no fds, and the proxy has no hook on it. For such a message the exact size is the whole of libwayland's argument
 * check (connection.c wl_connection_demarshal reads 4 bytes per argument and nothing else can be wrong), so a scan
 * that checks object, opcode, version and size decides exactly what {@link WireConnection.next} would, without
 * building a decoded message. wl_region.add, wl_surface.damage, wl_pointer.motion and wl_keyboard.key are such
 * messages; most of a burst is.
 *
 * `entries[2i]` is message i's exact wire size, `entries[2i + 1]` the version it needs. A message that is not
 * pass-through has {@link NOT_PASS_THROUGH} (-1) as its size, a value no 16-bit size field can hold: with 0 there, a
 * header that claims size 0 matched it, and the scan counted that message again and again without moving.
 */
export class PassThroughTable {
  readonly registry: ProtocolRegistry;
  readonly entries: Int32Array;

  /** `hooked(desc)`: the proxy acts on this message, so it must be decoded. */
  constructor(registry: ProtocolRegistry, hooked: (desc: MessageDesc) => boolean) {
    this.registry = registry;
    this.entries = new Int32Array(2 * registry.messageCount).fill(NOT_PASS_THROUGH);
    for (const iface of registry.interfaces()) {
      for (const list of [iface.requests, iface.events]) {
        for (const d of list) {
          // scalarArgs is -1 for any message with a string, object, new_id, array or fd, a destructor, delete_id.
          if (d.scalarArgs < 0 || d.fdCount > 0 || hooked(d)) continue;
          this.entries[2 * d.index] = 8 + 4 * d.scalarArgs;
          this.entries[2 * d.index + 1] = d.since;
        }
      }
    }
  }

  /**
   * The table of a proxy whose hooks are `requests` and `events`, shared by every connection with the same hooks (a
   * proxy installs the same ones on each). Keyed by the hooked messages themselves, so a connection that hooks
   * something else never gets a table that would forward that message undecoded.
   */
  static forHooks<T>(
    registry: ProtocolRegistry,
    requests: MessageTable<T>,
    events: MessageTable<T>,
  ): PassThroughTable {
    return sharedTables.get(
      registry,
      requests,
      events,
      "",
      () =>
        new PassThroughTable(registry, (d) => requests.get(d) !== undefined || events.get(d) !== undefined),
    );
  }
}

/** The size entry of a message that must be decoded: negative, so no header's size field equals it. */
export const NOT_PASS_THROUGH = -1;

const sharedTables = new HookedTableCache<PassThroughTable>();

/** Where a proxy copies a run: its output queue or message writer (both have this method). */
export interface PassThroughSink {
  appendRange(src: Uint8Array, offset: number, length: number): unknown;
}

/** What {@link passThroughLength} found: the run's length in bytes and in messages. */
export interface PassThroughRun {
  bytes: number;
  messages: number;
}

/**
 * Bytes at `words[start / 4 ..]` (up to `end`, both byte offsets on message boundaries) that are a run of whole
 * pass-through messages in direction `dir` (0 requests, 1 events) to LIVE client objects, as their interface
 * numbers and versions stand in `objectIfaces`/`objectVersions` (ObjectMap's pass-through mirror). Stops at the
 * first message that needs decoding, is incomplete, or is wrong in any way, so that message goes through the full
 * decoder, which accepts it or words the error. Messages to server-created ids always stop the scan. `checkSince`:
 * also stop at a message newer than its object's version (requests always; events when the connection checks).
 * `maxSize`: the framer's limit, so an oversized header is left for the framer's own error. At most `maxMessages`
 * messages are taken (a rate limit's budget). The result is written to `run`, which is also returned.
 */
export function passThroughLength(
  words: Uint32Array,
  start: number,
  end: number,
  dir: 0 | 1,
  table: PassThroughTable,
  objectIfaces: Int32Array,
  objectVersions: Uint32Array,
  checkSince: boolean,
  maxSize: number,
  maxMessages: number,
  run: PassThroughRun,
): PassThroughRun {
  const entries = table.entries;
  const spans = table.registry.spans;
  const objects = objectIfaces.length;
  let p = start;
  let messages = 0;
  while (end - p >= 8 && messages < maxMessages) {
    const w = p >>> 2;
    const id = words[w] as number;
    if (id >= objects) break;
    // objectIfaces holds the interface number + 1 while the object is LIVE, 0 otherwise.
    const n = (objectIfaces[id] as number) - 1;
    if (n < 0) break;
    const word1 = words[w + 1] as number;
    const size = word1 >>> 16;
    const opcode = word1 & 0xffff;
    const s = 4 * n + 2 * dir;
    if (opcode >= (spans[s + 1] as number)) break;
    const e = 2 * ((spans[s] as number) + opcode);
    // A message the table was built before (extra XML loaded later) reads undefined: not pass-through. A matching
    // size is at least the 8-byte header (entries hold 8 + 4n or NOT_PASS_THROUGH), so every step moves forward.
    if (entries[e] !== size || size < 8 || size > end - p || size > maxSize) break;
    if (checkSince) {
      const version = objectVersions[id] as number;
      if (version > 0 && version < (entries[e + 1] as number)) break;
    }
    p += size;
    messages++;
  }
  run.bytes = p - start;
  run.messages = messages;
  return run;
}
