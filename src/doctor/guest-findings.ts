// Pure interpretation of what a guest's kernel and VMM report (sysfs, virtgpu params, cross-domain caps) as findings.
import { CAPSET_CROSS_DOMAIN, ChannelType } from "../crossdomain/protocol.ts";
import type { VirtGpuParams } from "../crossdomain/virtgpu.ts";
import { type Finding, finding } from "./finding.ts";

/** VMM settings that turn on cross-domain, quoted in fixes (crosvm `--gpu`, QEMU ≥ 8.1 with rutabaga, libkrun). */
export const VMM_CROSS_DOMAIN_FLAGS =
  "crosvm --gpu context-types=cross-domain; QEMU >= 8.1 -device virtio-gpu-rutabaga-pci,cross-domain=on,hostmem=256M; libkrun: krun_set_gpu_options (muvm calls it)";

/** A DRM node seen in /sys/class/drm, with the drivers of its device and of the device's virtio children. */
export interface DrmNodeEntry {
  /** e.g. "renderD128", "card0". */
  readonly name: string;
  /** basename of `<node>/device/driver`, or null when there is no link. */
  readonly deviceDriver: string | null;
  /** basenames of `<node>/device/virtio*\/driver` (a PCI parent whose virtio child is the GPU). */
  readonly virtioDrivers: readonly string[];
}

function isVirtioGpu(e: DrmNodeEntry): boolean {
  return e.deviceDriver === "virtio_gpu" || e.virtioDrivers.includes("virtio_gpu");
}

function rank(name: string): number {
  return (name.startsWith("renderD") ? 0 : 1000) + Number(name.replace(/\D+/g, ""));
}

/**
 * Picks the virtio_gpu node (render nodes first, never assuming renderD128) and says what else was seen.
 * `entries` is what the caller read from sysfs; `listError` is set when the directory could not be read.
 */
export function nodeFinding(
  sysfsDrm: string,
  devDri: string,
  entries: readonly DrmNodeEntry[],
  listError?: string,
): { finding: Finding; node?: string } {
  const check = "virtio-gpu node";
  const fix =
    "boot the VM with a virtio-gpu device (" +
    VMM_CROSS_DOMAIN_FLAGS +
    ") and a guest kernel with CONFIG_DRM_VIRTIO_GPU (module virtio_gpu loaded)";
  if (listError !== undefined) {
    return { finding: finding("fail", check, `cannot list ${sysfsDrm} (${listError})`, fix) };
  }
  const nodes = entries.filter((e) => /^(renderD|card)\d+$/.test(e.name));
  const sorted = [...nodes].sort((a, b) => rank(a.name) - rank(b.name));
  const hit = sorted.find(isVirtioGpu);
  const seen = sorted
    .map((e) => `${e.name}: ${[e.deviceDriver ?? "no driver link", ...e.virtioDrivers].join("/")}`)
    .join(", ");
  if (hit === undefined) {
    return {
      finding: finding(
        "fail",
        check,
        `no virtio_gpu driver behind any DRM node in ${sysfsDrm} (${seen === "" ? "no card/renderD nodes" : seen})`,
        fix,
      ),
    };
  }
  const node = `${devDri}/${hit.name}`;
  return { finding: finding("ok", check, `${node} (driver virtio_gpu; seen ${seen})`), node };
}

/** Findings for the virtgpu GETPARAM values cross-domain needs (CrossDomainChannel.open refuses without them). */
export function paramFindings(p: VirtGpuParams): Finding[] {
  const out: Finding[] = [];
  const need = (ok: boolean, name: string, fix: string): void => {
    out.push(
      ok
        ? finding("ok", name, "supported")
        : finding("fail", name, "not offered by the device (GETPARAM says 0)", fix),
    );
  };
  need(p.features3d, "3D features", `the VMM must expose a 3D-capable virtio-gpu: ${VMM_CROSS_DOMAIN_FLAGS}`);
  need(
    p.resourceBlob,
    "resource blobs",
    "enable blob resources in the VMM (QEMU: hostmem=SIZE on virtio-gpu-rutabaga; crosvm does by default) and use a guest kernel ≥ 5.16",
  );
  need(
    p.hostVisible,
    "host-visible memory",
    "give the device a host memory window (QEMU: hostmem=256M; crosvm: the default PCI BAR)",
  );
  need(
    p.contextInit,
    "context init",
    "use a guest kernel ≥ 5.16 (CONFIG_DRM_VIRTIO_GPU with VIRTGPU_PARAM_CONTEXT_INIT) and a VMM that offers VIRTIO_GPU_F_CONTEXT_INIT (" +
      VMM_CROSS_DOMAIN_FLAGS +
      ")",
  );
  const mask = p.capsetMask >>> 0;
  const names = capsetNames(mask);
  out.push(
    (mask >>> CAPSET_CROSS_DOMAIN) & 1
      ? finding("ok", "capsets", `0x${mask.toString(16)} (${names}) includes cross-domain (5)`)
      : finding(
          "fail",
          "capsets",
          `0x${mask.toString(16)} (${names === "" ? "none" : names}) lacks cross-domain (5)`,
          `enable the cross-domain context type in the VMM: ${VMM_CROSS_DOMAIN_FLAGS}`,
        ),
  );
  return out;
}

