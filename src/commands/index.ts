// The list of crossway subcommands; each later feature adds its command here.
import type { CommandSpec } from "../cli-options.ts";
import { pipewireFilterCommand } from "./pipewire-filter.ts";

/** All subcommands, in the order `crossway --help` lists them. */
export const commands: readonly CommandSpec[] = [pipewireFilterCommand];
