// The doctor's probes parse what a server sends: split anywhere, errors reported, other objects' events skipped.
import { describe, expect, it } from "vitest";
import { PipeWireProbe, pipewireProbeRequest } from "../../../src/doctor/pipewire-probe.ts";
import { RegistryProbe, registryProbeRequest, summarizeGlobals } from "../../../src/doctor/wayland-probe.ts";
import { encodeMessage } from "../../../src/wire/pipewire/framing.ts";
import { pod } from "../../../src/wire/pipewire/pod-types.ts";
import { MessageWriter } from "../../../src/wire/wayland/message-writer.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("RegistryProbe", () => {
  it("asks for the registry then a sync, 12 bytes each", () => {
    const b = registryProbeRequest();
    expect(Array.from(new Uint32Array(b.buffer, b.byteOffset, 6))).toEqual([
      1,
      (12 << 16) | 1,
      2,
      1,
      12 << 16,
      3,
    ]);
  });

  it("collects globals split at every byte until the callback's done", () => {
    const w = new MessageWriter();
    w.begin(2, 0).uint(1).string("wl_compositor").uint(6).end();
    w.begin(2, 0).uint(2).string("wl_shm").uint(1).end();
    w.begin(3, 0).uint(7).end();
    const bytes = w.bytes().slice();
    for (let cut = 0; cut < bytes.length; cut++) {
      const p = new RegistryProbe();
      expect(p.push(bytes.subarray(0, cut))).toBeUndefined();
      const r = p.push(bytes.subarray(cut));
      expect(r).toEqual({
        kind: "done",
        globals: [
          { name: 1, iface: "wl_compositor", version: 6 },
          { name: 2, iface: "wl_shm", version: 1 },
        ],
      });
    }
  });

  it("reports wl_display.error", () => {
    const w = new MessageWriter();
    w.begin(1, 0).uint(1).uint(2).string("no memory").end();
    expect(new RegistryProbe().push(w.bytes())).toEqual({
      kind: "error",
      message: "wl_display.error code 2: no memory",
    });
  });

  it("summarizes the globals an app needs first", () => {
    expect(summarizeGlobals([{ name: 1, iface: "wl_compositor", version: 6 }])).toBe(
      "1 globals (wl_compositor v6, no xdg_wm_base, no wl_seat, no wl_shm)",
    );
  });
});

describe("PipeWireProbe", () => {
  it("hello then sync; done carries the version Core.Info announced", () => {
    const req = pipewireProbeRequest();
    const dv = new DataView(req.buffer);
    expect([dv.getUint32(0, true), dv.getUint32(4, true) >>> 24]).toEqual([0, 1]);
    const info = encodeMessage(
      0,
      0,
      0,
      0,
      pod.struct(
        pod.int(0),
        pod.int(1234),
        pod.string("root"),
        pod.string("host"),
        pod.string("1.2.3"),
        pod.string("pipewire-0"),
        pod.long(0),
        pod.dict([]),
      ),
    );
    const otherDone = encodeMessage(0, 1, 0, 0, pod.struct(pod.int(0), pod.int(1)));
    const done = encodeMessage(0, 1, 0, 0, pod.struct(pod.int(0), pod.int(0x4352)));
    const all = new Uint8Array([...info, ...otherDone, ...done]);
    const p = new PipeWireProbe();
    expect(p.push(all.subarray(0, 30))).toBeUndefined();
    expect(p.push(all.subarray(30))).toEqual({ kind: "done", version: "1.2.3" });
  });

  it("reports Core.Error", () => {
    const err = encodeMessage(
      0,
      3,
      0,
      0,
      pod.struct(pod.int(0), pod.int(0), pod.int(-13), pod.string("denied")),
    );
    expect(new PipeWireProbe().push(err)).toEqual({ kind: "error", message: "Core.Error: denied (res -13)" });
  });
});
