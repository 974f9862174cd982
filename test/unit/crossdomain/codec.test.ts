// Byte-exact tests of the cross-domain codec: crossdomain.md appendix A examples and every command and reply.
import { describe, expect, it } from "vitest";
import {
  decodeCommand,
  decodeImageRequirements,
  decodeRingMessage,
  encodeGetImageRequirements,
  encodeIdCommand,
  encodeImageRequirements,
  encodeInit,
  encodePoll,
  encodeReadWrite,
  encodeSendReceive,
  newIdentifierList,
} from "../../../src/crossdomain/codec.ts";
import {
  ChannelType,
  CrossDomainCmd,
  type CrossDomainConfig,
  DEFAULT_IMAGE_FLAGS,
  DrmFormat,
  IdentifierType,
  sendReceiveHeaderSize,
} from "../../../src/crossdomain/protocol.ts";
import { CrosswayError } from "../../../src/errors.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const CROSVM: CrossDomainConfig = { flavor: "crosvm", maxIdentifiers: 28 };
const LIBKRUN: CrossDomainConfig = { flavor: "libkrun", maxIdentifiers: 28 };

/** Parses the appendix's hex dumps ("01 00 14 00 ..."). */
function hex(s: string): Uint8Array {
  const bytes = s
    .trim()
    .split(/\s+/)
    .map((h) => Number.parseInt(h, 16));
  return Uint8Array.from(bytes);
}

function u32s(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const v = new DataView(b.buffer);
  for (const [i, x] of values.entries()) v.setUint32(i * 4, x, true);
  return b;
}

describe("appendix A examples", () => {
  it("INIT, 20 bytes", () => {
    const buf = new Uint8Array(20);
    const n = encodeInit(buf, 0, {
      form: "v1",
      queryRingId: 5,
      channelRingId: 6,
      channelType: ChannelType.WAYLAND,
    });
    expect(n).toBe(20);
    expect(buf).toEqual(hex("01 00 14 00 00 00 00 00  05 00 00 00  06 00 00 00  01 00 00 00"));
    const d = decodeCommand(buf, 0, 20, CROSVM);
    expect(d).toMatchObject({
      kind: "init",
      form: "v1",
      size: 20,
      queryRingId: 5,
      channelRingId: 6,
      channelType: 1,
    });
  });

  it("POLL, 16 bytes", () => {
    const buf = new Uint8Array(16).fill(0xee);
    expect(encodePoll(buf, 0)).toBe(16);
    expect(buf).toEqual(hex("03 00 10 00 00 00 00 00  00 00 00 00 00 00 00 00"));
    expect(decodeCommand(buf, 0, 16, CROSVM)).toEqual({ kind: "poll", size: 16 });
  });

  it("SEND carrying 32 bytes of Wayland data and one dmabuf 0x2a", () => {
    const data = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    const ids = newIdentifierList();
    ids.count = 1;
    ids.ids[0] = 0x2a;
    ids.types[0] = IdentifierType.VIRTGPU_BLOB;
    const buf = new Uint8Array(384).fill(0xee);
    expect(encodeSendReceive(buf, 0, CrossDomainCmd.SEND, ids, data, 28)).toBe(384);
    const want = new Uint8Array(384);
    want.set(hex("04 00 80 01 00 00 00 00  01 00 00 00  20 00 00 00"), 0);
    want.set(hex("2a 00 00 00"), 16);
    want.set(hex("01 00 00 00"), 128);
    want.set(data, 352);
    expect(buf).toEqual(want);
    const d = decodeCommand(buf, 0, 384, CROSVM);
    if (d.kind !== "send") throw new Error("not a SEND");
    expect(d.size).toBe(384);
    expect(d.ids.count).toBe(1);
    expect(d.ids.ids[0]).toBe(0x2a);
    expect(d.ids.types[0]).toBe(1);
    expect(d.data).toEqual(data);
  });

  it("GET_IMAGE_REQUIREMENTS for a 4096-byte R8 pool", () => {
    const buf = new Uint8Array(24);
    const q = { width: 4096, height: 1, drmFormat: DrmFormat.R8, flags: DEFAULT_IMAGE_FLAGS };
    expect(encodeGetImageRequirements(buf, 0, q)).toBe(24);
    expect(buf).toEqual(hex("02 00 18 00 00 00 00 00  00 10 00 00  01 00 00 00  52 38 20 20  11 00 00 00"));
    expect(decodeCommand(buf, 0, 24, CROSVM)).toEqual({ kind: "get-image-requirements", size: 24, ...q });
  });

  it("WRITE of 'hello' to write-pipe 0x11, then the hang-up", () => {
    const buf = new Uint8Array(29);
    expect(
      encodeReadWrite(buf, 0, CrossDomainCmd.WRITE, 0x11, false, new TextEncoder().encode("hello")),
    ).toBe(29);
    expect(buf).toEqual(
      hex("07 00 1d 00 00 00 00 00  11 00 00 00  00 00 00 00  05 00 00 00  00 00 00 00  68 65 6c 6c 6f"),
    );
    const d = decodeCommand(buf, 0, 29, CROSVM);
    expect(d).toMatchObject({ kind: "write", size: 29, identifier: 0x11, hangUp: false });
    const end = new Uint8Array(24);
    encodeReadWrite(end, 0, CrossDomainCmd.WRITE, 0x11, true, new Uint8Array(0));
    expect(end).toEqual(hex("07 00 18 00 00 00 00 00  11 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00"));
  });
});

