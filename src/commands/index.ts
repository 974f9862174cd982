// The list of crossway subcommands; each later feature adds its command here.
import type { CommandSpec } from "../cli-options.ts";
import { demoCommand } from "./demo.ts";
import { deviceCommand } from "./device.ts";
import { guestCommand } from "./guest.ts";
import { pipewireFilterCommand } from "./pipewire-filter.ts";
import { traceCommand } from "./trace.ts";
import { vmRunCommand } from "./vm-run.ts";
import { waylandFilterCommand } from "./wayland-filter.ts";

/** All subcommands, in the order `crossway --help` lists them. */
export const commands: readonly CommandSpec[] = [
  guestCommand,
  deviceCommand,
  pipewireFilterCommand,
  waylandFilterCommand,
  traceCommand,
  demoCommand,
  vmRunCommand,
];
