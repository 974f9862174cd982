// Shared helpers for the wire unit tests: a registry with the test protocol, and message building via the writer.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MessageWriter } from "../../../../src/wire/wayland/message-writer.ts";
import { ProtocolRegistry } from "../../../../src/wire/wayland/protocol-registry.ts";
import { Direction, WireConnection } from "../../../../src/wire/wayland/wire-connection.ts";

/** The generated tables plus test/golden/test-protocol.xml (ct_factory v3, ct_thing v1). */
export function testRegistry(): ProtocolRegistry {
  const reg = ProtocolRegistry.fromGenerated();
  const xml = readFileSync(
    fileURLToPath(new URL("../../../golden/test-protocol.xml", import.meta.url)),
    "utf8",
  );
  reg.addXml(xml, "test-protocol.xml");
  return reg;
}

/** Builds one message with `fill` and returns its bytes (a copy) and fds. */
export function build(objectId: number, opcode: number, fill: (w: MessageWriter) => void): Uint8Array {
  const w = new MessageWriter({ maxMessageSize: 65532 });
  w.begin(objectId, opcode);
  fill(w);
  w.end();
  return w.bytes().slice();
}

/** Pushes bytes (and fds) in one direction and returns the next message or the thrown error. */
export function feed(conn: WireConnection, dir: Direction, bytes: Uint8Array, fds: number[] = []): unknown {
  conn.framer(dir).push(bytes);
  for (const fd of fds) conn.fdQueue(dir).push(fd);
  try {
    return conn.next(dir);
  } catch (e) {
    return e;
  }
}

/** A connection where the client has wl_registry@2 and has bound ct_factory (version 3) as id 3. */
export function connWithFactory(reg = testRegistry()): WireConnection {
  const conn = new WireConnection(reg, { name: "test" });
  const r1 = feed(
    conn,
    Direction.REQUEST,
    build(1, 1, (w) => w.uint(2)),
  );
  if (r1 instanceof Error) throw r1;
  const r2 = feed(
    conn,
    Direction.REQUEST,
    build(2, 0, (w) => w.uint(7).string("ct_factory").uint(3).uint(3)),
  );
  if (r2 instanceof Error) throw r2;
  return conn;
}
