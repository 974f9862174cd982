// A real `systemd --user` manager for tests, started by hand on machines whose PID 1 is not systemd.
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { type RunResult, run, spawnTracked, type TrackedProcess, waitFor } from "./processes.ts";
import { SWAY_USER } from "./sway.ts";

/** Where Debian (and every distribution we know) installs the manager binary. */
export const SYSTEMD_BIN = "/usr/lib/systemd/systemd";
const READY_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 60_000;

/** A running user manager: its user's home, runtime dir (%t) and a way to run commands in its session. */
export interface UserManager {
  /** Scratch root under /run (not /tmp: services with PrivateTmp= would not see it). Removed by stop(). */
  readonly base: string;
  readonly home: string;
  /** XDG_RUNTIME_DIR of the manager: what %t expands to. */
  readonly runtimeDir: string;
  /** The manager's pid (it holds the private mount namespace the session's commands run in). */
  readonly pid: number;
  /** Runs CMD as the user, in the manager's mount namespace, with HOME, XDG_RUNTIME_DIR and PATH (plus `env`). */
  user(cmd: string, args: readonly string[], env?: Record<string, string>): Promise<RunResult>;
  /** `systemctl --user ARGS`; throws with its stderr unless it exits 0. */
  systemctl(...args: string[]): Promise<string>;
  /** `systemctl --user show UNIT -p P...` as a map. */
  show(unit: string, props: readonly string[]): Promise<Record<string, string>>;
  /** Stops every unit and the manager (systemctl --user exit), removes its cgroups and files. Idempotent. */
  stop(): Promise<void>;
}

export interface UserManagerOptions {
  /**
   * An existing runtime dir of the user to use as %t (e.g. the compositor's, so that %t/wayland-0 is the session's
   * compositor as on a desktop); by default a fresh one under `base`. Must not be under /tmp (PrivateTmp=).
   */
  runtimeDir?: string;
  /** Called with the manager's home before it starts: install units and environment.d files there. */
  prepare?: (home: string) => void;
}

