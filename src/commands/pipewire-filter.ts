// `crossway pipewire-filter`: a validating PipeWire proxy (pipewire.md §7, mode F) for one kind of stream client.

import type { CommandSpec, ParsedArgs } from "../cli-options.ts";
import { attachControl } from "../control/attach.ts";
import { Reloadable } from "../control/reload.ts";
import { CrosswayError } from "../errors.ts";
import { componentLogger } from "../log.ts";
import { startPipeWireFilter } from "../proxy/pipewire/filter-server.ts";
import type { ProfileName } from "../proxy/pipewire/policy.ts";
import { loadPipeWirePolicy, type PipeWirePolicy } from "../proxy/pipewire/policy-file.ts";
import { stopLoopIdleMetrics } from "./loop-metrics.ts";
import { waitForStopSignal } from "./stop-signal.ts";

/** The policy from --policy FILE, or from --profile/--target/--tag/--camera-controls (never both). */
function policyFromArgs(args: ParsedArgs): PipeWirePolicy {
  const file = args.str("policy");
  const profile = args.str("profile");
  if ((file === undefined) === (profile === undefined)) {
    throw new CrosswayError(
      "CW_USAGE",
      "crossway pipewire-filter: give exactly one of --policy FILE or --profile NAME (see 'crossway pipewire-filter --help')",
    );
  }
  if (file !== undefined) {
    const inline = ["target", "tag", "camera-controls"].filter((o) => args.values.has(o));
    if (inline.length > 0) {
      throw new CrosswayError(
        "CW_USAGE",
        `crossway pipewire-filter: --${inline[0]} cannot be combined with --policy (put it in the file)`,
      );
    }
    return loadPipeWirePolicy(file);
  }
  return {
    profile: profile as ProfileName,
    targets: args.list("target"),
    tag: args.str("tag") ?? "guest.",
    cameraControls: args.flag("camera-controls"),
  };
}

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
      help: "what clients may do (or --policy)",
      choices: ["camera", "screencast", "audio-playback", "audio-capture"],
    },
    { name: "target", value: "NODE", help: "node name, id or serial the client may use", repeatable: true },
    { name: "tag", value: "PREFIX", help: "prefix for node names the client announces (default 'guest.')" },
    { name: "camera-controls", help: "allow Node.SetParam(Props) camera controls on camera targets" },
    {
      name: "policy",
      value: "FILE",
      help: 'JSON {"profile","targets","tag","cameraControls"} instead of the options; SIGHUP reloads it',
    },
    { name: "control", value: "PATH", help: "control socket for `crossway status`" },
  ],
  async run(args) {
    const log = componentLogger("pipewire-filter");
    stopLoopIdleMetrics(log);
    const policy = policyFromArgs(args);
    const file = args.str("policy");
    const filter = startPipeWireFilter({
      listenPath: args.str("listen") as string,
      upstreamPath: args.str("upstream") as string,
      profile: policy.profile,
      targets: policy.targets,
      tag: policy.tag,
      cameraControls: policy.cameraControls,
    });
    const controlPath = args.str("control");
    const control = await attachControl({
      command: "pipewire-filter",
      ...(file !== undefined
        ? {
            policy: {
              file,
              reloadable: new Reloadable(
                policy,
                () => loadPipeWirePolicy(file),
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
    // Tests and wrappers wait for this line before connecting (the socket file exists before listen()).
    process.stdout.write(`crossway pipewire-filter: listening on ${args.str("listen") as string}\n`);
    await waitForStopSignal();
    control.close();
    filter.close();
    return 0;
  },
};
