// Captured PipeWire traffic fixtures: a flat file of whole messages (header + payload) with direction and fd count.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One captured message. `bytes` is the 16-byte header plus payload exactly as it crossed the filter. */
export interface CapturedMessage {
  readonly dir: "C->S" | "S->C";
  readonly nFds: number;
  readonly bytes: Uint8Array;
}

/** Directory of the fixtures written by scripts/capture-pipewire-traffic.ts. */
export const FIXTURE_DIR = new URL("../fixtures/pipewire/", import.meta.url).pathname;

/** Serialises messages: per record u8 dir (0 C→S, 1 S→C), 3 zero bytes, u32 nFds, u32 length, bytes. */
export function encodeCapture(msgs: readonly CapturedMessage[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of msgs) {
    const h = Buffer.alloc(12);
    h.writeUInt8(m.dir === "C->S" ? 0 : 1, 0);
    h.writeUInt32LE(m.nFds, 4);
    h.writeUInt32LE(m.bytes.length, 8);
    parts.push(h, Buffer.from(m.bytes));
  }
  return Buffer.concat(parts);
}

/** Parses a capture file. */
export function decodeCapture(buf: Uint8Array): CapturedMessage[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: CapturedMessage[] = [];
  let o = 0;
  while (o + 12 <= b.length) {
    const dir = b.readUInt8(o) === 0 ? "C->S" : "S->C";
    const nFds = b.readUInt32LE(o + 4);
    const len = b.readUInt32LE(o + 8);
    out.push({ dir, nFds, bytes: new Uint8Array(b.subarray(o + 12, o + 12 + len)) });
    o += 12 + len;
  }
  return out;
}

/** Every fixture file: name → messages. */
export function loadCaptures(): Map<string, CapturedMessage[]> {
  const out = new Map<string, CapturedMessage[]>();
  for (const name of readdirSync(FIXTURE_DIR).sort()) {
    if (name.endsWith(".bin")) out.set(name, decodeCapture(readFileSync(join(FIXTURE_DIR, name))));
  }
  return out;
}