function ids(user: string): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${user}:`));
  if (line === undefined) throw new Error(`user '${user}' does not exist: run scripts/setup.sh`);
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * The cgroup directories the manager gets delegated (it must own one to start): on a hybrid hierarchy the
 * unified (v2) one and the name=systemd (v1) one; on a pure cgroup2 mount the one directory.
 */
function delegateCgroups(name: string, uid: number, gid: number): string[] {
  const roots = existsSync("/sys/fs/cgroup/cgroup.controllers")
    ? ["/sys/fs/cgroup"]
    : ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"].filter((d) => existsSync(d));
  if (roots.length === 0) throw new Error("no cgroup2 or name=systemd hierarchy under /sys/fs/cgroup");
  return roots.map((root) => {
    const dir = join(root, name);
    mkdirSync(dir);
    chownSync(dir, uid, gid);
    for (const f of readdirSync(dir))
      if (/^(cgroup\.(procs|threads|subtree_control)|tasks)$/.test(f)) {
        chownSync(join(dir, f), uid, gid);
      }
    return dir;
  });
}

/** Kills whatever is left in a cgroup tree (after the manager's own shutdown) and removes it, deepest first. */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroup(join(dir, e.name));
  const procs = existsSync(join(dir, "cgroup.procs")) ? readFileSync(join(dir, "cgroup.procs"), "utf8") : "";
  for (const p of procs.split("\n").filter(Boolean)) {
    try {
      process.kill(Number(p), "SIGKILL");
    } catch {
      // already gone
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    // a killed process may take a moment to leave; the directory is empty of files and harmless
  }
}

/**
 * Starts `systemd --user` for the test user (wltest) as pam_systemd would have it: a delegated cgroup, a private
 * runtime dir, its own mount namespace in which /run/systemd/system exists (the manager refuses to start
 * otherwise: "the system has not been booted with systemd") and /run/systemd/unit-root, which a real PID 1 leaves
 * for namespaced services. Resolves once `systemctl --user is-system-running` answers running (or degraded).
 * Needs root. The unit search path is the user's ~/.config/systemd/user then the distribution's defaults, without
 * /etc/systemd/user, so units the machine enabled for everyone (pipewire.socket, ...) stay out of the session.
 */
export async function startUserManager(opts: UserManagerOptions = {}): Promise<UserManager> {
  const { uid, gid } = ids(SWAY_USER);
  const base = mkdtempSync("/run/crossway-sdu-");
  chmodSync(base, 0o755);
  const home = join(base, "home");
  const runtimeDir = opts.runtimeDir ?? join(base, "xdg");
  mkdirSync(home);
  if (opts.runtimeDir === undefined) mkdirSync(runtimeDir, { mode: 0o700 });
  opts.prepare?.(home);
  const chownTree = (p: string): void => {
    chownSync(p, uid, gid);
    for (const e of readdirSync(p, { withFileTypes: true })) {
      if (e.isDirectory()) chownTree(join(p, e.name));
      else chownSync(join(p, e.name), uid, gid);
    }
  };
  chownTree(home);
  chownSync(runtimeDir, uid, gid);
  const cgroups = delegateCgroups(basename(base), uid, gid);
  const env = [
    `HOME=${home}`,
    `XDG_RUNTIME_DIR=${runtimeDir}`,
    "PATH=/usr/local/bin:/usr/bin:/bin",
    `SYSTEMD_UNIT_PATH=${join(home, ".config/systemd/user")}:/usr/lib/systemd/user`,
  ];
  const script = join(base, "start.sh");
  writeFileSync(
    script,
    [
      "set -e",
      ...cgroups.map((c) => `echo $$ > '${c}/cgroup.procs'`),
      // /run a mount point of its own, as on any systemd machine (here it is a directory of the root file system):
      // otherwise a unit with ProtectControlGroups= or ProtectProc= gets an empty tmpfs on /run from systemd 252.
      "mount --rbind /run /run",
      "mount -t tmpfs -o mode=0755 tmpfs /run/systemd",
      "mkdir -m 0755 /run/systemd/system && mkdir -m 0700 /run/systemd/unit-root",
      `exec setpriv --reuid=${uid} --regid=${gid} --init-groups env -i ${env.map((e) => `'${e}'`).join(" ")} ${SYSTEMD_BIN} --user`,
    ].join("\n"),
  );
  const proc: TrackedProcess = spawnTracked(
    "systemd --user",
    "unshare",
    ["-m", "--propagation", "private", "sh", script],
    {
      pipeStdout: true,
    },
  );
  proc.child.stdout?.resume();

  const user = (
    cmd: string,
    args: readonly string[],
    extra: Record<string, string> = {},
  ): Promise<RunResult> =>
    run(
      "nsenter",
      [
        "-t",
        String(proc.pid),
        "-m",
        "setpriv",
        `--reuid=${uid}`,
        `--regid=${gid}`,
        "--init-groups",
        "env",
        "-i",
        ...env.slice(0, 3),
        ...Object.entries(extra).map(([k, v]) => `${k}=${v}`),
        cmd,
        ...args,
      ],
      { timeoutMs: STEP_TIMEOUT_MS },
    );
  const systemctl = async (...args: string[]): Promise<string> => {
    const r = await user("systemctl", ["--user", "--no-pager", ...args]);
    if (r.code !== 0) {
      // The manager's own account of a failed unit (there is no journal to read): `systemctl status` of the units.
      const units = args.filter((a) => /\.(service|socket)$/.test(a));
      const why =
        units.length > 0
          ? (await user("systemctl", ["--user", "--no-pager", "status", ...units])).stdout
          : "";
      throw new Error(
        `systemctl --user ${args.join(" ")}: exit ${r.code}: ${r.stderr.toString()}${why.toString()}`,
      );
    }
    return r.stdout.toString();
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (proc.running) await user("systemctl", ["--user", "exit"]);
    await waitFor("systemd --user to exit", () => (proc.running ? undefined : true), {
      timeoutMs: STEP_TIMEOUT_MS,
      intervalMs: 100,
    }).catch(() => undefined); // proc.stop() below kills it if it did not exit
    await proc.stop();
    for (const c of cgroups) removeCgroup(c);
    if (process.env.CROSSWAY_KEEP_PEER_DIRS !== "1") rmSync(base, { recursive: true, force: true });
  };
  try {
    await waitFor(
      "systemctl --user is-system-running",
      async () => {
        const r = await user("systemctl", ["--user", "is-system-running"]);
        const state = r.stdout.toString().trim();
        return state === "running" || state === "degraded" ? state : undefined;
      },
      {
        timeoutMs: READY_TIMEOUT_MS,
        intervalMs: 200,
        abort: () => (proc.running ? undefined : "systemd --user exited"),
      },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    base,
    home,
    runtimeDir,
    pid: proc.pid,
    user,
    systemctl,
    show: async (unit, props) => {
      const out = await systemctl("show", unit, ...props.flatMap((p) => ["-p", p]));
      const map: Record<string, string> = {};
      for (const line of out.split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) map[line.slice(0, eq)] = line.slice(eq + 1);
      }
      return map;
    },
    stop,
  };
}
