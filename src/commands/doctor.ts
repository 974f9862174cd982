// `crossway doctor`: checks that crossway would work here (guest: device and host answers; host: sockets, policies).
import type { CommandSpec } from "../cli-options.ts";
import { doctorExitCode, type Finding, formatFinding } from "../doctor/finding.ts";
import { guestDoctor } from "../doctor/guest-doctor.ts";
import { hostDoctor } from "../doctor/host-doctor.ts";
import { CrosswayError } from "../errors.ts";
import { checkDeviceSpec } from "../proxy/wayland/guest-server.ts";

/** How long one probe may wait for an answer (a loaded machine, a TCG guest). */
const PROBE_TIMEOUT_MS = 15_000;

/** The `doctor` subcommand. */
export const doctorCommand: CommandSpec = {
  name: "doctor",
  summary:
    "check that crossway would work here: one line per finding with what to do; exit 1 if it would not",
  options: [
    { name: "guest", help: "guest mode: the virtio-gpu device, cross-domain caps, a registry round trip" },
    { name: "host", help: "host mode: the compositor's and PipeWire's sockets, the filters' policy files" },
    {
      name: "device",
      value: "virtgpu[:NODE]|emulated:PATH",
      help: "guest mode: the device to check (default virtgpu, found in sysfs)",
    },
    {
      name: "pipewire-guest",
      help: "guest mode: the guest serves pipewire-0, so the PipeWire channel is required",
    },
    {
      name: "wayland",
      value: "NAME|PATH",
      help: "host mode: compositor socket (default $WAYLAND_DISPLAY or wayland-0)",
    },
    {
      name: "pipewire",
      value: "NAME|PATH",
      help: "host mode: PipeWire socket (default $PIPEWIRE_REMOTE or pipewire-0); given, its absence fails",
    },
    { name: "policy-dir", value: "DIR", help: "host mode: per-VM policy directory (default /etc/crossway)" },
    { name: "json", help: "print the findings as a JSON array" },
  ],
  async run(args) {
    const guest = args.flag("guest");
    const host = args.flag("host");
    if (guest === host) {
      throw new CrosswayError(
        "CW_USAGE",
        "crossway doctor: give exactly one of --guest or --host (see 'crossway doctor --help')",
      );
    }
    let findings: Finding[];
    if (guest) {
      findings = await guestDoctor({
        device: checkDeviceSpec(args.str("device") ?? "virtgpu"),
        wantPipeWire: args.flag("pipewire-guest"),
        timeoutMs: PROBE_TIMEOUT_MS,
      });
    } else {
      const wayland = args.str("wayland");
      const pipewire = args.str("pipewire");
      findings = await hostDoctor({
        env: process.env,
        ...(wayland !== undefined ? { wayland } : {}),
        ...(pipewire !== undefined ? { pipewire } : {}),
        policyDir: args.str("policy-dir") ?? "/etc/crossway",
        timeoutMs: PROBE_TIMEOUT_MS,
      });
    }
    const code = doctorExitCode(findings);
    if (args.flag("json")) process.stdout.write(`${JSON.stringify(findings, null, 2)}\n`);
    else {
      for (const f of findings) process.stdout.write(`${formatFinding(f)}\n`);
      process.stdout.write(
        code === 0
          ? "crossway would work here\n"
          : "crossway would NOT work here: fix the FAIL lines above\n",
      );
    }
    return code;
  },
};
