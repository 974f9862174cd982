// The guest doctor's I/O against a fake sysfs tree: the driver is found behind device/ or device/virtio*/, and a
// node that cannot be opened is reported with its error, never thrown.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { doctorExitCode } from "../../../src/doctor/finding.ts";
import { guestDoctor, scanDrmNodes } from "../../../src/doctor/guest-doctor.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("guest doctor on a fake sysfs", () => {
  let dir = "";
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function tree(): string {
    dir = mkdtempSync(join(tmpdir(), "cw-sysfs-"));
    const drm = join(dir, "class/drm");
    // A PCI parent (driver virtio-pci) whose virtio child is bound to virtio_gpu.
    mkdirSync(join(drm, "renderD129/device/virtio3"), { recursive: true });
    symlinkSync("../../../bus/pci/drivers/virtio-pci", join(drm, "renderD129/device/driver"));
    symlinkSync("../../../../bus/virtio/drivers/virtio_gpu", join(drm, "renderD129/device/virtio3/driver"));
    // vgem on the lower-numbered render node: never assume renderD128.
    mkdirSync(join(drm, "renderD128/device"), { recursive: true });
    symlinkSync("../../../bus/platform/drivers/vgem", join(drm, "renderD128/device/driver"));
    writeFileSync(join(drm, "version"), "drm 1.1.0 20060810\n");
    return drm;
  }

  it("reads drivers behind device/ and device/virtio*/", () => {
    const entries = scanDrmNodes(tree()).sort((a, b) => a.name.localeCompare(b.name));
    expect(entries).toEqual([
      { name: "renderD128", deviceDriver: "vgem", virtioDrivers: [] },
      { name: "renderD129", deviceDriver: "virtio-pci", virtioDrivers: ["virtio_gpu"] },
      { name: "version", deviceDriver: null, virtioDrivers: [] },
    ]);
  });

  it("picks renderD129 and reports that it cannot open it (no such device node here)", async () => {
    const drm = tree();
    const devDri = join(dir, "dev-dri");
    const f = await guestDoctor({
      device: "virtgpu",
      wantPipeWire: false,
      timeoutMs: 1000,
      sysfsDrm: drm,
      devDri,
    });
    expect(f.map((x) => `${x.status} ${x.check}`)).toEqual(["ok virtio-gpu node", "fail open device"]);
    expect(f[0]?.detail).toContain(`${devDri}/renderD129`);
    expect(f[1]?.detail).toContain("ENOENT");
    expect(doctorExitCode(f)).toBe(1);
  });
});
