// PipeWire wire layer: strict validation of real captured messages (framing payload + every POD inside).
import { decodePayload } from "../../src/wire/pipewire/framing.ts";
import { loadCaptures } from "../../test/helpers/pipewire-fixtures.ts";
import { defineMicro } from "./define.ts";

const HEADER = 16;
const all: Array<{ payload: Uint8Array; nFds: number }> = [];
for (const msgs of loadCaptures().values()) {
  for (const m of msgs) all.push({ payload: m.bytes.subarray(HEADER), nFds: m.nFds });
}
const largest = all.reduce((a, b) => (b.payload.length > a.payload.length ? b : a));

export default defineMicro({
  name: "pipewire POD validation",
  cases: {
    [`validate every captured message (${all.length} msgs)`]: () => {
      let n = 0;
      for (const m of all) n += decodePayload(m.payload, m.nFds).fdRefs.length;
      return n;
    },
    [`validate the largest captured message (${largest.payload.length} bytes)`]: () =>
      decodePayload(largest.payload, largest.nFds),
  },
});