describe("INIT forms and host flavours", () => {
  it("legacy 16-byte INIT: both hosts use the query ring as the channel ring", () => {
    const buf = new Uint8Array(16);
    encodeInit(buf, 0, { form: "legacy", queryRingId: 5, channelRingId: 5, channelType: 1 });
    expect(buf).toEqual(hex("01 00 10 00 00 00 00 00  05 00 00 00  01 00 00 00"));
    for (const cfg of [CROSVM, LIBKRUN]) {
      expect(decodeCommand(buf, 0, 16, cfg)).toMatchObject({
        form: "legacy",
        channelRingId: 5,
        channelType: 1,
      });
    }
  });

  it("24-byte libkrun INIT: libkrun reads protocol_version, crosvm rejects it (P2)", () => {
    const buf = new Uint8Array(24);
    encodeInit(buf, 0, {
      form: "libkrun",
      queryRingId: 5,
      channelRingId: 6,
      channelType: 0x10,
      protocolVersion: 1,
    });
    expect(buf).toEqual(hex("01 00 18 00 00 00 00 00  05 00 00 00  06 00 00 00  10 00 00 00  01 00 00 00"));
    expect(decodeCommand(buf, 0, 24, LIBKRUN)).toMatchObject({
      form: "libkrun",
      protocolVersion: 1,
      size: 24,
    });
    expect(() => decodeCommand(buf, 0, 24, CROSVM)).toThrow(/cmd_size 24 is not 16, 20 or 36/);
  });

  it("libkrun misparses a 20-byte INIT batched with a POLL (P2), crosvm does not", () => {
    const buf = new Uint8Array(36);
    encodeInit(buf, 0, { form: "v1", queryRingId: 5, channelRingId: 6, channelType: 1 });
    encodePoll(buf, 20);
    const k = decodeCommand(buf, 0, 36, LIBKRUN);
    expect(k).toMatchObject({ form: "libkrun", protocolVersion: 0x00100003, size: 20 });
    expect(decodeCommand(buf, 0, 36, CROSVM)).toMatchObject({ form: "v1", size: 20 });
  });

  it("36-byte upstream INIT with a socket uuid", () => {
    const uuid = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    const buf = new Uint8Array(36);
    encodeInit(buf, 0, {
      form: "uuid",
      queryRingId: 5,
      channelRingId: 6,
      channelType: ChannelType.INTERNAL_SOCKET,
      uuid,
    });
    const want = new Uint8Array(36);
    want.set(hex("01 00 24 00 00 00 00 00  05 00 00 00  06 00 00 00  ff ff ff ff"), 0);
    want.set(uuid, 20);
    expect(buf).toEqual(want);
    const d = decodeCommand(buf, 0, 36, CROSVM);
    expect(d).toMatchObject({ form: "uuid", channelType: 0xffffffff });
    if (d.kind === "init") expect(d.uuid).toEqual(uuid);
  });
});

