// WAYLAND_DEBUG=1 lines exactly as libwayland 1.21's client prints them (connection.c wl_closure_print).

import { ArgKind } from "./protocol-registry.ts";
import { type DecodedMessage, Direction, Discard } from "./wire-connection.ts";

/**
 * The "[%7u.%03u]" timestamp prefix: libwayland stores CLOCK_REALTIME in microseconds in an `unsigned int`
 * (so it wraps every ~71.6 minutes) and prints milliseconds and the microsecond remainder.
 */
export function formatTimestamp(realtimeMicros: number): string {
  const t = Math.floor(realtimeMicros) % 0x100000000;
  const ms = Math.floor(t / 1000);
  const us = t % 1000;
  return `[${String(ms).padStart(7, " ")}.${String(us).padStart(3, "0")}]`;
}

/**
 * A fixed value as libwayland 1.21 prints it: "%d.%08d" of the integer part and 390625 × the 1/256 fraction,
 * with a leading "-" for negatives (it prints |f|/256 and the fraction of |f|, connection.c wl_closure_print).
 */
export function formatFixed(raw: number): string {
  const f = raw | 0;
  if (f >= 0) return `${Math.trunc(f / 256)}.${String(390625 * (f % 256)).padStart(8, "0")}`;
  return `-${Math.trunc(f / -256)}.${String(-390625 * (f % 256)).padStart(8, "0")}`;
}

/**
 * One WAYLAND_DEBUG line (without the newline) for `m`, as the client side prints it: requests with " -> ",
 * events without; object args as iface@id or nil; new ids as "new id iface@N" ("[unknown]" when the
 * signature has no interface, e.g. wl_registry.bind); strings quoted; arrays as array[N]; fds as "fd N" (the
 * number in this process, which differs from the client's). Discarded events use queue_event's line:
 * "discarded [zombie]@id.[event N](F fd, S byte)" with the id printed as a signed int, as libwayland's %d does.
 */
export function formatDebugLine(m: DecodedMessage, realtimeMicros: number): string {
  const ts = formatTimestamp(realtimeMicros);
  if (m.discard === Discard.UNKNOWN_INTERFACE) {
    // Not a libwayland line (a client always knows its interfaces): what a tracer without the XML can say.
    const kind = m.direction === Direction.REQUEST ? "request" : "event";
    const arrow = m.direction === Direction.REQUEST ? " -> " : "";
    return `${ts} ${arrow}${m.iface?.name ?? "?"}@${m.objectId}.[${kind} ${m.opcode}](${m.size} byte, interface not in the protocol tables)`;
  }
  if (m.discard !== Discard.NONE) {
    const what = m.discard === Discard.ZOMBIE ? "zombie" : "unknown";
    return `${ts} discarded [${what}]@${m.objectId | 0}.[event ${m.opcode}](${m.fdCount} fd, ${m.size} byte)`;
  }
  const desc = m.desc;
  const iface = m.iface;
  if (desc === null || iface === null) return `${ts} ${m.objectId}.[opcode ${m.opcode}](?)`;
  let s = `${ts} ${m.direction === Direction.REQUEST ? " -> " : ""}${iface.name}@${m.objectId}.${desc.name}(`;
  const a = m.args;
  for (let i = 0; i < desc.kinds.length; i++) {
    if (i > 0) s += ", ";
    switch (desc.kinds[i]) {
      case ArgKind.UINT:
        s += String(a.uint(i));
        break;
      case ArgKind.INT:
        s += String(a.int(i));
        break;
      case ArgKind.FIXED:
        s += formatFixed(a.fixedRaw(i));
        break;
      case ArgKind.STRING: {
        const v = a.string(i);
        s += v === null ? "nil" : `"${v}"`;
        break;
      }
      case ArgKind.OBJECT: {
        const o = m.argIfaces[i];
        s += o === null || o === undefined ? "nil" : `${o.name}@${a.id(i)}`;
        break;
      }
      case ArgKind.NEW_ID: {
        const id = a.id(i);
        s += `new id ${desc.argIfaces[i] ?? "[unknown]"}@${id !== 0 ? String(id) : "nil"}`;
        break;
      }
      case ArgKind.ARRAY:
        s += `array[${a.uint(i)}]`;
        break;
      default:
        s += `fd ${a.fd(i)}`;
    }
  }
  return `${s})`;
}
