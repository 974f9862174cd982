// `crossway trace`: a relay in front of a compositor that prints each client's messages like WAYLAND_DEBUG=1.

import type { CommandSpec } from "../cli-options.ts";
import { CrosswayError } from "../errors.ts";
import { componentLogger } from "../log.ts";
import { loadExtraProtocols } from "../trace/load-protocols.ts";
import { startTracer } from "../trace/tracer.ts";
import { DEFAULT_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE_LIMIT } from "../wire/wayland/framer.ts";
import { ProtocolRegistry } from "../wire/wayland/protocol-registry.ts";
import { stopLoopIdleMetrics } from "./loop-metrics.ts";
import { waitForStopSignal } from "./stop-signal.ts";

/** The `trace` subcommand. */
export const traceCommand: CommandSpec = {
  name: "trace",
  summary: "relay Wayland clients to a compositor, printing every message in WAYLAND_DEBUG format",
  options: [
    { name: "socket", value: "PATH", help: "socket to listen on for clients", required: true },
    { name: "upstream", value: "PATH", help: "the compositor's socket", required: true },
    {
      name: "tag",
      value: "TAG",
      help: "prefix of each connection's tag (lines read TAG#N ...; default client)",
    },
    {
      name: "protocol",
      value: "PATH",
      help: "extra protocol XML file or directory (overrides installed definitions)",
      repeatable: true,
    },
    {
      name: "max-message-size",
      value: "BYTES",
      help: `largest message accepted (default ${DEFAULT_MAX_MESSAGE_SIZE}, at most ${MAX_MESSAGE_SIZE_LIMIT})`,
    },
  ],
  async run(args) {
    stopLoopIdleMetrics(componentLogger("trace"));
    const registry = ProtocolRegistry.fromGenerated();
    loadExtraProtocols(registry, args.list("protocol"));
    const rawMax = args.str("max-message-size");
    let maxMessageSize: number | undefined;
    if (rawMax !== undefined) {
      maxMessageSize = Number(rawMax);
      if (!Number.isInteger(maxMessageSize) || maxMessageSize < 8 || maxMessageSize > MAX_MESSAGE_SIZE_LIMIT)
        throw new CrosswayError(
          "CW_USAGE",
          `crossway trace: --max-message-size must be an integer in 8..${MAX_MESSAGE_SIZE_LIMIT}, not '${rawMax}'`,
        );
    }
    const tracer = startTracer({
      socketPath: args.str("socket") as string,
      upstreamPath: args.str("upstream") as string,
      registry,
      ...(args.str("tag") !== undefined ? { tag: args.str("tag") as string } : {}),
      ...(maxMessageSize !== undefined ? { maxMessageSize } : {}),
      write: (t) => process.stdout.write(t),
    });
    process.stderr.write(`crossway trace: listening on ${tracer.socketPath}\n`);
    await waitForStopSignal();
    tracer.close();
    return 0;
  },
};
