// The wire layer against real traffic captured through the filter (test/fixtures/pipewire, written by
// scripts/capture-pipewire-traffic.ts from pipewiresrc, pw-cat and pw-dump talking to PipeWire 0.3.65).
import { describe, expect, it } from "vitest";
import { decodePayload, encodeMessage, Framer } from "../../../../src/wire/pipewire/framing.ts";
import { STRICT_POD_LIMITS } from "../../../../src/wire/pipewire/pod-reader.ts";
import { checkSignature, EVENTS, Iface, METHODS } from "../../../../src/wire/pipewire/protocol.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { loadCaptures } from "../../../helpers/pipewire-fixtures.ts";

useFdLeakCheck();

const S2C = { ...STRICT_POD_LIMITS, maxDepth: 16, maxPods: 65536, maxString: 65536, maxElements: 4096 };
const captures = loadCaptures();

describe("real PipeWire traffic", () => {
  it("has fixtures for camera, playback, record and pw-dump", () => {
    expect([...captures.keys()]).toEqual(["camera.bin", "playback.bin", "pwdump.bin", "record.bin"]);
  });

  for (const [name, msgs] of captures) {
    it(`${name}: frames, validates strictly, re-encodes byte for byte, matches the signatures`, () => {
      // Object ids → interfaces, as the messages create them (Core 0, Client 1).
      const ifaces = new Map<number, string>([
        [0, Iface.Core],
        [1, Iface.Client],
      ]);
      let checked = 0;
      let setupRegistry = true;
      for (const dir of ["C->S", "S->C"] as const) {
        const framer = new Framer(1 << 24);
        for (const m of msgs.filter((x) => x.dir === dir)) {
          framer.push(
            m.bytes,
            Array.from({ length: m.nFds }, () => -1),
          );
        }
        for (let f = framer.next(); f !== null; f = framer.next()) {
          const d = decodePayload(f.payload, f.nFds, dir === "C->S" ? STRICT_POD_LIMITS : S2C);
          const again = encodeMessage(f.id, f.opcode, f.seq, f.nFds, d.body, d.footer);
          expect(Buffer.from(again.subarray(16))).toEqual(Buffer.from(f.payload));
          if (dir === "C->S") {
            const a = d.body.fields;
            if (f.id === 0 && f.opcode === 5) ifaces.set(a[1]?.t === "int" ? a[1].v : -1, Iface.Registry);
            if (f.id === 0 && f.opcode === 6) ifaces.set(a[4]?.t === "int" ? a[4].v : -1, Iface.ClientNode);
            if (ifaces.get(f.id) === Iface.Registry && f.opcode === 1 && a[1]?.t === "string") {
              ifaces.set(a[3]?.t === "int" ? a[3].v : -1, a[1].v);
            }
          }
          // The filter's own setup registry is id 2 on the daemon side until its RemoveId (session.ts beginSetup).
          const iface = dir === "S->C" && setupRegistry && f.id === 2 ? Iface.Registry : ifaces.get(f.id);
          if (
            dir === "S->C" &&
            f.id === 0 &&
            f.opcode === 4 &&
            d.body.fields[0]?.t === "int" &&
            d.body.fields[0].v === 2
          ) {
            setupRegistry = false;
          }
          const spec =
            iface === undefined ? undefined : (dir === "C->S" ? METHODS : EVENTS)[iface]?.[f.opcode];
          if (spec !== undefined && spec.sig !== "*") {
            checkSignature(d.body.fields, spec.sig, `${iface}.${spec.name}`, dir === "C->S");
            checked++;
          }
        }
        expect(framer.pending).toBe(0);
      }
      expect(checked).toBeGreaterThan(20);
    });
  }
});
