// `crossway pipewire-filter`: a validating PipeWire proxy (pipewire.md §7, mode F) for one kind of stream client.

import type { CommandSpec } from "../cli-options.ts";
import { startPipeWireFilter } from "../proxy/pipewire/filter-server.ts";
import type { ProfileName } from "../proxy/pipewire/policy.ts";
import { waitForStopSignal } from "./stop-signal.ts";

/** The command spec registered in commands/index.ts. */
export const pipewireFilterCommand: CommandSpec = {
  name: "pipewire-filter",
  summary: "validating PipeWire proxy: clients connect with PIPEWIRE_REMOTE=<listen path>",
  options: [
    { name: "listen", value: "PATH", help: "Unix socket to create for clients", required: true },
    {
      name: "upstream",
      value: "PATH",
      help: "the PipeWire daemon's socket (e.g. $XDG_RUNTIME_DIR/pipewire-0)",
      required: true,
    },
    {
      name: "profile",
      value: "NAME",
      help: "what clients may do",
      required: true,
      choices: ["camera", "screencast", "audio-playback", "audio-capture"],
    },
    { name: "target", value: "NODE", help: "node name, id or serial the client may use", repeatable: true },
    { name: "tag", value: "PREFIX", help: "prefix for node names the client announces (default 'guest.')" },
    { name: "camera-controls", help: "allow Node.SetParam(Props) camera controls on camera targets" },
  ],
  async run(args) {
    const filter = startPipeWireFilter({
      listenPath: args.str("listen") as string,
      upstreamPath: args.str("upstream") as string,
      profile: args.str("profile") as ProfileName,
      targets: args.list("target"),
      ...(args.str("tag") !== undefined ? { tag: args.str("tag") as string } : {}),
      cameraControls: args.flag("camera-controls"),
    });
    // Tests and wrappers wait for this line before connecting (the socket file exists before listen()).
    process.stdout.write(`crossway pipewire-filter: listening on ${args.str("listen") as string}\n`);
    await waitForStopSignal();
    filter.close();
    return 0;
  },
};
