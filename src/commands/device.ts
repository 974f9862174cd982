// `crossway device`: runs the emulated virtio-gpu cross-domain host (the VMM stand-in) until SIGINT/SIGTERM.

import { existsSync, unlinkSync } from "node:fs";
import type { CommandSpec } from "../cli-options.ts";
import { startDevice } from "../crossdomain/device.ts";
import type { HostFlavor } from "../crossdomain/protocol.ts";
import { CrosswayError } from "../errors.ts";
import { componentLogger } from "../log.ts";
import { native } from "../native.ts";
import { stopLoopIdleMetrics } from "./loop-metrics.ts";
import { waitForStopSignal } from "./stop-signal.ts";

/** The `device` subcommand. */
export const deviceCommand: CommandSpec = {
  name: "device",
  summary:
    "emulated virtio-gpu cross-domain host (rutabaga/libkrun semantics) for `crossway guest --device emulated:PATH`",
  options: [
    { name: "listen", value: "PATH", help: "Unix socket the guest side connects to", required: true },
    { name: "wayland", value: "PATH", help: "host Wayland socket for the Wayland channel (type 1)" },
    { name: "pipewire", value: "PATH", help: "host PipeWire socket for the PipeWire channel (type 0x10)" },
    {
      name: "flavor",
      value: "crosvm|libkrun",
      help: "host implementation to emulate: INIT parsing and eventfd identifier type (default crosvm)",
      choices: ["crosvm", "libkrun"],
    },
    {
      name: "identifiers",
      value: "28|4",
      help: "SEND/RECEIVE identifier-array size (default 28; 4 = pre-2024 crosvm)",
      choices: ["28", "4"],
    },
    {
      name: "no-eof-receive",
      help: "play rutabaga <= 0.1.2 (QEMU 10): no zero-length RECEIVE when the host socket ends",
    },
    {
      name: "qemu-fence-quirk",
      help: "play QEMU's rutabaga device: any fence also completes other contexts' waiting POLLs early",
    },
    {
      name: "page-size",
      value: "4096|16384",
      help: "the guest page size to play (ring size; default 4096; 16384 as on Apple Silicon guests)",
      choices: ["4096", "16384"],
    },
  ],
  async run(args) {
    const log = componentLogger("device");
    stopLoopIdleMetrics(log);
    const listen = args.str("listen")!;
    if (existsSync(listen)) {
      // Replace a stale socket from an earlier run, but never steal the path of a device that still answers.
      let live = false;
      try {
        native.close(native.unixConnect(listen));
        live = true;
      } catch {
        unlinkSync(listen);
      }
      if (live)
        throw new CrosswayError("CW_CONFIG", `crossway device: ${listen} is in use by a running device`);
    }
    const flavor = (args.str("flavor") ?? "crosvm") as HostFlavor;
    const maxIdentifiers = args.str("identifiers") === "4" ? 4 : 28;
    const wayland = args.str("wayland");
    const pipewire = args.str("pipewire");
    let device: ReturnType<typeof startDevice>;
    try {
      device = startDevice({
        listen,
        ...(wayland !== undefined ? { wayland } : {}),
        ...(pipewire !== undefined ? { pipewire } : {}),
        config: { flavor, maxIdentifiers },
        pageSize: Number(args.str("page-size") ?? "4096"),
        eofReceive: !args.flag("no-eof-receive"),
        foreignPollCompletion: args.flag("qemu-fence-quirk"),
        logger: log,
      });
    } catch (err) {
      throw new CrosswayError(
        "CW_CONFIG",
        `crossway device: cannot listen on ${listen}: ${(err as Error).message}`,
      );
    }
    // Tests and wrappers wait for this line before connecting.
    process.stdout.write(`crossway device listening on ${listen}\n`);
    await waitForStopSignal();
    device.close();
    try {
      unlinkSync(listen);
    } catch {
      // Already gone.
    }
    return 0;
  },
};
