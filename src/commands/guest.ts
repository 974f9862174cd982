// `crossway guest`: the guest session's Wayland proxy, carrying every client to the host over cross-domain.

import type { CommandSpec, ParsedArgs } from "../cli-options.ts";
import { attachControl } from "../control/attach.ts";
import { Reloadable } from "../control/reload.ts";
import type { HostFlavor } from "../crossdomain/protocol.ts";
import { CrosswayError } from "../errors.ts";
import { type ListenFd, takeListenFds } from "../fd/listen-fds.ts";
import { componentLogger } from "../log.ts";
import { GuestPipeWireServer } from "../proxy/pipewire-guest/server.ts";
import { DEFAULT_GUEST_CONFIG, type GuestConfig, loadGuestConfig } from "../proxy/wayland/guest-config.ts";
import { checkDeviceSpec, GuestServer } from "../proxy/wayland/guest-server.ts";
import { loadExtraProtocols } from "../trace/load-protocols.ts";
import { ProtocolRegistry } from "../wire/wayland/protocol-registry.ts";
import { stopLoopIdleMetrics } from "./loop-metrics.ts";
import { waitForStopSignal } from "./stop-signal.ts";

/** The config file with the command line's overrides applied (at start and at every reload). */
function effectiveConfig(args: ParsedArgs, configPath: string | undefined): GuestConfig {
  let config: GuestConfig = configPath !== undefined ? loadGuestConfig(configPath) : DEFAULT_GUEST_CONFIG;
  const title = args.str("title-prefix");
  const appId = args.str("app-id-prefix");
  if (title !== undefined) config = { ...config, titlePrefix: title };
  if (appId !== undefined) config = { ...config, appIdPrefix: appId };
  return config;
}

