// `crossway doctor --guest`: the virtio_gpu node, its params and capsets, the host's cross-domain caps, and a real
// registry round trip over a cross-domain channel (the same code path `crossway guest` uses per client).
import { readdirSync, readlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { CrossDomainChannel, type ReceivedItem } from "../crossdomain/channel.ts";
import { openVirtGpu } from "../crossdomain/open-virtgpu.ts";
import { CAPSET_CROSS_DOMAIN, ChannelType, CROSS_DOMAIN_CAPS_SIZE } from "../crossdomain/protocol.ts";
import type { VirtGpu } from "../crossdomain/virtgpu.ts";
import { CrosswayError } from "../errors.ts";
import { componentLogger } from "../log.ts";
import { native } from "../native.ts";
import { type Finding, finding } from "./finding.ts";
import {
  capsFindings,
  type DrmNodeEntry,
  decodeCapsWords,
  nodeFinding,
  offersChannel,
  paramFindings,
} from "./guest-findings.ts";
import { PipeWireProbe, pipewireFinding, pipewireProbeRequest } from "./pipewire-probe.ts";
import { RegistryProbe, registryFinding, registryProbeRequest } from "./wayland-probe.ts";

const WAYLAND_CHECK = "Wayland round trip";
const PIPEWIRE_CHECK = "PipeWire round trip";

/** Options of {@link guestDoctor}. */
export interface GuestDoctorOptions {
  /** "virtgpu" (find the node in sysfs), "virtgpu:NODE", or "emulated:PATH" (kernel checks skipped). */
  readonly device: string;
  /** The guest will serve pipewire-0: a host without the PipeWire channel is then a failure. */
  readonly wantPipeWire: boolean;
  readonly timeoutMs: number;
  readonly sysfsDrm?: string;
  readonly devDri?: string;
}

/** Reads /sys/class/drm/<node>/device/driver and <node>/device/virtio*\/driver for every entry. */
export function scanDrmNodes(sysfsDrm: string): DrmNodeEntry[] {
  const link = (p: string): string | null => {
    try {
      return basename(readlinkSync(p));
    } catch {
      return null;
    }
  };
  return readdirSync(sysfsDrm).map((name) => {
    const dev = join(sysfsDrm, name, "device");
    let virtio: string[] = [];
    try {
      virtio = readdirSync(dev)
        .filter((e) => /^virtio\d+$/.test(e))
        .map((e) => link(join(dev, e, "driver")))
        .filter((d): d is string => d !== null);
    } catch {
      // No device directory (e.g. "version", connectors): nothing below.
    }
    return { name, deviceDriver: link(join(dev, "driver")), virtioDrivers: virtio };
  });
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs the guest checks in order, stopping at the first failure that makes the later ones meaningless. */
export async function guestDoctor(o: GuestDoctorOptions): Promise<Finding[]> {
  const out: Finding[] = [];
  let spec = o.device;
  if (spec.startsWith("emulated:")) {
    out.push(finding("ok", "device", `${spec}: an emulated device (kernel node checks skipped)`));
  } else {
    const sysfs = o.sysfsDrm ?? "/sys/class/drm";
    const devDri = o.devDri ?? "/dev/dri";
    let entries: DrmNodeEntry[] = [];
    let listError: string | undefined;
    try {
      entries = scanDrmNodes(sysfs);
    } catch (err) {
      listError = (err as NodeJS.ErrnoException).code ?? errText(err);
    }
    const r = nodeFinding(sysfs, devDri, entries, listError);
    out.push(r.finding);
    if (spec === "virtgpu") {
      if (r.node === undefined) return out;
      spec = `virtgpu:${r.node}`;
    }
  }

  let gpu: VirtGpu;
  try {
    gpu = openVirtGpu(spec);
  } catch (err) {
    const eacces = /EACCES|permission denied/i.test(errText(err));
    out.push(
      finding(
        "fail",
        "open device",
        errText(err),
        eacces
          ? "add the user to the group owning the node (usually 'render': usermod -aG render USER) and log in again"
          : "check the --device value and that the device exists",
      ),
    );
    return out;
  }
  try {
    const params = await gpu.getParams();
    const pf = paramFindings(params);
    out.push(...pf);
    if (pf.some((f) => f.status === "fail")) return out;
    const caps = decodeCapsWords(await gpu.getCaps(CAPSET_CROSS_DOMAIN, 0, CROSS_DOMAIN_CAPS_SIZE));
    const cf = capsFindings(caps, o.wantPipeWire);
    out.push(...cf);
    if (offersChannel(caps.supportedChannels, ChannelType.WAYLAND)) {
      const probe = new RegistryProbe();
      out.push(
        await channelRoundTrip(spec, ChannelType.WAYLAND, o.timeoutMs, registryProbeRequest(), (b) => {
          const r = probe.push(b);
          return (
            r &&
            registryFinding(
              WAYLAND_CHECK,
              "the host compositor",
              r,
              "point the VMM's Wayland socket at a compositor",
            )
          );
        }),
      );
    }
    if (offersChannel(caps.supportedChannels, ChannelType.PIPEWIRE)) {
      const probe = new PipeWireProbe();
      out.push(
        await channelRoundTrip(spec, ChannelType.PIPEWIRE, o.timeoutMs, pipewireProbeRequest(), (b) => {
          const r = probe.push(b);
          return r && pipewireFinding(PIPEWIRE_CHECK, "the host's PipeWire", r);
        }),
      );
    }
  } catch (err) {
    out.push(
      finding("fail", "device query", errText(err), "see the kernel log (dmesg | grep -i virtio_gpu)"),
    );
  } finally {
    gpu.close();
  }
  return out;
}

/**
 * Opens a channel of `type` on a fresh context (CONTEXT_INIT, rings, INIT: what the guest does per client), sends
 * `request` and feeds the host's bytes to `parse` until it yields a finding.
 */
async function channelRoundTrip(
  spec: string,
  type: number,
  timeoutMs: number,
  request: Uint8Array,
  parse: (bytes: Uint8Array) => Finding | undefined,
): Promise<Finding> {
  const what = type === ChannelType.WAYLAND ? WAYLAND_CHECK : PIPEWIRE_CHECK;
  let channel: CrossDomainChannel;
  try {
    // As `crossway guest --identifiers auto` does: learn the host's SEND/RECEIVE layout (4 or 28 slots) first.
    channel = await CrossDomainChannel.open({
      gpu: openVirtGpu(spec),
      channelType: type,
      probeLayout: "adopt",
      logger: componentLogger("doctor"),
    });
  } catch (err) {
    const init = err instanceof CrosswayError && err.code === "CW_CROSSDOMAIN_INIT_FAILED";
    return finding(
      "fail",
      what,
      errText(err),
      init
        ? "the VMM could not connect its host socket: start the host service and check the socket path given to the VMM"
        : "see the kernel log (dmesg | grep -i virtio_gpu)",
    );
  }
  const slots = channel.config.maxIdentifiers;
  return new Promise<Finding>((resolve) => {
    let done = false;
    const finish = (f: Finding): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      channel.close();
      // The layout the probe found is part of what makes the round trip work: say it on success.
      resolve(
        f.status === "ok" ? { ...f, detail: `${f.detail}; the host parses ${slots} identifier slots` } : f,
      );
    };
    const timer = setTimeout(
      () => finish(finding("fail", what, `no answer within ${timeoutMs} ms`, "check the host service's log")),
      timeoutMs,
    );
    channel.onReceive = (data: Uint8Array, items: readonly ReceivedItem[]) => {
      for (const it of items) if ("fd" in it) native.close(it.fd);
      try {
        const f = parse(data.slice());
        if (f !== undefined) finish(f);
      } catch (err) {
        finish(finding("fail", what, `malformed answer: ${errText(err)}`));
      }
      return "continue";
    };
    channel.onClose = (reason) => {
      finish(
        finding(
          "fail",
          what,
          reason.kind === "error"
            ? reason.error.message
            : `the channel closed (${reason.kind}) before the answer`,
          "check the host service's log",
        ),
      );
    };
    channel.send(request);
  });
}
