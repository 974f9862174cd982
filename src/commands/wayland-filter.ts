// `crossway wayland-filter`: the host-side boundary between a VM's Wayland clients and the real compositor.

import type { CommandSpec } from "../cli-options.ts";
import { attachControl } from "../control/attach.ts";
import { Reloadable } from "../control/reload.ts";
import { CrosswayError } from "../errors.ts";
import { takeListenFds } from "../fd/listen-fds.ts";
import { componentLogger } from "../log.ts";
import { pinoWlAuditSink } from "../proxy/wayland-filter/audit.ts";
import { defaultPolicy, loadFilterPolicy } from "../proxy/wayland-filter/filter-policy.ts";
import { startWaylandFilter } from "../proxy/wayland-filter/filter-server.ts";
import { loadExtraProtocols } from "../trace/load-protocols.ts";
import { ProtocolRegistry } from "../wire/wayland/protocol-registry.ts";
import { stopLoopIdleMetrics } from "./loop-metrics.ts";
import { waitForStopSignal } from "./stop-signal.ts";

/** The `wayland-filter` subcommand. */
export const waylandFilterCommand: CommandSpec = {
  name: "wayland-filter",
  summary: "host-side Wayland filter: a VMM's cross-domain Wayland socket, with a per-VM policy",
  options: [
    {
      name: "listen",
      value: "PATH",
      help: "socket to create for the VMM (QEMU wayland-socket-path, crosvm --wayland-sock; LISTEN_FDS wins)",
    },
    { name: "upstream", value: "PATH", help: "the compositor's socket", required: true },
    {
      name: "policy",
      value: "FILE",
      help: "JSON policy (docs/wayland-filter.md); default: the safe default",
    },
    { name: "name", value: "VM", help: "the VM's name, for tags and audit lines (overrides the policy's)" },
    { name: "protocol", value: "PATH", help: "extra protocol XML file or directory", repeatable: true },
    { name: "control", value: "PATH", help: "control socket for `crossway status`" },
  ],
  async run(args) {
    const log = componentLogger("wayland-filter");
    stopLoopIdleMetrics(log);
    const name = args.str("name");
    const policyPath = args.str("policy");
    if (policyPath === undefined && name === undefined) {
      throw new CrosswayError("CW_USAGE", "crossway wayland-filter: give --name VM, --policy FILE or both");
    }
    const policy =
      policyPath !== undefined ? loadFilterPolicy(policyPath, name) : defaultPolicy(name as string);
    const listenFds = takeListenFds();
    const listen = args.str("listen");
    if (listenFds.length === 0 && listen === undefined) {
      throw new CrosswayError(
        "CW_USAGE",
        "crossway wayland-filter: --listen PATH is required unless systemd passes a socket (LISTEN_FDS)",
      );
    }
    const registry = ProtocolRegistry.fromGenerated();
    loadExtraProtocols(registry, args.list("protocol"));
    const filter = startWaylandFilter({
      ...(listen !== undefined ? { listenPath: listen } : {}),
      listenFds,
      upstreamPath: args.str("upstream") as string,
      policy,
      registry,
      audit: pinoWlAuditSink,
      log,
    });
    const controlPath = args.str("control");
    const control = await attachControl({
      command: "wayland-filter",
      ...(policyPath !== undefined
        ? {
            policy: {
              file: policyPath,
              reloadable: new Reloadable(
                policy,
                () => loadFilterPolicy(policyPath, name),
                (p, generation) => filter.setPolicy(p, generation),
              ),
            },
          }
        : {}),
      ...(controlPath !== undefined ? { controlPath } : {}),
      connections: () => filter.status(),
      log,
    }).catch((err: unknown) => {
      filter.close();
      throw err;
    });
    process.stdout.write(
      `crossway wayland-filter: VM ${policy.name} listening on ${filter.listenPath ?? "inherited sockets"}\n`,
    );
    await waitForStopSignal();
    control.close();
    filter.close();
    return 0;
  },
};
