// `crossway status --control PATH`: lists a running command's connections (table, or --json).
import type { CommandSpec } from "../cli-options.ts";
import { requestStatus } from "../control/control-client.ts";
import { formatStatus } from "../control/status-format.ts";

/** How long the running command may take to answer (it answers from its event loop). */
const STATUS_TIMEOUT_MS = 10_000;

/** The `status` subcommand. */
export const statusCommand: CommandSpec = {
  name: "status",
  summary: "list a running crossway command's connections (app_id, title, objects, memory, queues, refusals)",
  options: [
    {
      name: "control",
      value: "PATH",
      help: "the control socket the command was started with (--control)",
      required: true,
    },
    { name: "json", help: "print the report as JSON" },
    { name: "gc", help: "have the command run a full garbage collection before it reports its memory" },
  ],
  async run(args) {
    const report = await requestStatus(args.str("control") as string, STATUS_TIMEOUT_MS, args.flag("gc"));
    process.stdout.write(
      args.flag("json") ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`,
    );
    return 0;
  },
};
