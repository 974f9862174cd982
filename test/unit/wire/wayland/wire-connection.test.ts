// WireConnection: libwayland's validation order and wording, new-id rules, destructors, delete_id and zombies.
import { describe, expect, it } from "vitest";
import { WireProtocolError } from "../../../../src/wire/wayland/errors.ts";
import { NEED_MORE } from "../../../../src/wire/wayland/framer.ts";
import { MessageTable } from "../../../../src/wire/wayland/message-table.ts";
import { ObjectState, SERVER_ID_START } from "../../../../src/wire/wayland/object-map.ts";
import {
  DecodedMessage,
  Direction,
  Discard,
  WireConnection,
} from "../../../../src/wire/wayland/wire-connection.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { build, connWithFactory, feed, testRegistry } from "./wire-helpers.ts";

useFdLeakCheck();

const REQ = Direction.REQUEST;
const EVT = Direction.EVENT;

function expectError(r: unknown, code: string, message: string, display?: [number, number, string]): void {
  expect(r).toBeInstanceOf(WireProtocolError);
  const e = r as WireProtocolError;
  expect(e.code).toBe(code);
  expect(e.message).toBe(message);
  if (display !== undefined)
    expect([e.displayError.objectId, e.displayError.code, e.displayError.message]).toEqual(display);
}

