// Loads captured Wayland fixtures and replays them through the wire engine (decode, re-encode, format).
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatDebugLine } from "../../src/wire/wayland/debug-format.ts";
import { NEED_MORE } from "../../src/wire/wayland/framer.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import type { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { Direction, Discard, WireConnection } from "../../src/wire/wayland/wire-connection.ts";
import type { WaylandFixture } from "./capture-relay.ts";

/** Directory of the stored captures. */
export const FIXTURE_DIR = fileURLToPath(new URL("../fixtures/wayland/", import.meta.url));

/** Every stored capture. */
export function loadFixtures(): WaylandFixture[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(FIXTURE_DIR + f, "utf8")) as WaylandFixture);
}

/** What replaying a capture produced. */
export interface Replay {
  messages: number;
  /** Messages whose re-encoding differed from the captured bytes (should be none). */
  mismatches: string[];
  /** WAYLAND_DEBUG lines as the engine formats them, in wire order. */
  lines: string[];
  fdsReceived: [number, number];
  fdsTaken: [number, number];
}

/**
 * Feeds the chunks in captured order (preserving the interleaving of the two directions), decodes every message,
 * re-encodes it and compares bytes, and formats it. fd numbers are fake (the capture holds only counts).
 */
export function replay(fixture: WaylandFixture, registry: ProtocolRegistry): Replay {
  const conn = new WireConnection(registry, { name: fixture.name });
  const writer = new MessageWriter();
  const out: Replay = { messages: 0, mismatches: [], lines: [], fdsReceived: [0, 0], fdsTaken: [0, 0] };
  let fakeFd = 1000;
  let t = 0;
  for (const c of fixture.chunks) {
    const dir = c.d === "c2s" ? Direction.REQUEST : Direction.EVENT;
    conn.framer(dir).push(new Uint8Array(Buffer.from(c.b64, "base64")));
    for (let i = 0; i < c.fds; i++) conn.fdQueue(dir).push(fakeFd++);
    out.fdsReceived[dir] += c.fds;
    for (;;) {
      const m = conn.next(dir);
      if (m === NEED_MORE) break;
      out.messages++;
      out.fdsTaken[dir] += m.fdCount;
      out.lines.push(formatDebugLine(m, t++));
      if (m.discard !== Discard.NONE || m.desc === null) continue;
      writer.reset();
      writer.encode(m.objectId, m.desc, m.args);
      const orig = m.view.bytes.subarray(m.view.offset, m.view.offset + m.view.size);
      const again = writer.bytes();
      if (Buffer.compare(Buffer.from(orig), Buffer.from(again)) !== 0 || writer.fds.length !== m.fdCount)
        out.mismatches.push(`${m.iface?.name}@${m.objectId}.${m.desc.name}`);
    }
  }
  return out;
}

/** WAYLAND_DEBUG lines without timestamps and with fd numbers masked, grouped the way libwayland orders them. */
export interface DebugGroups {
  requests: string[];
  /** wl_display events: libwayland dispatches its display queue before the default queue (client.c). */
  displayEvents: string[];
  events: string[];
}

const LINE = /^\[ *\d+\.\d{3}\] (.*)$/;

/** Splits WAYLAND_DEBUG text (a client's stderr, or our lines) into {@link DebugGroups}. */
export function groupDebug(lines: readonly string[]): DebugGroups {
  const g: DebugGroups = { requests: [], displayEvents: [], events: [] };
  for (const l of lines) {
    const m = LINE.exec(l);
    if (m === null) continue;
    const body = (m[1] as string).replace(/\bfd -?\d+\b/g, "fd N");
    if (body.startsWith(" -> ")) g.requests.push(body);
    else if (body.startsWith("wl_display@1.")) g.displayEvents.push(body);
    else g.events.push(body);
  }
  return g;
}

/** Outcome of {@link compareWithClientDebug}. */
export interface DebugComparison {
  /** Lines that matched exactly (timestamps and fd numbers aside). */
  matched: number;
  /** Everything that is not explained by libwayland's known printing rules. Empty when the trace is right. */
  problems: string[];
  /** Our event lines the client did not print (events to proxies without a listener). */
  unprinted: string[];
  /** Client request lines never seen on the wire (marshalled but not flushed before exit). */
  unsent: string[];
}

/**
 * Compares our lines with a client's own WAYLAND_DEBUG output, per group (see {@link DebugGroups}), allowing
 * exactly what libwayland 1.21's client does differently from the wire, each checked:
 * - requests are printed when marshalled (client.c wl_proxy_marshal_array_flags), so a client that exits without
 *   flushing printed a tail the socket never carried: ours must be a prefix of the client's requests;
 * - events are printed when dispatched, and only to proxies with a listener (client.c dispatch_event), so the
 *   client's events must be our events minus some; each one left out must target an object the client printed no
 *   event for at all (i.e. that had no listener);
 * - the display queue is dispatched before the default one, so wl_display events are compared separately.
 */
export function compareWithClientDebug(
  ours: readonly string[],
  clientStderr: string,
  opts: { interrupted?: boolean } = {},
): DebugComparison {
  const a = groupDebug(ours);
  const b = groupDebug(clientStderr.split("\n"));
  const res: DebugComparison = { matched: 0, problems: [], unprinted: [], unsent: [] };
  // Requests: ours == prefix of theirs.
  for (let i = 0; i < a.requests.length; i++) {
    if (a.requests[i] !== b.requests[i]) {
      res.problems.push(`request #${i}: ours "${a.requests[i]}" vs client "${b.requests[i] ?? "(none)"}"`);
      break;
    }
    res.matched++;
  }
  res.unsent = b.requests.slice(a.requests.length);
  if (res.unsent.length > 20)
    res.problems.push(`${res.unsent.length} client requests never reached the socket`);
  // wl_display events: equal; for a client killed mid-run, its dispatched ones are a prefix of what crossed the
  // socket (events that arrived after its last dispatch are never printed), with a short tail at most.
  const displayPrefix =
    JSON.stringify(a.displayEvents.slice(0, b.displayEvents.length)) === JSON.stringify(b.displayEvents);
  const displayTail = a.displayEvents.length - b.displayEvents.length;
  if (
    opts.interrupted === true
      ? !displayPrefix || displayTail < 0 || displayTail > 50
      : JSON.stringify(a.displayEvents) !== JSON.stringify(b.displayEvents)
  )
    res.problems.push(`wl_display events differ: ${a.displayEvents.length} vs ${b.displayEvents.length}`);
  else res.matched += b.displayEvents.length;
  // Other events: theirs is a subsequence of ours; skipped ones target objects the client never printed.
  const printedTargets = new Set(b.events.map((l) => l.slice(0, l.indexOf("."))));
  let j = 0;
  let undispatched = 0;
  for (const line of a.events) {
    if (opts.interrupted === true && j === b.events.length) {
      // The client was killed after dispatching all it printed: the rest reached its socket, unread.
      undispatched++;
      continue;
    }
    if (j < b.events.length && line === b.events[j]) {
      j++;
      res.matched++;
      continue;
    }
    const target = line.slice(0, line.indexOf("."));
    if (printedTargets.has(target)) {
      res.problems.push(
        `event "${line}" is missing from or out of order in the client's output (next: "${b.events[j]}")`,
      );
      break;
    }
    res.unprinted.push(line);
  }
  if (j < b.events.length) res.problems.push(`client printed events we did not see, from "${b.events[j]}"`);
  if (undispatched > 50) res.problems.push(`${undispatched} events after the client's last dispatch`);
  return res;
}
