// Wayland request sequences for the proxy fuzzers: generated from the XML tables, mutated, and played on a raw client.
import { CrosswayError } from "../../src/errors.ts";
import { native } from "../../src/native.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import {
  ArgKind,
  type InterfaceDesc,
  type ProtocolRegistry,
} from "../../src/wire/wayland/protocol-registry.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { makeFds } from "./fuzz-support.ts";

/** One request of a case: the bytes, and which fds ride with it ("memfd:SIZE" or "pipe-w"). */
export interface Msg {
  hex: string;
  fds: string[];
}
export type Case = Msg[];

/** A global as the proxy under test shows it (its registry name, interface and version). */
export interface ShownGlobal {
  name: number;
  iface: string;
  version: number;
}

const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 64, 255, 4096, 0x7fff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
const STRINGS = ["", "a", "xdg_wm_base", "wl_seat", "text/plain", "é🙂", "x".repeat(300), "\u0000"];
/** Header sizes worth lying with: below the header, off by one word, the maximum. */
const SIZE_LIES = [0, 3, 4, 8, 12, 0xfffc, 0xffff];

/**
 * Generates and mutates cases for one proxy. A case assumes the client already made its registry (id 2) and one
 * round trip (callback 3), as {@link playCase}'s caller does, so binds name globals it has seen.
 */
export class WaylandCaseGenerator {
  constructor(
    private readonly registry: ProtocolRegistry,
    private readonly rand: (n: number) => number,
    private readonly globals: () => readonly ShownGlobal[],
  ) {}

  /** Binds of shown globals, then requests on live objects with mutated arguments, ids, fds, sizes and opcodes. */
  generate(): Case {
    const { registry, rand } = this;
    const globals = this.globals();
    const objects = new Map<number, InterfaceDesc>([[1, registry.get("wl_display") as InterfaceDesc]]);
    const reg = 2;
    let next = 4;
    const out: Case = [];
    const push = (w: MessageWriter, fds: string[] = []): void => {
      out.push({ hex: Buffer.from(w.bytes()).toString("hex"), fds });
    };
    objects.set(reg, registry.get("wl_registry") as InterfaceDesc);
    for (let k = 1 + rand(4); k > 0 && globals.length > 0; k--) {
      const g = globals[rand(globals.length)] as ShownGlobal;
      const id = next++;
      const version = rand(8) === 0 ? g.version + 1 : 1 + rand(g.version);
      push(new MessageWriter().begin(reg, 0).uint(g.name).string(g.iface).uint(version).uint(id).end());
      const iface = registry.get(g.iface);
      if (iface !== undefined) objects.set(id, iface);
    }
    for (let k = 1 + rand(12); k > 0; k--) {
      const ids = [...objects.keys()];
      const target = ids[rand(ids.length)] as number;
      const iface = objects.get(target) as InterfaceDesc;
      if (iface.requests.length === 0) continue;
      const desc = iface.requests[rand(iface.requests.length)];
      if (desc === undefined) continue;
      const w = new MessageWriter({ maxMessageSize: 65532 });
      const fds: string[] = [];
      try {
        w.begin(rand(20) === 0 ? 1 + rand(64) : target, rand(30) === 0 ? rand(16) : desc.opcode);
        for (let i = 0; i < desc.kinds.length; i++) {
          switch (desc.kinds[i]) {
            case ArgKind.INT:
            case ArgKind.UINT:
            case ArgKind.FIXED:
              w.uint(rand(3) === 0 ? rand(1 << 16) : (INTERESTING[rand(INTERESTING.length)] as number));
              break;
            case ArgKind.STRING:
              w.string(rand(10) === 0 ? null : (STRINGS[rand(STRINGS.length)] as string));
              break;
            case ArgKind.OBJECT:
              w.uint(rand(6) === 0 ? rand(200) : rand(5) === 0 ? 0 : (ids[rand(ids.length)] as number));
              break;
            case ArgKind.NEW_ID: {
              if (desc.untypedNewId) w.string(STRINGS[rand(3)] as string).uint(1);
              const id = rand(15) === 0 ? rand(300) : next++;
              w.uint(id);
              const created = desc.argIfaces[i];
              const ci = created !== null && created !== undefined ? registry.get(created) : undefined;
              // A null new_id is sent (a mutation worth trying) but is no object to address later.
              if (ci !== undefined && id !== 0) objects.set(id, ci);
              break;
            }
            case ArgKind.ARRAY: {
              const a = new Uint8Array(rand(5) === 0 ? 4096 : rand(64));
              for (let j = 0; j < a.length; j++) a[j] = rand(256);
              w.array(a);
              break;
            }
            case ArgKind.FD:
              fds.push(rand(2) === 0 ? `memfd:${INTERESTING[rand(8)] as number}` : "pipe-w");
              break;
            default:
              w.uint(rand(256));
          }
        }
        w.end();
      } catch (err) {
        // The writer refuses what it cannot encode (over the size limit, a NUL in a string): try another message.
        if (err instanceof CrosswayError) continue;
        throw err;
      }
      push(w, fds);
      if (desc.destructor && rand(2) === 0) objects.delete(target);
    }
    return out;
  }