describe("request validation (wayland-server.c order and wording)", () => {
  it("unknown object → invalid_object", () => {
    const conn = new WireConnection(testRegistry());
    expectError(
      feed(
        conn,
        REQ,
        build(7, 0, () => {}),
      ),
      "CW_WIRE_INVALID_OBJECT",
      "request to unknown object 7 (opcode 0)",
      [1, 0, "invalid object 7"],
    );
  });

  it("opcode beyond the interface → invalid_method", () => {
    const conn = new WireConnection(testRegistry());
    expectError(
      feed(
        conn,
        REQ,
        build(1, 5, () => {}),
      ),
      "CW_WIRE_INVALID_METHOD",
      "wl_display@1 has no request with opcode 5 (it has 2)",
      [1, 1, "invalid method 5, object wl_display@1"],
    );
  });

  it("request newer than the object's version → invalid_method with since", () => {
    const conn = new WireConnection(testRegistry());
    feed(
      conn,
      REQ,
      build(1, 1, (w) => w.uint(2)),
    );
    feed(
      conn,
      REQ,
      build(2, 0, (w) => w.uint(1).string("ct_factory").uint(1).uint(3)),
    );
    expectError(
      feed(
        conn,
        REQ,
        build(3, 1, (w) => w.string("ct_thing").uint(1).uint(4)),
      ),
      "CW_WIRE_INVALID_METHOD",
      "ct_factory@3.make_any needs version 2, object has version 1",
      [1, 1, "invalid method 1 (since 1 < 2), object ct_factory@3"],
    );
  });

  it("new id that is not the next or a free id → invalid arguments", () => {
    const conn = new WireConnection(testRegistry());
    expectError(
      feed(
        conn,
        REQ,
        build(1, 1, (w) => w.uint(5)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_display@1.get_registry: argument registry: not a valid new object id (5), message get_registry(n)",
      [1, 1, "invalid arguments for wl_display@1.get_registry"],
    );
  });

  it("new id on the server's side of 0xff000000 from a client → invalid arguments", () => {
    const conn = new WireConnection(testRegistry());
    expectError(
      feed(
        conn,
        REQ,
        build(1, 1, (w) => w.uint(SERVER_ID_START)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_display@1.get_registry: argument registry: not a valid new object id (4278190080), message get_registry(n)",
    );
  });

  it("null new id, null non-nullable string, unterminated string, too-long string/array, missing fd, trailing bytes", () => {
    const conn = connWithFactory();
    expectError(
      feed(
        conn,
        REQ,
        build(1, 0, (w) => w.uint(0)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_display@1.sync: argument callback: NULL new ID received on non-nullable type, message sync(n)",
    );
    const c2 = connWithFactory();
    expectError(
      feed(
        c2,
        REQ,
        build(3, 1, (w) => w.uint(0).uint(1).uint(4)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_factory@3.make_any: argument interface: NULL string received on non-nullable type, message make_any(2sun)",
    );
    const c3 = connWithFactory();
    const unterminated = build(3, 1, (w) => w.string("ct_thing").uint(1).uint(4));
    unterminated[8 + 4 + 8] = 0x41; // overwrite the NUL of "ct_thing" (length 9 at offset 8+4)
    expectError(
      feed(c3, REQ, unterminated),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_factory@3.make_any: argument interface: string not nul-terminated, message make_any(2sun)",
    );
    const c4 = connWithFactory();
    expectError(
      feed(
        c4,
        REQ,
        build(3, 1, (w) => w.uint(0xfffffff0).uint(1).uint(4)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_factory@3.make_any: argument interface: message too short, object (3); string length 4294967280, message make_any(2sun)",
    );
    const c5 = connWithFactory();
    feed(
      c5,
      REQ,
      build(3, 0, (w) => w.uint(4).string(null)),
    );
    expectError(
      feed(
        c5,
        REQ,
        build(4, 0, (w) => w.uint(3).uint(0xfffffffc)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_thing@4.poke: argument data: message too short, object (4); array length 4294967292, message poke(oa)",
    );
    const c6 = connWithFactory();
    expectError(
      feed(
        c6,
        REQ,
        build(3, 2, (w) => w.uint(10)),
        [100],
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_factory@3.pass_fd: argument other: file descriptor expected, object (3), message pass_fd(3huh)",
    );
    expect(c6.fdQueue(REQ).length).toBe(1); // kept for teardown, not lost
    const c7 = connWithFactory();
    expectError(
      feed(
        c7,
        REQ,
        build(1, 0, (w) => w.uint(4).uint(0)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_display@1.sync: argument callback: message has 4 bytes after its last argument, object (1), message sync(n)",
    );
    const c8 = connWithFactory();
    expectError(
      feed(
        c8,
        REQ,
        build(3, 0, () => {}),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_factory@3.make: argument id: message too short, object (3), message make(n?s)",
    );
  });

  it("object argument of the wrong interface, or unknown → invalid arguments (wl_closure_lookup_objects)", () => {
    const conn = connWithFactory();
    feed(
      conn,
      REQ,
      build(3, 0, (w) => w.uint(4).string("x")),
    );
    // ct_thing.poke's target is untyped: any live object is fine, an unknown one is not.
    expect(
      feed(
        conn,
        REQ,
        build(4, 0, (w) => w.uint(2).array(new Uint8Array(3))),
      ),
    ).toBeInstanceOf(DecodedMessage);
    expectError(
      feed(
        conn,
        REQ,
        build(4, 0, (w) => w.uint(9).array(new Uint8Array(0))),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_thing@4.poke: argument target: unknown object (9), message poke(oa)",
    );
    const c2 = new WireConnection(testRegistry());
    feed(
      c2,
      REQ,
      build(1, 1, (w) => w.uint(2)),
    );
    feed(
      c2,
      REQ,
      build(2, 0, (w) => w.uint(1).string("wl_compositor").uint(4).uint(3)),
    );
    feed(
      c2,
      REQ,
      build(3, 0, (w) => w.uint(4)),
    ); // wl_surface@4
    expectError(
      feed(
        c2,
        REQ,
        build(4, 1, (w) => w.uint(2).int(0).int(0)),
      ), // attach(buffer = wl_registry@2)
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_surface@4.attach: argument buffer: invalid object (2), type (wl_registry), message attach(?oii)",
      [1, 1, "invalid arguments for wl_surface@4.attach"],
    );
  });
});

describe("object lifetimes", () => {
  it("a destroyed client id is a zombie until delete_id, then reusable; events to it keep their fds", () => {
    const conn = connWithFactory();
    const m = feed(
      conn,
      REQ,
      build(3, 3, () => {}),
    ); // ct_factory.destroy
    expect(m).toBeInstanceOf(DecodedMessage);
    expect(conn.objects.state(3)).toBe(ObjectState.ZOMBIE);
    // Reusing id 3 before delete_id is the client's bug.
    expect(
      feed(
        conn,
        REQ,
        build(1, 0, (w) => w.uint(3)),
      ),
    ).toBeInstanceOf(WireProtocolError);
    // An event racing the destroy: discarded, but its one fd is taken, so the next message's fd is right.
    const everything = build(3, 0, (w) =>
      w.int(-1).uint(1).fixed(-1).string("s").uint(0).uint(SERVER_ID_START).array(new Uint8Array(2)),
    );
    const ev = feed(conn, EVT, everything, [40, 41]) as DecodedMessage;
    expect(ev.discard).toBe(Discard.ZOMBIE);
    expect([ev.fdCount, ev.fds[0]]).toEqual([1, 40]);
    expect(conn.fdQueue(EVT).length).toBe(1);
    expect(conn.fdQueue(EVT).peek(0)).toBe(41);
    conn.fdQueue(EVT).consume(1);
    const del = feed(
      conn,
      EVT,
      build(1, 1, (w) => w.uint(3)),
    ) as DecodedMessage;
    expect(del.desc?.name).toBe("delete_id");
    expect(conn.objects.state(3)).toBe(ObjectState.FREE);
    // After delete_id: events to it are unknown (no fds), and the id is free again.
    const late = feed(conn, EVT, everything) as DecodedMessage;
    expect([late.discard, late.fdCount]).toEqual([Discard.UNKNOWN, 0]);
    expect(
      feed(
        conn,
        REQ,
        build(1, 0, (w) => w.uint(3)),
      ),
    ).toBeInstanceOf(DecodedMessage);
  });

  it("with clientIdsReusable (a libwayland server's view) a destroyed id is taken again at once, and the late delete_id spares the new object", () => {
    const conn = connWithFactory();
    conn.objects.clientIdsReusable = true;
    expect(
      feed(
        conn,
        REQ,
        build(3, 3, () => {}),
      ),
    ).toBeInstanceOf(DecodedMessage); // ct_factory.destroy
    expect(conn.objects.state(3)).toBe(ObjectState.ZOMBIE);
    // wl_display.sync(3): wayland-server.c destroy_resource already emptied slot 3, so this is valid.
    expect(
      feed(
        conn,
        REQ,
        build(1, 0, (w) => w.uint(3)),
      ),
    ).toBeInstanceOf(DecodedMessage);
    expect(conn.objects.live(3)?.name).toBe("wl_callback");
    // The delete_id for the old ct_factory arrives now: the callback lives on.
    expect(
      feed(
        conn,
        EVT,
        build(1, 1, (w) => w.uint(3)),
      ),
    ).toBeInstanceOf(DecodedMessage);
    expect(conn.objects.live(3)?.name).toBe("wl_callback");
  });

  it("server-created objects come from 0xff000000 up; a client id there is rejected", () => {
    const conn = connWithFactory();
    const ok = feed(
      conn,
      EVT,
      build(3, 0, (w) =>
        w.int(1).uint(2).fixed(1.5).string("x").uint(0).uint(SERVER_ID_START).array(new Uint8Array(0)),
      ),
      [50],
    ) as DecodedMessage;
    expect(ok.discard).toBe(Discard.NONE);
    expect(conn.objects.live(SERVER_ID_START)?.name).toBe("ct_thing");
    expectError(
      feed(
        conn,
        EVT,
        build(3, 0, (w) => w.int(1).uint(2).fixed(1.5).string("x").uint(0).uint(5).array(new Uint8Array(0))),
        [51],
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "ct_factory@3.everything: argument n: not a valid new object id (5), message everything(iufs?onah)",
    );
    // The destructor event ct_thing.gone frees the server id for reuse.
    expect(
      feed(
        conn,
        EVT,
        build(SERVER_ID_START, 0, () => {}),
      ),
    ).toBeInstanceOf(DecodedMessage);
    expect(conn.objects.canCreate(SERVER_ID_START, 1)).toBe(true);
  });

  it("an object of an interface not in the tables: error by default, skipped when asked", () => {
    const reg = testRegistry();
    const strict = new WireConnection(reg);
    feed(
      strict,
      REQ,
      build(1, 1, (w) => w.uint(2)),
    );
    feed(
      strict,
      REQ,
      build(2, 0, (w) => w.uint(1).string("weston_desktop_shell").uint(1).uint(3)),
    );
    expectError(
      feed(
        strict,
        REQ,
        build(3, 0, () => {}),
      ),
      "CW_WIRE_UNKNOWN_INTERFACE",
      "weston_desktop_shell@3: interface weston_desktop_shell is not in the loaded protocol tables (opcode 0)",
    );
    const lax = new WireConnection(reg, { unknownInterfaces: "skip" });
    feed(
      lax,
      REQ,
      build(1, 1, (w) => w.uint(2)),
    );
    feed(
      lax,
      REQ,
      build(2, 0, (w) => w.uint(1).string("weston_desktop_shell").uint(1).uint(3)),
    );
    expect(
      (
        feed(
          lax,
          REQ,
          build(3, 0, () => {}),
        ) as DecodedMessage
      ).discard,
    ).toBe(Discard.UNKNOWN_INTERFACE);
  });

  it("returns NEED_MORE, not an error, for a message split mid-way", () => {
    const conn = new WireConnection(testRegistry());
    const b = build(1, 1, (w) => w.uint(2));
    conn.framer(REQ).push(b, 0, 10);
    expect(conn.next(REQ)).toBe(NEED_MORE);
    conn.framer(REQ).push(b, 10);
    expect(conn.next(REQ)).toBeInstanceOf(DecodedMessage);
  });
});

describe("event versions", () => {
  it("are only checked when asked (libwayland's client does not)", () => {
    const reg = testRegistry();
    for (const check of [false, true]) {
      const conn = new WireConnection(reg, { checkEventSince: check });
      feed(
        conn,
        REQ,
        build(1, 1, (w) => w.uint(2)),
      );
      feed(
        conn,
        REQ,
        build(2, 0, (w) => w.uint(1).string("wl_output").uint(1).uint(3)),
      );
      const r = feed(
        conn,
        EVT,
        build(3, 3, (w) => w.int(2)),
      ); // wl_output.scale is since 2
      if (check)
        expectError(
          r,
          "CW_WIRE_INVALID_METHOD",
          "event wl_output@3.scale needs version 2, object has version 1",
        );
      else expect(r).toBeInstanceOf(DecodedMessage);
    }
  });
});

describe("messages of int, uint and fixed arguments only (the scalar path)", () => {
  /** A client with wl_compositor@3 (version 4) and wl_region@4. */
  function connWithRegion(): WireConnection {
    const conn = new WireConnection(testRegistry(), { checkEventSince: true });
    for (const m of [
      build(1, 1, (w) => w.uint(2)),
      build(2, 0, (w) => w.uint(1).string("wl_compositor").uint(4).uint(3)),
      build(3, 1, (w) => w.uint(4)), // wl_compositor.create_region
    ]) {
      const r = feed(conn, REQ, m);
      if (r instanceof Error) throw r;
    }
    return conn;
  }

  it("marks exactly the effect-free all-scalar messages", () => {
    const reg = testRegistry();
    const d = (iface: string, dir: "requests" | "events", name: string) =>
      reg.get(iface)?.[dir].find((m) => m.name === name);
    expect(d("wl_region", "requests", "add")?.scalarArgs).toBe(4);
    expect(d("wl_surface", "requests", "commit")?.scalarArgs).toBe(0);
    expect(d("wl_pointer", "events", "motion")?.scalarArgs).toBe(3);
    expect(d("wl_region", "requests", "destroy")?.scalarArgs).toBe(-1); // destructor
    expect(d("wl_callback", "events", "done")?.scalarArgs).toBe(-1); // destructor event
    expect(d("wl_display", "events", "delete_id")?.scalarArgs).toBe(-1); // frees an id
    expect(d("wl_surface", "requests", "attach")?.scalarArgs).toBe(-1); // object argument
    expect(d("wl_display", "requests", "sync")?.scalarArgs).toBe(-1); // new_id
    expect(d("wl_keyboard", "events", "keymap")?.scalarArgs).toBe(-1); // fd
    expect(d("wl_surface", "requests", "set_buffer_scale")?.hasObjectArgs).toBe(false);
    expect(d("wl_surface", "requests", "attach")?.hasObjectArgs).toBe(true);
  });

  it("numbers each registry's messages 0..n-1, and a MessageTable holds a value per message", () => {
    const reg = testRegistry();
    const all = [...reg.interfaces()].flatMap((i) => [...i.requests, ...i.events]);
    const indices = all.map((m) => m.index).sort((a, b) => a - b);
    expect(new Set(indices).size).toBe(indices.length);
    expect(indices[indices.length - 1]).toBeLessThan(reg.messageCount);
    // Per registry, not per process: a second one starts again at 0.
    const second = [...testRegistry().interfaces()].flatMap((i) => [...i.requests, ...i.events]);
    expect(Math.min(...second.map((m) => m.index))).toBe(0);
    const table = new MessageTable<string>(reg);
    for (const m of all) table.set(m, `${m.iface.name}.${m.name}`);
    for (const m of all) expect(table.get(m)).toBe(`${m.iface.name}.${m.name}`);
    // Messages added to the registry after the table was made: past its end, still kept.
    reg.addXml(
      '<protocol name="late"><interface name="late_thing" version="1"><request name="poke"/></interface></protocol>',
      "late.xml",
    );
    const late = reg.get("late_thing")?.requests[0];
    expect(late?.index).toBe(reg.messageCount - 1);
    expect(table.get(late!)).toBeUndefined();
    table.set(late!, "late");
    expect(table.get(late!)).toBe("late");
  });

  it("decodes every argument word, signed and unsigned", () => {
    const conn = connWithRegion();
    const m = feed(
      conn,
      REQ,
      build(4, 1, (w) => w.int(-5).int(7).int(0x7fffffff).int(-0x80000000)),
    ) as DecodedMessage;
    expect(m).toBeInstanceOf(DecodedMessage);
    expect(m.desc?.name).toBe("add");
    expect(m.args.count).toBe(4);
    expect([0, 1, 2, 3].map((i) => m.args.int(i))).toEqual([-5, 7, 0x7fffffff, -0x80000000]);
    expect(m.fdCount).toBe(0);
    expect(conn.objects.state(4)).toBe(ObjectState.LIVE);
  });

  it("still words a short or long message as the full decoder does", () => {
    const short = connWithRegion();
    expectError(
      feed(
        short,
        REQ,
        build(4, 1, (w) => w.int(1).int(2).int(3)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_region@4.add: argument height: message too short, object (4), message add(iiii)",
    );
    const long = connWithRegion();
    expectError(
      feed(
        long,
        REQ,
        build(4, 1, (w) => w.int(1).int(2).int(3).int(4).int(5)),
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_region@4.add: argument height: message has 4 bytes after its last argument, object (4), message add(iiii)",
    );
    const noArgs = connWithRegion();
    feed(
      noArgs,
      REQ,
      build(3, 0, (w) => w.uint(5)), // wl_compositor.create_surface
    );
    expectError(
      feed(
        noArgs,
        REQ,
        build(5, 6, (w) => w.uint(0)), // wl_surface.commit takes nothing
      ),
      "CW_WIRE_INVALID_ARGUMENTS",
      "wl_surface@5.commit: argument (none): message has 4 bytes after its last argument, object (5), message commit()",
    );
  });

  it("keeps the object, opcode and version checks in front of it", () => {
    const conn = connWithRegion();
    expectError(
      feed(
        conn,
        REQ,
        build(9, 1, (w) => w.int(1).int(2).int(3).int(4)),
      ),
      "CW_WIRE_INVALID_OBJECT",
      "request to unknown object 9 (opcode 1)",
    );
    const v1 = new WireConnection(testRegistry());
    feed(
      v1,
      REQ,
      build(1, 1, (w) => w.uint(2)),
    );
    feed(
      v1,
      REQ,
      build(2, 0, (w) => w.uint(1).string("wl_compositor").uint(1).uint(3)),
    );
    feed(
      v1,
      REQ,
      build(3, 0, (w) => w.uint(4)),
    );
    expectError(
      feed(
        v1,
        REQ,
        build(4, 8, (w) => w.int(2)), // wl_surface.set_buffer_scale is since 3
      ),
      "CW_WIRE_INVALID_METHOD",
      "wl_surface@4.set_buffer_scale needs version 3, object has version 1",
    );
    const ev = connWithRegion();
    feed(
      ev,
      REQ,
      build(2, 0, (w) => w.uint(2).string("wl_output").uint(1).uint(5)),
    );
    expectError(
      feed(
        ev,
        EVT,
        build(5, 3, (w) => w.int(2)),
      ), // wl_output.scale is since 2
      "CW_WIRE_INVALID_METHOD",
      "event wl_output@5.scale needs version 2, object has version 1",
    );
  });
});