/** Capset ids from virtio_gpu.h (VIRTIO_GPU_CAPSET_*), for readable masks. */
const CAPSET_NAMES: Readonly<Record<number, string>> = {
  1: "virgl",
  2: "virgl2",
  3: "gfxstream-vulkan",
  4: "venus",
  5: "cross-domain",
  6: "drm",
  7: "gfxstream-gles",
  8: "gfxstream-composer",
};

/** "virgl,cross-domain" for a SUPPORTED_CAPSET_IDs mask; unknown bits as "capset N". */
export function capsetNames(mask: number): string {
  const names: string[] = [];
  for (let i = 0; i < 32; i++) {
    if (((mask >>> i) & 1) === 1) names.push(CAPSET_NAMES[i] ?? `capset ${i}`);
  }
  return names.join(",");
}

/** The cross-domain caps words (GET_CAPS capset 5: version, supported_channels, supports_dmabuf, external memory). */
export interface CapsWords {
  readonly version: number;
  readonly supportedChannels: number;
  readonly supportsDmabuf: boolean;
}

/** Decodes the caps blob; short blobs read as zeros (older hosts send fewer words). */
export function decodeCapsWords(bytes: Uint8Array): CapsWords {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (i: number): number => (bytes.byteLength >= 4 * i + 4 ? dv.getUint32(4 * i, true) : 0);
  return { version: word(0), supportedChannels: word(1), supportsDmabuf: word(2) !== 0 };
}

/** Whether the host offers channel `type` (bit `1 << type` of supported_channels). */
export function offersChannel(channels: number, type: number): boolean {
  return type < 32 && ((channels >>> type) & 1) === 1;
}

/**
 * Findings for the host's cross-domain caps. Wayland missing is a failure; PipeWire missing is a failure only
 * when `wantPipeWire` (the guest is configured to serve pipewire-0), a warning otherwise; no dmabuf is a warning.
 */
export function capsFindings(caps: CapsWords, wantPipeWire: boolean): Finding[] {
  const ch = caps.supportedChannels >>> 0;
  const out: Finding[] = [
    finding("ok", "cross-domain caps", `version ${caps.version}, supported_channels 0x${ch.toString(16)}`),
  ];
  out.push(
    offersChannel(ch, ChannelType.WAYLAND)
      ? finding("ok", "Wayland channel", "offered by the host")
      : finding(
          "fail",
          "Wayland channel",
          `not offered (bit ${ChannelType.WAYLAND} of 0x${ch.toString(16)} is clear)`,
          "give the VMM the host compositor's socket (crosvm --wayland-sock PATH; QEMU virtio-gpu-rutabaga-pci,wayland-socket-path=PATH; libkrun: XDG_RUNTIME_DIR/WAYLAND_DISPLAY of the VMM)",
        ),
  );
  const pw = offersChannel(ch, ChannelType.PIPEWIRE);
  out.push(
    pw
      ? finding("ok", "PipeWire channel", "offered by the host")
      : finding(
          wantPipeWire ? "fail" : "warn",
          "PipeWire channel",
          `not offered (bit ${ChannelType.PIPEWIRE} of 0x${ch.toString(16)} is clear): no audio or camera in the guest`,
          "give the VMM a PipeWire socket (libkrun/muvm pass $XDG_RUNTIME_DIR/pipewire-0; crosvm and rutabaga 0.1.2 have no PipeWire channel), ideally a crossway pipewire-filter's",
        ),
  );
  out.push(
    caps.supportsDmabuf
      ? finding("ok", "host dmabuf", "the host allocates dmabufs: GPU clients can share buffers")
      : finding(
          "warn",
          "host dmabuf",
          "the host allocates no dmabufs: clients get wl_shm only (linux-dmabuf is hidden)",
          "build the VMM's rutabaga with minigbm (crosvm --gpu ...,context-types=cross-domain with a GPU render node on the host)",
        ),
  );
  return out;
}