describe("the other commands", () => {
  it("RECEIVE ring message with cmd_size 0, three identifiers and data; 4-identifier legacy layout", () => {
    const ids = newIdentifierList();
    ids.count = 3;
    ids.ids.set([2, 3, 4]);
    ids.types.set([IdentifierType.VIRTGPU_BLOB, IdentifierType.WRITE_PIPE, IdentifierType.TYPE_5]);
    ids.sizes.set([4096, 0, 0]);
    const data = new TextEncoder().encode("abc");
    const ring = new Uint8Array(4096);
    expect(encodeSendReceive(ring, 0, CrossDomainCmd.RECEIVE, ids, data, 28, "zero")).toBe(355);
    const head = new Uint8Array(16);
    head.set(hex("05 00 00 00 00 00 00 00  03 00 00 00  03 00 00 00"));
    expect(ring.subarray(0, 16)).toEqual(head);
    expect(ring.subarray(16, 28)).toEqual(u32s([2, 3, 4]));
    expect(ring.subarray(128, 140)).toEqual(u32s([1, 4, 5]));
    expect(ring.subarray(240, 252)).toEqual(u32s([4096, 0, 0]));
    expect(ring.subarray(352, 355)).toEqual(data);
    const d = decodeRingMessage(ring, 28);
    if (d.kind !== "receive") throw new Error("not RECEIVE");
    expect([...d.ids.ids.subarray(0, 3)]).toEqual([2, 3, 4]);
    expect(d.data).toEqual(data);

    expect(sendReceiveHeaderSize(4)).toBe(64);
    const small = new Uint8Array(4096);
    ids.count = 1;
    expect(encodeSendReceive(small, 0, CrossDomainCmd.SEND, ids, data, 4)).toBe(67);
    expect(small.subarray(0, 4)).toEqual(hex("04 00 43 00"));
    expect(small.subarray(16, 20)).toEqual(u32s([2]));
    expect(small.subarray(32, 36)).toEqual(u32s([1]));
    expect(small.subarray(48, 52)).toEqual(u32s([4096]));
    expect(small.subarray(64, 67)).toEqual(data);
    const legacy = decodeCommand(small, 0, 67, { flavor: "crosvm", maxIdentifiers: 4 });
    if (legacy.kind !== "send") throw new Error("not SEND");
    expect(legacy.data).toEqual(data);
  });

  it("zero-length RECEIVE (host EOF) decodes as empty", () => {
    const ring = new Uint8Array(4096);
    encodeSendReceive(ring, 0, CrossDomainCmd.RECEIVE, newIdentifierList(), new Uint8Array(0), 28, "zero");
    expect(decodeRingMessage(ring, 28)).toMatchObject({ kind: "receive", data: new Uint8Array(0) });
  });

  it("READ ring message carrying an eventfd counter, and a hang-up", () => {
    const ring = new Uint8Array(4096);
    // The u64 counter, little-endian as upstream encodes it.
    const v = hex("03 00 00 00 00 00 00 00");
    encodeReadWrite(ring, 0, CrossDomainCmd.READ, 0x80000001, true, v, "zero");
    expect(ring.subarray(0, 32)).toEqual(
      hex(
        "06 00 00 00 00 00 00 00  01 00 00 80  01 00 00 00  08 00 00 00  00 00 00 00  03 00 00 00 00 00 00 00",
      ),
    );
    expect(decodeRingMessage(ring, 28)).toMatchObject({
      kind: "read",
      identifier: 0x80000001,
      hangUp: true,
      data: v,
    });
  });

  it("16-byte id commands 9, 10, 11", () => {
    for (const [cmd, kind] of [
      [9, "futex-signal"],
      [10, "futex-destroy"],
      [11, "read-eventfd-new"],
    ] as const) {
      const b = new Uint8Array(16);
      encodeIdCommand(b, 0, cmd, 0x1234);
      expect(b).toEqual(
        hex(`${cmd.toString(16).padStart(2, "0")} 00 10 00 00 00 00 00  34 12 00 00  00 00 00 00`),
      );
      expect(decodeCommand(b, 0, 16, LIBKRUN)).toEqual({ kind, size: 16, id: 0x1234 });
    }
  });

  it("32-byte FUTEX_NEW and upstream IMPORT_VIRTIOFS_HANDLE (12); libkrun does not dispatch 12", () => {
    // {hdr, fs_id u64 @8, handle u64 @16, id u32 @24, pad}: crossway never sends these, only decodes them.
    const b = hex(
      "08 00 20 00 00 00 00 00  08 07 06 05 04 03 02 01  18 17 16 15 14 13 12 11  00 00 00 40  00 00 00 00",
    );
    expect(decodeCommand(b, 0, 32, LIBKRUN)).toEqual({
      kind: "futex-new",
      size: 32,
      fsId: 0x0102030405060708n,
      handle: 0x1112131415161718n,
      id: 0x40000000,
    });
    b.set(hex("0c 00 20 00 00 00 00 00  01 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00  4d 00 00 00"));
    expect(decodeCommand(b, 0, 32, CROSVM)).toMatchObject({ kind: "import-virtiofs-handle", id: 77 });
    expect(() => decodeCommand(b, 0, 32, LIBKRUN)).toThrow(/not dispatched by libkrun/);
  });

  it("ASSIGN_SOCKET_UUID (13)", () => {
    const uuid = Uint8Array.from({ length: 16 }, (_, i) => i);
    // {hdr, uuid[16] @8, id u32 @24, pad}
    const b = new Uint8Array(32);
    b.set(hex("0d 00 20 00 00 00 00 00"));
    b.set(uuid, 8);
    b.set(u32s([9]), 24);
    expect(decodeCommand(b, 0, 32, CROSVM)).toMatchObject({ kind: "assign-socket-uuid", id: 9 });
  });

  it("64-byte image requirements reply round-trips", () => {
    const reqs = {
      strides: [16384, 0, 0, 0] as const,
      offsets: [0, 0, 0, 0] as const,
      modifier: 0n,
      size: 4096 * 1024,
      blobId: 2,
      mapInfo: 1,
      memoryIdx: -1,
      physicalDeviceIdx: -1,
    };
    const b = new Uint8Array(64);
    encodeImageRequirements(b, 0, reqs);
    const want = new Uint8Array(64);
    want.set(u32s([16384]), 0);
    want.set(hex("00 00 40 00 00 00 00 00  02 00 00 00  01 00 00 00  ff ff ff ff  ff ff ff ff"), 40);
    expect(b).toEqual(want);
    expect(decodeImageRequirements(b)).toEqual(reqs);
  });

  it("a batch of commands is walked by cmd_size", () => {
    const buf = new Uint8Array(16 + 24 + 29);
    let off = encodePoll(buf, 0);
    off += encodeGetImageRequirements(buf, off, {
      width: 1,
      height: 1,
      drmFormat: DrmFormat.R8,
      flags: 0x11,
    });
    encodeReadWrite(buf, off, CrossDomainCmd.WRITE, 5, false, new Uint8Array(5));
    const kinds: string[] = [];
    for (let o = 0; o < buf.length; ) {
      const m = decodeCommand(buf, o, buf.length, CROSVM);
      kinds.push(m.kind);
      o += m.size;
    }
    expect(kinds).toEqual(["poll", "get-image-requirements", "write"]);
  });
});

