// The doctor's pure guest interpretation: sysfs node choice, GETPARAM and capset findings, cross-domain caps words.
import { describe, expect, it } from "vitest";
import { doctorExitCode, formatFinding } from "../../../src/doctor/finding.ts";
import {
  capsetNames,
  capsFindings,
  decodeCapsWords,
  nodeFinding,
  paramFindings,
} from "../../../src/doctor/guest-findings.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("nodeFinding", () => {
  it("prefers a render node and finds the driver through device/ or device/virtio*/ (PCI parent)", () => {
    const r = nodeFinding("/sys/class/drm", "/dev/dri", [
      { name: "card0", deviceDriver: "virtio_gpu", virtioDrivers: [] },
      { name: "card1", deviceDriver: "vgem", virtioDrivers: [] },
      { name: "renderD129", deviceDriver: "virtio-pci", virtioDrivers: ["virtio_gpu"] },
      { name: "renderD128", deviceDriver: "vgem", virtioDrivers: [] },
      { name: "version", deviceDriver: null, virtioDrivers: [] },
    ]);
    expect(r.node).toBe("/dev/dri/renderD129");
    expect(r.finding.status).toBe("ok");
  });

  it("fails naming every node and its driver when none is virtio_gpu", () => {
    const r = nodeFinding("/sys/class/drm", "/dev/dri", [
      { name: "card0", deviceDriver: "i915", virtioDrivers: [] },
    ]);
    expect(r.node).toBeUndefined();
    expect(r.finding.status).toBe("fail");
    expect(r.finding.detail).toBe("no virtio_gpu driver behind any DRM node in /sys/class/drm (card0: i915)");
    expect(r.finding.fix).toContain("CONFIG_DRM_VIRTIO_GPU");
  });

  it("fails with the listing error (no DRM at all)", () => {
    const r = nodeFinding("/sys/class/drm", "/dev/dri", [], "ENOENT");
    expect(r.finding.detail).toBe("cannot list /sys/class/drm (ENOENT)");
  });
});

describe("paramFindings", () => {
  // What QEMU 7.2's plain virtio-gpu-pci offers (environment.md §5: -virgl, -resource_blob, -context_init, 0 capsets).
  it("a plain virtio-gpu: every cross-domain prerequisite fails, context init with the kernel and VMM fix", () => {
    const f = paramFindings({
      features3d: false,
      resourceBlob: false,
      hostVisible: false,
      contextInit: false,
      capsetMask: 0,
      pageSize: 4096,
    });
    expect(f.map((x) => x.status)).toEqual(["fail", "fail", "fail", "fail", "fail"]);
    const ci = f.find((x) => x.check === "context init");
    expect(ci?.fix).toContain("5.16");
    expect(ci?.fix).toContain("cross-domain=on");
    expect(f.find((x) => x.check === "capsets")?.detail).toBe("0x0 (none) lacks cross-domain (5)");
  });

  // What the rutabaga VMM offered (RECIPE.md: +virgl +resource_blob +host_visible +context_init, SUPPORTED_CAPSET_IDs 0x20).
  it("the rutabaga VMM's answer passes", () => {
    const f = paramFindings({
      features3d: true,
      resourceBlob: true,
      hostVisible: true,
      contextInit: true,
      capsetMask: 0x20,
      pageSize: 4096,
    });
    expect(doctorExitCode(f)).toBe(0);
    expect(f.find((x) => x.check === "capsets")?.detail).toBe(
      "0x20 (cross-domain) includes cross-domain (5)",
    );
  });

  it("names capsets from virtio_gpu.h and unknown bits by number", () => {
    expect(capsetNames(0b110010)).toBe("virgl,venus,cross-domain");
    expect(capsetNames(1 << 20)).toBe("capset 20");
  });
});

describe("capsFindings", () => {
  // RECIPE.md: rutabaga 0.1.2 answered version=1 supported_channels=0x2 supports_dmabuf=0.
  const rutabaga = new Uint8Array(new Uint32Array([1, 0x2, 0, 0]).buffer);

  it("rutabaga 0.1.2: Wayland ok, no PipeWire (a warning unless the guest serves pipewire-0), no dmabuf", () => {
    const caps = decodeCapsWords(rutabaga);
    expect(caps).toEqual({ version: 1, supportedChannels: 2, supportsDmabuf: false });
    const f = capsFindings(caps, false);
    expect(f.map((x) => `${x.check}=${x.status}`)).toEqual([
      "cross-domain caps=ok",
      "Wayland channel=ok",
      "PipeWire channel=warn",
      "host dmabuf=warn",
    ]);
    expect(doctorExitCode(capsFindings(caps, true))).toBe(1);
  });

  it("a host with no Wayland socket fails with the VMM flag to set", () => {
    const f = capsFindings({ version: 1, supportedChannels: 1 << 16, supportsDmabuf: true }, true);
    const wl = f.find((x) => x.check === "Wayland channel");
    expect(wl?.status).toBe("fail");
    expect(wl?.detail).toBe("not offered (bit 1 of 0x10000 is clear)");
    expect(formatFinding(wl!)).toMatch(/^FAIL Wayland channel: .* -> .*wayland-socket-path=PATH/);
  });

  it("short caps blobs read as zeros", () => {
    expect(decodeCapsWords(new Uint8Array(4))).toEqual({
      version: 0,
      supportedChannels: 0,
      supportsDmabuf: false,
    });
  });
});