/** The `guest` subcommand. */
export const guestCommand: CommandSpec = {
  name: "guest",
  summary:
    "serve the guest's Wayland socket, forwarding each client to the host compositor over cross-domain",
  options: [
    {
      name: "device",
      value: "emulated:PATH|virtgpu[:NODE]",
      help: "the cross-domain device: a `crossway device` socket, or the kernel's virtio_gpu",
      required: true,
    },
    {
      name: "socket",
      value: "NAME|PATH",
      help: "display to serve (default: first free wayland-N in $XDG_RUNTIME_DIR; LISTEN_FDS wins)",
    },
    {
      name: "identifiers",
      value: "auto|4|28",
      help: "identifier slots per SEND/RECEIVE: learned from the host (auto, default), or 4 (rutabaga 0.1.2, libkrun protocol 0) or 28",
    },
    {
      name: "pipewire",
      value: "NAME|PATH",
      optionalValue: true,
      help: "also serve PipeWire (default pipewire-0 in $XDG_RUNTIME_DIR; a LISTEN_FDNAMES entry 'pipewire' wins)",
    },
    {
      name: "pipewire-flavor",
      value: "libkrun|crosvm",
      choices: ["libkrun", "crosvm"],
      help: "host flavour for PipeWire channels: 24-byte INIT (libkrun, default) or 20-byte (crosvm/upstream)",
    },
    { name: "no-wayland", help: "serve no Wayland socket (PipeWire only; needs --pipewire)" },
    {
      name: "config",
      value: "FILE",
      help: "JSON config: globals allowlist and caps, tags, limits (SIGHUP reloads it for new clients)",
    },
    { name: "protocol", value: "PATH", help: "extra protocol XML file or directory", repeatable: true },
    { name: "title-prefix", value: "TEXT", help: "prefix every window title (overrides the config)" },
    { name: "app-id-prefix", value: "TEXT", help: "prefix every app_id (overrides the config)" },
    {
      name: "spare-channels",
      value: "N",
      help: "cross-domain channels kept open ahead of clients, so a new client starts on a ready one (default 1; 0-16)",
    },
    { name: "control", value: "PATH", help: "control socket for `crossway status`" },
  ],
  async run(args) {
    const device = checkDeviceSpec(args.str("device") as string);
    const identifiers = args.str("identifiers") ?? "auto";
    if (identifiers !== "auto" && identifiers !== "4" && identifiers !== "28") {
      throw new CrosswayError(
        "CW_USAGE",
        `crossway guest: --identifiers must be auto, 4 or 28, not '${identifiers}'`,
        {
          value: identifiers,
        },
      );
    }
    const spareText = args.str("spare-channels") ?? "1";
    const spareChannels = /^\d{1,2}$/.test(spareText) ? Number(spareText) : -1;
    if (spareChannels < 0 || spareChannels > 16) {
      throw new CrosswayError(
        "CW_USAGE",
        `crossway guest: --spare-channels must be a number from 0 to 16, not '${spareText}'`,
        { value: spareText },
      );
    }
    const configPath = args.str("config");
    const config = effectiveConfig(args, configPath);
    const registry = ProtocolRegistry.fromGenerated();
    loadExtraProtocols(registry, [...config.protocolPaths, ...args.list("protocol")]);
    const log = componentLogger("guest");
    stopLoopIdleMetrics(log);
    const socket = args.str("socket");
    const { wayland: waylandFds, pipewire: pipewireFds } = splitListenFds(takeListenFds());
    // A socket systemd names "pipewire" (crossway-pipewire.socket) is served as if --pipewire were given.
    const wantPipeWire = args.flag("pipewire") || pipewireFds.length > 0;
    const wantWayland = !args.flag("no-wayland");
    if (!wantWayland && !wantPipeWire) {
      throw new CrosswayError("CW_USAGE", "crossway guest: --no-wayland needs --pipewire (nothing to serve)");
    }
    let pw: GuestPipeWireServer | undefined;
    if (wantPipeWire) {
      const pwSocket = args.str("pipewire");
      pw = GuestPipeWireServer.start({
        device,
        ...(pwSocket !== undefined ? { socket: pwSocket } : {}),
        listenFds: pipewireFds,
        flavor: (args.str("pipewire-flavor") ?? "libkrun") as HostFlavor,
        log: log.child({ proto: "pipewire" }),
      });
      process.stdout.write(`crossway guest: PipeWire listening on ${pw.socketPath ?? "inherited sockets"}\n`);
    }
    let server: GuestServer | undefined;
    if (wantWayland) {
      server = GuestServer.start({
        device,
        identifiers: identifiers === "auto" ? "auto" : identifiers === "4" ? 4 : 28,
        spareChannels,
        ...(socket !== undefined ? { socket } : {}),
        listenFds: waylandFds,
        config,
        registry,
        log,
      });
    }
    const wl = server;
    const reloadable =
      configPath === undefined || wl === undefined
        ? undefined
        : new Reloadable(
            config,
            () => {
              const next = effectiveConfig(args, configPath);
              // Extra protocols are loaded into the shared tables once; changing them needs a restart.
              if (JSON.stringify(next.protocolPaths) !== JSON.stringify(config.protocolPaths)) {
                throw new CrosswayError(
                  "CW_CONFIG",
                  `${configPath}: protocolPaths cannot change on reload (restart crossway guest)`,
                );
              }
              return next;
            },
            (c, generation) => wl.setConfig(c, generation),
          );
    const controlPath = args.str("control");
    const control = await attachControl({
      command: "guest",
      ...(reloadable !== undefined && configPath !== undefined
        ? { policy: { file: configPath, reloadable } }
        : {}),
      ...(controlPath !== undefined ? { controlPath } : {}),
      connections: () => wl?.status() ?? [],
      spareChannels: () => wl?.reserveStatus(),
      log,
    }).catch((err: unknown) => {
      server?.close();
      pw?.close();
      throw err;
    });
    if (server !== undefined) {
      const names = waylandFds.map((l) => `fd ${l.fd} '${l.name}'`).join(", ");
      process.stdout.write(
        `crossway guest: listening on ${server.socketPath ?? `inherited sockets (${names})`}${server.displayName !== undefined ? ` (WAYLAND_DISPLAY=${server.displayName})` : ""}\n`,
      );
    }
    await waitForStopSignal();
    control.close();
    server?.close();
    pw?.close();
    return 0;
  },
};

/** systemd sockets named "pipewire" (LISTEN_FDNAMES, FileDescriptorName=) serve PipeWire; the others Wayland. */
function splitListenFds(fds: ListenFd[]): { wayland: ListenFd[]; pipewire: ListenFd[] } {
  return {
    wayland: fds.filter((l) => l.name !== "pipewire"),
    pipewire: fds.filter((l) => l.name === "pipewire"),
  };
}
