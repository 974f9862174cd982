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
