// MessageFramer: arbitrary split points, NEED_MORE as a value, header checks, advance by header size.
import { describe, expect, it } from "vitest";
import { MalformedMessageError } from "../../../../src/wire/wayland/errors.ts";
import { MessageFramer, NEED_MORE } from "../../../../src/wire/wayland/framer.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { loadFixtures } from "../../../helpers/wayland-fixtures.ts";

useFdLeakCheck();

/** The concatenated request bytes of a real capture. */
function capturedRequests(): Uint8Array {
  const f = loadFixtures().find((x) => x.name === "weston-simple-shm");
  if (f === undefined) throw new Error("fixture weston-simple-shm missing");
  return new Uint8Array(
    Buffer.concat(f.chunks.filter((c) => c.d === "c2s").map((c) => Buffer.from(c.b64, "base64"))),
  );
}

function frameAll(f: MessageFramer): string[] {
  const out: string[] = [];
  for (;;) {
    const v = f.next();
    if (v === NEED_MORE) return out;
    out.push(Buffer.from(v.retain()).toString("hex"));
  }
}

describe("MessageFramer", () => {
  const stream = capturedRequests();

  it("frames a real stream identically whatever the read sizes (1, 3, 7, 4096 bytes)", () => {
    const whole = new MessageFramer();
    whole.push(stream);
    const expected = frameAll(whole);
    expect(expected.length).toBeGreaterThan(100);
    for (const step of [1, 3, 7, 4096]) {
      const f = new MessageFramer();
      const got: string[] = [];
      for (let i = 0; i < stream.length; i += step) {
        f.push(stream, i, Math.min(step, stream.length - i));
        got.push(...frameAll(f));
      }
      expect(got).toEqual(expected);
      expect(f.pending).toBe(0);
    }
  });

  it("returns NEED_MORE for a partial header and a partial body", () => {
    const f = new MessageFramer();
    f.push(stream, 0, 5);
    expect(f.next()).toBe(NEED_MORE);
    f.push(stream, 5, 5);
    expect(f.next()).toBe(NEED_MORE);
  });

  it("says how many bytes end the last message begun, reading the real stream a byte at a time", () => {
    // The message boundaries of the stream, from its own headers.
    const sizeAt = (at: number) =>
      new DataView(stream.buffer, stream.byteOffset + at + 4, 4).getUint32(0, true) >>> 16;
    const ends = new Set<number>();
    for (let at = 0; at < stream.length; ) {
      at += sizeAt(at);
      ends.add(at);
    }
    // Nothing framed meanwhile: missing looks past the whole messages to the last one begun.
    const f = new MessageFramer();
    let headerAt = 0;
    for (let read = 1; read <= stream.length; read++) {
      f.push(stream, read - 1, 1);
      if (ends.has(read)) {
        expect(f.missing, `after ${read} bytes`).toBe(0);
        headerAt = read;
        continue;
      }
      // Short of a header: the header's rest (the size is not known yet); otherwise the message's rest.
      const want = read - headerAt < 8 ? headerAt + 8 - read : headerAt + sizeAt(headerAt) - read;
      expect(f.missing, `after ${read} bytes`).toBe(want);
    }
    expect(frameAll(f).length).toBe(ends.size);
    expect(f.missing).toBe(0);
    // A header next() will refuse: nothing to wait for.
    const bad = new MessageFramer();
    bad.push(new Uint8Array([1, 0, 0, 0, 0, 0, 6, 0]));
    expect(bad.missing).toBe(0);
  });

  it("reads into reserve()d space with commit()", () => {
    const f = new MessageFramer();
    const r = f.reserve(stream.length);
    r.bytes.set(stream, r.offset);
    f.commit(stream.length);
    expect(frameAll(f).length).toBeGreaterThan(100);
  });

  const header = (id: number, size: number, opcode: number): Uint8Array =>
    new Uint8Array(new Uint32Array([id, ((size << 16) | opcode) >>> 0]).buffer);

  it.each([
    [4, "is smaller than the 8-byte header"],
    [0, "is smaller than the 8-byte header"],
    [14, "is not a multiple of 4"],
    [4100, "exceeds the limit of 4096 bytes"],
  ])("rejects header size %i (%s)", (size, why) => {
    const f = new MessageFramer();
    f.push(header(3, size, 2));
    let err: unknown;
    try {
      f.next();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MalformedMessageError);
    expect((err as MalformedMessageError).code).toBe("CW_WIRE_BAD_HEADER");
    expect((err as MalformedMessageError).message).toBe(
      `malformed message header: size ${size} ${why} (object 3, opcode 2)`,
    );
    expect((err as MalformedMessageError).displayError.objectId).toBe(1);
  });

  it("accepts up to 65532 bytes when configured, and never allocates for a size it has not received", () => {
    const f = new MessageFramer({ maxMessageSize: 65532 });
    const before = f.reserve(0).bytes.length;
    f.push(header(3, 65532, 0));
    expect(f.next()).toBe(NEED_MORE);
    expect(f.reserve(0).bytes.length).toBe(before);
    f.push(new Uint8Array(65532 - 8));
    const v = f.next();
    expect(v === NEED_MORE ? 0 : v.size).toBe(65532);
    expect(() => new MessageFramer({ maxMessageSize: 65536 })).toThrow(RangeError);
  });

  it("advances by the header's size even when nobody reads the body", () => {
    const f = new MessageFramer();
    const body = new Uint8Array(24);
    body.set(header(5, 24, 1));
    f.push(body);
    f.push(header(6, 8, 0));
    // The view is reused: read each before the next call.
    const a = f.next();
    expect(a === NEED_MORE ? -1 : a.objectId).toBe(5);
    const b = f.next();
    expect(b === NEED_MORE ? -1 : b.objectId).toBe(6);
  });
});
