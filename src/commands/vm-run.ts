// `crossway vm-run`: boot the QEMU + rutabaga VM against a host compositor and run one command in it behind
// `crossway guest --device virtgpu` (for a person trying an app in a VM; the VM tier uses the same stack).
import { existsSync } from "node:fs";
import type { CommandSpec } from "../cli-options.ts";
import { CrosswayError } from "../errors.ts";
import { killTrackedOnSignals } from "../harness/processes.ts";
import { GUEST_ENV, startVmStack } from "../harness/vm-stack.ts";

/** The `vm-run` subcommand. */
export const vmRunCommand: CommandSpec = {
  name: "vm-run",
  summary:
    "boot the test VM (QEMU + rutabaga) against a compositor and run a command behind crossway guest in it",
  options: [
    {
      name: "wayland",
      value: "PATH",
      help: "the host compositor's socket (default $XDG_RUNTIME_DIR/$WAYLAND_DISPLAY)",
    },
    {
      name: "guest-arg",
      value: "ARG",
      help: "extra argument for crossway guest in the VM",
      repeatable: true,
    },
  ],
  rest: "-- COMMAND [ARGS...]",
  async run(args) {
    const command = args.rest;
    if (command.length === 0)
      throw new CrosswayError("CW_USAGE", "crossway vm-run: no command given (-- COMMAND ...)");
    const dflt =
      process.env.XDG_RUNTIME_DIR !== undefined
        ? `${process.env.XDG_RUNTIME_DIR}/${process.env.WAYLAND_DISPLAY ?? "wayland-0"}`
        : undefined;
    const wayland = args.str("wayland") ?? dflt;
    if (wayland === undefined || !existsSync(wayland)) {
      throw new CrosswayError(
        "CW_USAGE",
        `crossway vm-run: no compositor socket at ${wayland ?? "(unset)"} (--wayland PATH)`,
        {
          value: wayland ?? "",
        },
      );
    }
    const say = (l: string) => process.stderr.write(`vm-run: ${l}\n`);
    const removeSignalHandlers = killTrackedOnSignals();
    const stack = await startVmStack({ socketPath: wayland }, say, args.list("guest-arg"));
    try {
      const p = await stack.vm.spawn(command, { env: GUEST_ENV });
      let printed = 0;
      const flush = (): void => {
        for (; printed < p.lines.length; printed++) process.stdout.write(`${p.lines[printed]}\n`);
      };
      const timer = setInterval(flush, 200);
      const status = await p.exited;
      clearInterval(timer);
      flush();
      say(`${command[0]} exited (code ${status.code}, signal ${status.signal})`);
      return status.code ?? 1;
    } finally {
      await stack.stop();
      removeSignalHandlers();
    }
  },
};