  /** A campaign's first corpus: 20 generated cases. */
  seeds(): Case[] {
    return Array.from({ length: 20 }, () => this.generate());
  }

  /** The next case to run: a fresh one a quarter of the time, else a mutation of one in the corpus. */
  next(corpus: readonly Case[]): Case {
    return this.rand(4) === 0 ? this.generate() : this.mutate(corpus[this.rand(corpus.length)] as Case);
  }

  /** Drops, duplicates, appends, flips a bit of, or lies about the size of, one message. */
  mutate(c: Case): Case {
    const { rand } = this;
    const msgs = c.map((m) => ({ hex: m.hex, fds: [...m.fds] }));
    const i = rand(msgs.length);
    switch (rand(6)) {
      case 0:
        if (msgs.length > 1) msgs.splice(i, 1);
        break;
      case 1:
        msgs.splice(i, 0, msgs[rand(msgs.length)] as Msg);
        break;
      case 2:
        msgs.push(...this.generate());
        break;
      case 3: {
        // The header's size field (bytes 6-7) says something else than the bytes that follow.
        const b = Buffer.from((msgs[i] as Msg).hex, "hex");
        if (b.length >= 8) b.writeUInt16LE(SIZE_LIES[rand(SIZE_LIES.length)] as number, 6);
        (msgs[i] as Msg).hex = b.toString("hex");
        break;
      }
      default: {
        const b = Buffer.from((msgs[i] as Msg).hex, "hex");
        const at = rand(b.length);
        b[at] = ((b[at] ?? 0) ^ (1 << rand(8))) & 0xff;
        (msgs[i] as Msg).hex = b.toString("hex");
      }
    }
    return msgs;
  }
}

/**
 * Sends a case's messages on `client`, each with fresh fds it then closes (the proxy holds its own copies), and
 * stops at the first one the proxy no longer takes (it ended the connection).
 */
export function playCase(client: RawWaylandClient, c: Case): void {
  for (const m of c) {
    const bytes = Buffer.from(m.hex, "hex");
    const fds = makeFds(m.fds);
    try {
      if (fds.length > 0) native.sendmsg(client.fd, bytes, 0, bytes.length, fds);
      else client.send(bytes, 1000);
    } catch {
      // The proxy already ended the connection.
    } finally {
      for (const fd of fds) native.close(fd);
    }
    if (client.eof) break;
  }
}

/**
 * One execution against a Wayland proxy listening on `socket`: a fresh raw client makes its registry and a round
 * trip (the proxy must answer it, else `fail`), plays `c`, tries a last round trip (most mutated cases end the
 * connection first), and closes.
 */
export async function playOnFreshClient(
  socket: string,
  c: Case,
  fail: (c: Case, why: string) => Promise<never>,
): Promise<void> {
  const a = RawWaylandClient.connect(socket);
  a.getRegistry();
  try {
    await a.roundTrip(5000);
  } catch (err) {
    await fail(c, `the proxy did not answer a fresh client: ${(err as Error).message}`);
  }
  playCase(a, c);
  try {
    // Short: a case whose last header claims more bytes than follow swallows this sync, and waiting for an answer
    // that cannot come only slows the campaign (the answer is no oracle; the proxy's state afterwards is).
    await a.roundTrip(1500);
  } catch {
    // Refused or disconnected: expected for most mutated cases.
  }
  a.close();
}
