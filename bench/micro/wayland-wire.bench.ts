// Wayland wire engine per message kind: frame + validate + decode, and encode, on messages clients really send.
import { NEED_MORE } from "../../src/wire/wayland/framer.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { PassThroughTable } from "../../src/wire/wayland/pass-through.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { Direction, WireConnection } from "../../src/wire/wayland/wire-connection.ts";
import { defineMicro } from "./define.ts";

/** Messages per case call: each case decodes or encodes a batch, so the figure is batches/s (x BATCH msgs/s). */
const BATCH = 1000;
const registry = ProtocolRegistry.fromGenerated();

function desc(iface: string, name: string, event: boolean) {
  const i = registry.get(iface);
  const d = (event ? i?.events : i?.requests)?.find((m) => m.name === name);
  if (d === undefined) throw new Error(`no ${iface}.${name}`);
  return d;
}

/** A connection in which the client has a registry (2), a compositor (3) and a surface (4), as after start-up. */
function connection(): WireConnection {
  const conn = new WireConnection(registry);
  const w = new MessageWriter();
  w.begin(1, desc("wl_display", "get_registry", false).opcode)
    .uint(2)
    .end();
  w.begin(2, desc("wl_registry", "bind", false).opcode)
    .uint(1)
    .string("wl_compositor")
    .uint(4)
    .uint(3)
    .end();
  w.begin(3, desc("wl_compositor", "create_surface", false).opcode)
    .uint(4)
    .end();
  conn.framer(Direction.REQUEST).push(w.bytes());
  while (conn.next(Direction.REQUEST) !== NEED_MORE) {}
  return conn;
}

/** BATCH copies of one message built by `build`. */
function batch(build: (w: MessageWriter) => void): Uint8Array {
  const w = new MessageWriter({ capacity: 64 * BATCH });
  for (let i = 0; i < BATCH; i++) build(w);
  return w.bytes().slice();
}

const damage = desc("wl_surface", "damage_buffer", false);
const commit = desc("wl_surface", "commit", false);
const global = desc("wl_registry", "global", true);
const requestsDamage = batch((w) => w.begin(4, damage.opcode).int(10).int(20).int(64).int(64).end());
const requestsCommit = batch((w) => w.begin(4, commit.opcode).end());
const eventsGlobal = batch((w) =>
  w.begin(2, global.opcode).uint(7).string("zwp_linux_dmabuf_v1").uint(4).end(),
);

const conn = connection();
function decodeAll(dir: (typeof Direction)[keyof typeof Direction], bytes: Uint8Array): number {
  conn.framer(dir).push(bytes);
  let n = 0;
  while (conn.next(dir) !== NEED_MORE) n++;
  return n;
}

/** Pass-through runs (issue 15): the scan a proxy makes instead of decoding, plus the copy of the run. */
const passThrough = new PassThroughTable(registry, () => false);
const forwarded = new MessageWriter({ capacity: 64 * BATCH });
function passAll(bytes: Uint8Array): number {
  const f = conn.framer(Direction.REQUEST);
  f.push(bytes);
  forwarded.reset();
  const n = conn.forwardPassThrough(Direction.REQUEST, passThrough, forwarded);
  if (f.pending !== 0) throw new Error("the batch did not pass through whole");
  return n;
}

const writer = new MessageWriter({ capacity: 64 * BATCH });

export default defineMicro({
  name: "wayland wire (x1000 msgs)",
  cases: {
    "decode+validate wl_surface.damage_buffer (4 ints)": () => decodeAll(Direction.REQUEST, requestsDamage),
    "decode+validate wl_surface.commit (no args)": () => decodeAll(Direction.REQUEST, requestsCommit),
    "decode+validate wl_registry.global (string)": () => decodeAll(Direction.EVENT, eventsGlobal),
    "pass-through run wl_surface.damage_buffer (scan + one copy)": () => passAll(requestsDamage),
    "pass-through run wl_surface.commit (scan + one copy)": () => passAll(requestsCommit),
    "encode wl_surface.damage_buffer": () => {
      writer.reset();
      for (let i = 0; i < BATCH; i++) writer.begin(4, damage.opcode).int(i).int(20).int(64).int(64).end();
      return writer.length;
    },
    "encode wl_registry.global (string)": () => {
      writer.reset();
      for (let i = 0; i < BATCH; i++)
        writer.begin(2, global.opcode).uint(i).string("zwp_linux_dmabuf_v1").uint(4).end();
      return writer.length;
    },
  },
});
