// Exact argument decoding of one framed message against its descriptor, in libwayland's check order.
import type { ArgValues } from "./arg-values.ts";
import { DisplayErrorCode, WireProtocolError } from "./errors.ts";
import type { FdQueue } from "./fd-queue.ts";
import type { MessageView } from "./framer.ts";
import type { ObjectMap, Side } from "./object-map.ts";
import { ArgKind, type MessageDesc } from "./protocol-registry.ts";

/** Builds the error for a bad argument: libwayland's wl_log wording, and the wl_display.error its server posts. */
export function argumentError(
  view: { objectId: number; opcode: number },
  desc: MessageDesc,
  arg: number,
  what: string,
  value?: unknown,
): WireProtocolError {
  const where = `${desc.iface.name}@${view.objectId}.${desc.name}`;
  const argName = arg < 0 ? "(none)" : (desc.argNames[arg] ?? `#${arg}`);
  return new WireProtocolError(
    "CW_WIRE_INVALID_ARGUMENTS",
    `${where}: argument ${argName}: ${what}, message ${desc.name}(${desc.signature})`,
    {
      iface: desc.iface.name,
      objectId: view.objectId,
      opcode: view.opcode,
      message: desc.name,
      arg: argName,
      ...(value !== undefined ? { value } : {}),
    },
    // wayland-server.c wl_client_connection_data: every demarshal/lookup failure becomes this text on wl_display.
    { objectId: 1, code: DisplayErrorCode.INVALID_METHOD, message: `invalid arguments for ${where}` },
  );
}

/**
 * Decodes `view`'s arguments per `desc` into `out`, checking in wl_connection_demarshal's order, argument by
 * argument: enough bytes ("message too short"), non-null where not allow-null, string NUL termination, string and
 * array lengths against the bytes left (before anything is sized by them), new_id validity on the creator's side
 * (wl_map_reserve_new), and an fd queued for each fd argument. Finally the message must end exactly at its size
 * (libwayland ignores trailing bytes; a proxy that re-encodes must not).
 *
 * fds are only peeked: on success the caller consumes `desc.fdCount` from `fds` and owns them; on error they stay
 * queued and are closed with the connection. Returns nothing; throws WireProtocolError.
 */
export function decodeArgs(
  view: MessageView,
  desc: MessageDesc,
  out: ArgValues,
  fds: FdQueue,
  objects: ObjectMap | null,
  creator: Side,
): void {
  const words = view.words;
  const kinds = desc.kinds;
  const n = kinds.length;
  let p = (view.offset >>> 2) + 2;
  const end = (view.offset + view.size) >>> 2;
  let fdIndex = 0;
  out.bytes = view.bytes;
  out.count = n;
  for (let i = 0; i < n; i++) {
    const kind = kinds[i];
    if (kind === ArgKind.FD) {
      // No bytes on the wire: the fd comes from the connection's queue (connection.c, wl_connection_demarshal 'h').
      const fd = fds.peek(fdIndex);
      if (fd < 0) throw argumentError(view, desc, i, `file descriptor expected, object (${view.objectId})`);
      fdIndex++;
      out.word[i] = fd;
      continue;
    }
    if (p >= end) throw argumentError(view, desc, i, `message too short, object (${view.objectId})`);
    const w = words[p++] as number;
    switch (kind) {
      case ArgKind.INT:
      case ArgKind.UINT:
      case ArgKind.FIXED:
        out.word[i] = w;
        break;
      case ArgKind.OBJECT:
        if (w === 0 && desc.nullable[i] === 0)
          throw argumentError(view, desc, i, "NULL object received on non-nullable type");
        out.word[i] = w;
        break;
      case ArgKind.NEW_ID:
        if (w === 0) {
          if (desc.nullable[i] === 0)
            throw argumentError(view, desc, i, "NULL new ID received on non-nullable type");
        } else if (objects !== null && !objects.canCreate(w, creator)) {
          throw argumentError(view, desc, i, `not a valid new object id (${w})`, w);
        }
        out.word[i] = w;
        break;
      case ArgKind.STRING: {
        out.word[i] = w;
        if (w === 0) {
          if (desc.nullable[i] === 0)
            throw argumentError(view, desc, i, "NULL string received on non-nullable type");
          out.offset[i] = 0;
          break;
        }
        // Compare in words before using the length for anything (w may be near 2^32).
        const padded = Math.ceil(w / 4);
        if (padded > end - p)
          throw argumentError(
            view,
            desc,
            i,
            `message too short, object (${view.objectId}); string length ${w}`,
            w,
          );
        const off = p << 2;
        if (view.bytes[off + w - 1] !== 0) throw argumentError(view, desc, i, "string not nul-terminated");
        out.offset[i] = off;
        p += padded;
        break;
      }
      default: {
        // ArgKind.ARRAY (the last kind with bytes).
        const padded = Math.ceil(w / 4);
        if (padded > end - p)
          throw argumentError(
            view,
            desc,
            i,
            `message too short, object (${view.objectId}); array length ${w}`,
            w,
          );
        out.word[i] = w;
        out.offset[i] = p << 2;
        p += padded;
      }
    }
  }
  if (p !== end)
    throw argumentError(
      view,
      desc,
      n - 1, // the last argument (-1 names none for argument-less messages)
      `message has ${(end - p) * 4} bytes after its last argument, object (${view.objectId})`,
      view.size,
    );
}