describe("malformed input", () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["cmd_size 0 (would loop a host forever, P3)", hex("03 00 00 00 00 00 00 00"), /cmd_size 0 < 8/],
    ["unknown command", hex("2a 00 08 00 00 00 00 00"), /invalid cross domain command 42/],
    ["cmd_size past the end", hex("03 00 20 00 00 00 00 00"), /exceeds the 8 bytes left/],
    ["truncated header", hex("03 00 10"), /need 8/],
  ];
  for (const [name, bytes, re] of cases) {
    it(name, () => {
      expect(() => decodeCommand(bytes, 0, bytes.length, CROSVM)).toThrow(re);
      try {
        decodeCommand(bytes, 0, bytes.length, CROSVM);
      } catch (e) {
        expect(e).toBeInstanceOf(CrosswayError);
        expect((e as CrosswayError).code).toBe("CW_CROSSDOMAIN_MALFORMED");
      }
    });
  }

  it("SEND whose opaque_data_size exceeds cmd_size, and 29 identifiers", () => {
    const b = new Uint8Array(360);
    const ids = newIdentifierList();
    encodeSendReceive(b, 0, CrossDomainCmd.SEND, ids, new Uint8Array(8), 28);
    b[12] = 9;
    expect(() => decodeCommand(b, 0, 360, CROSVM)).toThrow(/opaque_data_size 9/);
    const many = newIdentifierList(29);
    many.count = 29;
    expect(() =>
      encodeSendReceive(new Uint8Array(400), 0, CrossDomainCmd.SEND, many, new Uint8Array(0), 28),
    ).toThrow(/29 identifiers exceed the limit of 28/);
  });

  it("unexpected channel-ring message type", () => {
    expect(() => decodeRingMessage(hex("04 00 00 00 00 00 00 00"), 28)).toThrow(/unexpected message type 4/);
  });
});
