// Starts a private PipeWire stack as root without systemd: dbus-daemon, pipewire, wireplumber and a null sink.
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { CrosswayError } from "../errors.ts";
import { clientEnv, makePeerDirs } from "./compositor.ts";
import {
  logTail,
  requireCommand,
  run,
  runOk,
  spawnTracked,
  type TrackedProcess,
  waitFor,
} from "./processes.ts";

/** A running PipeWire daemon with WirePlumber and the null sink `testsink`. */
export interface PipeWireStack {
  /** The private XDG_RUNTIME_DIR (mode 0700) holding `pipewire-0` and the D-Bus socket `bus`. */
  runtimeDir: string;
  /** Absolute path of the daemon's socket (`pipewire-0`). */
  socketPath: string;
  /** XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS, PIPEWIRE_REMOTE (absolute), PATH, HOME... for clients. */
  env: Record<string, string>;
  /** pids of dbus-daemon, pipewire and wireplumber. */
  pids: number[];
  /** Directory of the logs dbus.log, pipewire.log, wireplumber.log. */
  logDir: string;
  /** Stops all three and checks by pid that nothing is left. Idempotent. */
  stop(): Promise<void>;
}

/** The null sink every stack has; it exists without hardware and outlives the pw-cli that made it. */
export const TEST_SINK = "testsink";

/**
 * Starts dbus-daemon (WirePlumber exits without a session bus, environment.md §4), then pipewire, waits for its
 * socket, then wireplumber, waits until WirePlumber is a client of the daemon, and creates the null sink
 * {@link TEST_SINK}.
 */
export async function startPipeWire(): Promise<PipeWireStack> {
  requireCommand("dbus-daemon", "dbus-daemon");
  requireCommand("pipewire", "pipewire-bin");
  requireCommand("wireplumber", "wireplumber");
  requireCommand("pw-cli", "pipewire-bin");
  const dirs = makePeerDirs("pipewire");
  mkdirSync(dirs.runtimeDir, { mode: 0o700 });
  const socketPath = join(dirs.runtimeDir, "pipewire-0");
  const busPath = join(dirs.runtimeDir, "bus");
  const env = clientEnv({
    XDG_RUNTIME_DIR: dirs.runtimeDir,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${busPath}`,
    // State and config of WirePlumber stay private to this stack, so parallel stacks don't share restore files.
    XDG_STATE_HOME: join(dirs.base, "state"),
    XDG_CONFIG_HOME: join(dirs.base, "config"),
  });
  const procs: TrackedProcess[] = [];
  const start = (name: string, cmd: string, args: string[]): TrackedProcess => {
    const logFd = openSync(join(dirs.base, `${name}.log`), "a");
    try {
      const p = spawnTracked(name, cmd, args, { env, logFd });
      procs.push(p);
      return p;
    } finally {
      closeSync(logFd);
    }
  };
  const stopAll = async (): Promise<void> => {
    // Reverse order: clients of the bus and the daemon first.
    for (const p of [...procs].reverse()) await p.stop();
  };
  const explain = (name: string) => () => `${name} log:\n${logTail(join(dirs.base, `${name}.log`))}`;
  try {
    const dbus = start("dbus", "dbus-daemon", [
      "--session",
      "--nofork",
      "--nopidfile",
      "--print-address=1",
      `--address=unix:path=${busPath}`,
    ]);
    // dbus-daemon prints its address once it listens (bus/main.c prints after the server is set up).
    await waitFor(
      "dbus-daemon to print its address",
      () => (logTail(join(dirs.base, "dbus.log")).includes(`unix:path=${busPath}`) ? true : undefined),
      {
        timeoutMs: 30_000,
        abort: () => (dbus.running ? undefined : "dbus-daemon exited"),
        explain: explain("dbus"),
      },
    );
    const pw = start("pipewire", "pipewire", []);
    // pw-cli's info is a core.sync answered by the daemon's loop, not merely a socket that exists.
    await waitFor(
      "pipewire to answer pw-cli info 0",
      async () => {
        const r = await run("pw-cli", ["info", "0"], { env, timeoutMs: 60_000 });
        return r.code === 0 && /version/.test(r.stdout.toString()) ? true : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 50,
        abort: () => (pw.running ? undefined : "pipewire exited"),
        explain: explain("pipewire"),
      },
    );
    const wp = start("wireplumber", "wireplumber", []);
    await waitFor(
      "WirePlumber to connect to pipewire",
      async () => {
        const r = await run("pw-cli", ["ls", "Client"], { env, timeoutMs: 60_000 });
        return r.code === 0 && /wireplumber/i.test(r.stdout.toString()) ? true : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 50,
        abort: () => (wp.running ? undefined : "wireplumber exited"),
        explain: explain("wireplumber"),
      },
    );
    await runOk(
      "pw-cli",
      [
        "create-node",
        "adapter",
        `{ factory.name=support.null-audio-sink node.name=${TEST_SINK} node.description=TestSink media.class=Audio/Sink object.linger=true audio.position=[FL FR] }`,
      ],
      { env, timeoutMs: 60_000 },
    );
    await waitFor(
      `the null sink ${TEST_SINK}`,
      async () => {
        const r = await run("pw-cli", ["ls", "Node"], { env, timeoutMs: 60_000 });
        return r.stdout.toString().includes(`"${TEST_SINK}"`) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
  } catch (err) {
    await stopAll();
    dirs.remove();
    throw err instanceof CrosswayError
      ? err
      : new CrosswayError("CW_HARNESS_START", String(err), {}, { cause: err });
  }
  let stopped: Promise<void> | undefined;
  return {
    runtimeDir: dirs.runtimeDir,
    socketPath,
    env: { ...env, PIPEWIRE_REMOTE: socketPath },
    pids: procs.map((p) => p.pid),
    logDir: dirs.base,
    stop(): Promise<void> {
      stopped ??= stopAll().finally(() => dirs.remove());
      return stopped;
    },
  };
}

/** What a fake camera provides. */
export interface TestCameraOptions {
  readonly node: string;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  /** media.role, e.g. Camera. */
  readonly role?: string;
  readonly description: string;
}

/**
 * gst-launch-1.0 arguments of a fake camera (environment.md §4): a live videotestsrc of solid red RGBx frames provided
 * to the daemon as a Video/Source node named `node`.
 */
export function testCameraArgs(o: TestCameraOptions): string[] {
  const role = o.role !== undefined ? `media.role=${o.role},` : "";
  return [
    "-q",
    "videotestsrc",
    "is-live=true",
    "pattern=red",
    "!",
    `video/x-raw,format=RGBx,width=${o.width},height=${o.height},framerate=${o.fps}/1`,
    "!",
    "pipewiresink",
    "mode=provide",
    `client-name=${o.node}`,
    `stream-properties=props,media.class=Video/Source,${role}node.name=${o.node},node.description=${o.description}`,
  ];
}
