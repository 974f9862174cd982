// Gives a long-running command its control socket and SIGHUP reload in one call (guest, filters).
import type { Logger } from "../log.ts";
import { native } from "../native.ts";
import { type ControlServer, startControlServer } from "./control-server.ts";
import { readMemory } from "./memory-reading.ts";
import { type Reloadable, reloadOnSighup } from "./reload.ts";
import type { ConnectionStatus, SpareChannelsStatus } from "./status-report.ts";

/** What a command hands over: its name, its policy (if it has a file), and how to list its connections. */
export interface ControlOptions<T> {
  readonly command: string;
  /** The policy file and its Reloadable; absent: SIGHUP only says there is nothing to reload. */
  readonly policy?: { readonly file: string; readonly reloadable: Reloadable<T> };
  /** The control socket to open (`--control PATH`); absent: none. */
  readonly controlPath?: string;
  readonly connections: () => ConnectionStatus[];
  /** The guest's spare channels (absent: the command keeps none). */
  readonly spareChannels?: () => SpareChannelsStatus | undefined;
  readonly log: Logger;
}

/** The attached control: call close() when the command stops. */
export interface AttachedControl {
  close(): void;
}

/** Opens the control socket (when asked) and installs the SIGHUP handler; resolves once the socket listens. */
export async function attachControl<T>(o: ControlOptions<T>): Promise<AttachedControl> {
  const started = Date.now();
  const policy = o.policy;
  const offHup =
    policy !== undefined
      ? reloadOnSighup(o.command, policy.file, () => policy.reloadable.reload())
      : reloadOnSighup(o.command, "(none)", () => ({
          ok: false,
          error: "started without a policy file: nothing to reload",
          generation: 1,
        }));
  let server: ControlServer | undefined;
  try {
    if (o.controlPath !== undefined) {
      server = await startControlServer(
        o.controlPath,
        (request) => ({
          command: o.command,
          pid: process.pid,
          uptimeSec: Math.floor((Date.now() - started) / 1000),
          ...(policy !== undefined ? { policyFile: policy.file } : {}),
          policyGeneration: policy?.reloadable.generation ?? 1,
          connections: o.connections(),
          ...spares(o),
          inlineLoop: native.inlineLoopStats(),
          memory: readMemory(request.gc),
        }),
        o.log,
      );
    }
  } catch (err) {
    offHup();
    throw err;
  }
  return {
    close() {
      offHup();
      server?.close();
    },
  };
}

function spares<T>(o: ControlOptions<T>): { spareChannels?: SpareChannelsStatus } {
  const st = o.spareChannels?.();
  return st === undefined ? {} : { spareChannels: st };
}
