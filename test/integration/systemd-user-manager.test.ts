// The contrib/systemd units under a real `systemd --user` manager: socket activation by systemd itself, the
// hardening as applied to the running process, ExecReload, environment.d; both guest sockets and both host filters.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "../../src/control/status-report.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayCommand, startCrosswayCommand } from "../helpers/crossway-command.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire } from "../helpers/pipewire.ts";
import { countColor, readPng } from "../helpers/png.ts";
import { requireCommand, run, waitFor } from "../helpers/processes.ts";
import { stableShot } from "../helpers/stable-shot.ts";
import { startSway } from "../helpers/sway.ts";
import { SYSTEMD_BIN, startUserManager, type UserManager } from "../helpers/systemd-user.ts";
import { CHECKOUT_BIN as BIN, INSTALLED_BIN, UNITS_DIR as UNITS } from "../helpers/unit-files.ts";

useFdLeakCheck();

/** A step is a systemctl call, a client run or a reload; tsx start-up dominates on a loaded machine. */
const STEP_TIMEOUT_MS = 60_000;
const WIDTH = 320;
const HEIGHT = 240;
const FOOT_RGB: [number, number, number] = [0x30, 0xa0, 0x50];

// The manager binary is all this needs from systemd; say loudly when a machine has none rather than pass quietly.
const HAVE_SYSTEMD = existsSync(SYSTEMD_BIN);
if (!HAVE_SYSTEMD) {
  console.warn(
    `SKIPPED: ${SYSTEMD_BIN} is absent (install Debian's systemd): the units were not run under systemd`,
  );
}

/**
 * A drop-in the way `systemctl --user edit` writes one: the unit file itself stays as shipped; ExecStart's program
 * becomes this checkout's launcher (`npm install -g` is not run here), `device` replaces its `--device` value,
 * and stdout/stderr go to a file (this machine has no journald).
 */
function dropIn(unitText: string, logPath: string, device?: string, env: string[] = []): string {
  const exec = /^ExecStart=(.*)$/m.exec(unitText)?.[1];
  if (exec === undefined) throw new Error("no ExecStart= in the unit");
  expect(exec.startsWith(`${INSTALLED_BIN} `)).toBe(true);
  let cmd = exec.replace(INSTALLED_BIN, `${process.execPath} ${BIN}`);
  if (device !== undefined) cmd = cmd.replace("--device virtgpu", `--device ${device}`);
  return [
    "[Service]",
    "ExecStart=",
    `ExecStart=${cmd}`,
    // Quoted: Environment= splits unquoted assignments at spaces.
    ...env.map((e) => `Environment="${e}"`),
    `StandardOutput=append:${logPath}`,
    `StandardError=append:${logPath}`,
    "",
  ].join("\n");
}

/** The mount points and options of a process's mount namespace. */
function mounts(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n")) {
    const f = line.split(" ");
    if (f.length > 5) m.set(f[4] as string, f[5] as string);
  }
  return m;
}

/** What the kernel says a service's main process runs with: the hardening actually applied, not the unit's text. */
function applied(pid: number): {
  noNewPrivs: string;
  seccomp: string;
  uidMap: string;
  mounts: Map<string, string>;
} {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    noNewPrivs: /^NoNewPrivs:\s*(\d+)/m.exec(status)?.[1] ?? "?",
    seccomp: /^Seccomp:\s*(\d+)/m.exec(status)?.[1] ?? "?",
    uidMap: readFileSync(`/proc/${pid}/uid_map`, "utf8").trim().split(/\s+/).join(" "),
    mounts: mounts(pid),
  };
}

async function mainPid(mgr: UserManager, unit: string): Promise<number> {
  const pid = Number((await mgr.show(unit, ["MainPID"])).MainPID);
  expect(pid, `${unit} has no main process`).toBeGreaterThan(0);
  return pid;
}

/** A file's text, or "" before it exists (a unit's output file appears when the unit starts). */
function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

/** Waits for the line a service prints once it listens, has reloaded or refused a reload (its output file). */
async function logSays(who: string, log: () => string, text: string): Promise<void> {
  await waitFor(`'${text}' from ${who}`, () => (log().includes(text) ? true : undefined), {
    timeoutMs: STEP_TIMEOUT_MS,
    explain: log,
  });
}

/** One `crossway doctor --json` finding. */
interface Finding {
  check: string;
  status: "ok" | "warn" | "fail";
  detail: string;
}

/** `crossway doctor ARGS --json` run in the session as its user (as docs/install.md has the user run it). */
async function doctor(mgr: UserManager, args: string[]): Promise<{ code: number | null; found: Finding[] }> {
  const r = await mgr.user(process.execPath, [BIN, "doctor", ...args, "--json"]);
  const out = r.stdout.toString();
  expect(out.startsWith("["), `${out}\n${r.stderr.toString()}`).toBe(true);
  return { code: r.code, found: JSON.parse(out) as Finding[] };
}

/** The interface names a wayland-info run printed. */
function interfaces(out: string): string[] {
  return [...out.matchAll(/interface: '([^']+)'/g)].map((m) => m[1] as string);
}

describe.skipIf(!HAVE_SYSTEMD)("guest units under a real systemd --user (sway, emulated device)", () => {
  let sway: Compositor;
  let mgr: UserManager;
  let device: CrosswayCommand | undefined;
  let hostPw: PipeWireStack;
  let devDir: string;
  const guestLog = (): string => join(mgr.home, "guest.log");
  const readGuestLog = (): string => readText(guestLog());
  const config = (): string => join(mgr.base, "guest.json");

  beforeAll(async () => {
    requireCommand("systemctl", "systemd");
    requireCommand("nsenter", "util-linux");
    requireCommand("foot", "foot");
    sway = await startSway({ width: WIDTH, height: HEIGHT });
    mgr = await startUserManager({
      prepare: (home) => {
        // As docs/install.md §3 installs them (into the user's directories instead of /etc: nothing machine-wide).
        const unitDir = join(home, ".config/systemd/user");
        mkdirSync(join(unitDir, "crossway-guest.service.d"), { recursive: true });
        for (const f of readdirSync(join(UNITS, "guest"))) {
          if (/\.(socket|service)$/.test(f)) copyFileSync(join(UNITS, "guest", f), join(unitDir, f));
        }
        mkdirSync(join(home, ".config/environment.d"), { recursive: true });
        copyFileSync(
          join(UNITS, "guest/60-crossway.conf"),
          join(home, ".config/environment.d/60-crossway.conf"),
        );
      },
    });
    // The emulated VMM side, outside /tmp (the service's /tmp is private) and reachable by the session's user.
    devDir = join(mgr.base, "dev");
    mkdirSync(devDir, { mode: 0o755 });
    const devSock = join(devDir, "dev.sock");
    // The host's PipeWire behind the device's PipeWire channel (libkrun's flavour: the guest's default).
    hostPw = await startPipeWire();
    device = await startCrosswayCommand(
      [
        "device",
        "--listen",
        devSock,
        "--wayland",
        sway.socketPath,
        "--pipewire",
        hostPw.socketPath,
        "--flavor",
        "libkrun",
      ],
      join(devDir, "device.log"),
    );
    chmodSync(devSock, 0o666);
    writeFileSync(config(), "{}\n");
    chmodSync(config(), 0o644);
    const unit = readFileSync(join(UNITS, "guest/crossway-guest.service"), "utf8");
    writeFileSync(
      join(mgr.home, ".config/systemd/user/crossway-guest.service.d/50-test.conf"),
      dropIn(unit, guestLog(), `emulated:${devSock}`, [`CROSSWAY_GUEST_ARGS=--config ${config()}`]),
    );
    await mgr.systemctl("daemon-reload");
    // Both sockets before any client: the first activation hands the service both fds.
    await mgr.systemctl("enable", "--now", "crossway-wayland.socket", "crossway-pipewire.socket");
  }, 180_000);

  afterAll(async () => {
    await mgr?.stop();
    await device?.stop();
    await hostPw?.stop();
    await sway?.stop();
  });

  it("crossway doctor --guest in the session, through the device the service uses", async () => {
    const { code, found } = await doctor(mgr, [
      "--guest",
      "--device",
      `emulated:${join(devDir, "dev.sock")}`,
      "--pipewire-guest",
    ]);
    expect(code, JSON.stringify(found)).toBe(0);
    expect(found.find((f) => f.check === "PipeWire round trip")?.status).toBe("ok");
    expect(found.find((f) => f.check === "Wayland round trip")?.status).toBe("ok");
    expect(found.filter((f) => f.status === "fail")).toEqual([]);
  });

  it("environment.d gives the session WAYLAND_DISPLAY; the first client socket-activates crossway-guest.service", async () => {
    const env = await mgr.systemctl("show-environment");
    expect(env).toMatch(/^WAYLAND_DISPLAY=wayland-0$/m);
    expect(env).toMatch(/^XDG_SESSION_TYPE=wayland$/m);
    expect(env).toMatch(/^PIPEWIRE_REMOTE=pipewire-0$/m);
    expect(
      (await mgr.user("systemctl", ["--user", "is-active", "crossway-guest.service"])).stdout.toString(),
    ).toBe("inactive\n");
    expect((await mgr.systemctl("is-active", "crossway-wayland.socket")).trim()).toBe("active");
    // An app the manager starts: no WAYLAND_DISPLAY of its own, it finds %t/wayland-0 through environment.d.
    const info = await mgr.user("systemd-run", ["--user", "--wait", "--pipe", "--quiet", "wayland-info"]);
    expect(info.code, `${info.stderr.toString()}\n${readGuestLog()}`).toBe(0);
    expect(interfaces(info.stdout.toString())).toContain("wl_compositor");
    expect(interfaces(info.stdout.toString())).toContain("wp_viewporter");
    expect((await mgr.systemctl("is-active", "crossway-guest.service")).trim()).toBe("active");
    expect(readGuestLog()).toMatch(/listening on inherited sockets \(.*fd \d 'wayland'/);
  });

  it("crossway-pipewire.socket: a PipeWire client the manager starts reaches the host's daemon through the service", async () => {
    expect(readGuestLog()).toContain("PipeWire listening on inherited sockets");
    // PIPEWIRE_REMOTE=pipewire-0 comes from environment.d; the answer is the host daemon's own core info.
    const guest = await mgr.user("systemd-run", [
      "--user",
      "--wait",
      "--pipe",
      "--quiet",
      "pw-cli",
      "info",
      "0",
    ]);
    expect(guest.code, `${guest.stderr.toString()}\n${readGuestLog()}`).toBe(0);
    const host = await run("pw-cli", ["info", "0"], { env: hostPw.env, timeoutMs: STEP_TIMEOUT_MS });
    const version = (out: string): string | undefined => /version: "([^"]+)"/.exec(out)?.[1];
    expect(version(guest.stdout.toString())).toBeDefined();
    expect(version(guest.stdout.toString())).toBe(version(host.stdout.toString()));
  });

  it("the hardening is in effect on the running service, not just written in the unit", async () => {
    const props = await mgr.show("crossway-guest.service", [
      "NoNewPrivileges",
      "PrivateUsers",
      "PrivateTmp",
      "ProtectSystem",
      "ProtectHome",
      "RestrictAddressFamilies",
      "RestrictNamespaces",
      "SystemCallFilter",
      "UMask",
    ]);
    expect(props).toMatchObject({
      NoNewPrivileges: "yes",
      PrivateUsers: "yes",
      PrivateTmp: "yes",
      ProtectSystem: "strict",
      ProtectHome: "read-only",
      RestrictAddressFamilies: "AF_UNIX",
      RestrictNamespaces: "yes",
      UMask: "0077",
    });
    expect(props.SystemCallFilter?.length ?? 0).toBeGreaterThan(100);
    const pid = await mainPid(mgr, "crossway-guest.service");
    const a = applied(pid);
    const own = mounts(mgr.pid);
    expect(a.noNewPrivs).toBe("1");
    expect(a.seccomp).toBe("2"); // filter mode: SystemCallFilter= and RestrictAddressFamilies= loaded
    // A user manager can build mount namespaces only inside a user namespace (PrivateUsers=): without it systemd
    // 252 skips PrivateTmp=/ProtectSystem= with EPERM, silently; this is what the unit's PrivateUsers=yes is for.
    expect(a.uidMap).not.toBe("0 0 4294967295");
    expect(a.mounts.has("/tmp"), "PrivateTmp: a /tmp mount of its own").toBe(true);
    expect(own.has("/tmp")).toBe(false);
    expect(a.mounts.get("/")?.split(",")).toContain("ro"); // ProtectSystem=strict
    expect(a.mounts.get(join(mgr.runtimeDir, "crossway"))?.split(",")).toContain("rw"); // ReadWritePaths=%t/crossway
  });

  it("foot started by the manager is drawn through the activated service; status lists it by app_id", async () => {
    const ini = join(mgr.base, "foot.ini");
    writeFileSync(ini, "[colors]\nbackground=30a050\n[main]\nfont=DejaVu Sans Mono:size=10\n");
    chmodSync(ini, 0o644);
    const r = await mgr.user("systemd-run", [
      "--user",
      "--unit=cw-foot",
      "--quiet",
      "foot",
      "-c",
      ini,
      "sleep",
      "600",
    ]);
    expect(r.code, r.stderr.toString()).toBe(0);
    try {
      // foot's background fills more than half of sway's output, in two equal shots in a row.
      const shot = join(mgr.base, "shot.png");
      await stableShot(sway, shot, FOOT_RGB, { timeoutMs: STEP_TIMEOUT_MS });
      expect(countColor(readPng(shot), FOOT_RGB).count).toBeGreaterThan((WIDTH * HEIGHT) / 2);
      // The control socket ExecStart names, in the RuntimeDirectory= systemd made for the service.
      const st = await run(
        process.execPath,
        [BIN, "status", "--json", "--control", join(mgr.runtimeDir, "crossway/guest.ctl")],
        { timeoutMs: STEP_TIMEOUT_MS },
      );
      expect(st.code, st.stderr.toString()).toBe(0);
      const report = JSON.parse(st.stdout.toString()) as StatusReport;
      expect(report.command).toBe("guest");
      expect(report.connections.map((c) => c.appId)).toContain("foot");
    } finally {
      await mgr.user("systemctl", ["--user", "stop", "cw-foot.service"]);
    }
  });

  it("systemctl --user reload (ExecReload: SIGHUP) changes the config for new clients; a bad file is refused", async () => {
    const pid = await mainPid(mgr, "crossway-guest.service");
    writeFileSync(config(), JSON.stringify({ globals: { wp_viewporter: false } }));
    await mgr.systemctl("reload", "crossway-guest.service");
    await logSays("crossway-guest.service", readGuestLog, "(generation 2)");
    const info = await mgr.user("systemd-run", ["--user", "--wait", "--pipe", "--quiet", "wayland-info"]);
    expect(info.code, info.stderr.toString()).toBe(0);
    expect(interfaces(info.stdout.toString())).toContain("wl_compositor");
    expect(interfaces(info.stdout.toString())).not.toContain("wp_viewporter");
    expect(await mainPid(mgr, "crossway-guest.service")).toBe(pid); // reloaded, not restarted

    writeFileSync(config(), "{ not json");
    await mgr.systemctl("reload", "crossway-guest.service");
    await logSays("crossway-guest.service", readGuestLog, "reload refused");
    expect(readGuestLog()).toMatch(/reload refused, keeping generation 2: .*guest\.json/);
    expect((await mgr.systemctl("is-active", "crossway-guest.service")).trim()).toBe("active");
  });

  it("Restart=on-failure: a killed service is started again and serves the next client", async () => {
    writeFileSync(config(), "{}\n"); // the refusal test left a bad file, which would fail the new start
    const pid = await mainPid(mgr, "crossway-guest.service");
    process.kill(pid, "SIGKILL");
    const again = await waitFor(
      "crossway-guest.service's new main process",
      async () => {
        const p = Number((await mgr.show("crossway-guest.service", ["MainPID"])).MainPID);
        return p > 0 && p !== pid ? p : undefined;
      },
      { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 200, explain: readGuestLog },
    );
    expect(again).not.toBe(pid);
    const info = await mgr.user("systemd-run", ["--user", "--wait", "--pipe", "--quiet", "wayland-info"]);
    expect(info.code, `${info.stderr.toString()}\n${readGuestLog()}`).toBe(0);
    expect(interfaces(info.stdout.toString())).toContain("wl_compositor");
    expect((await mgr.show("crossway-guest.service", ["NRestarts"])).NRestarts).toBe("1");
  });
});

/** Runs `start` with TMPDIR=/run, so the peer's runtime dir is outside /tmp (a unit's /tmp is private). */
async function underRun<T>(start: () => Promise<T>): Promise<T> {
  const tmp = process.env.TMPDIR;
  process.env.TMPDIR = "/run";
  try {
    return await start();
  } finally {
    if (tmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmp;
  }
}

/** One host filter unit of the test: its template, policy file and first policy, and where its output goes. */
interface HostFilter {
  template: string;
  policyFile: string;
  firstPolicy: object;
  unit: string;
  log: () => string;
}

describe.skipIf(!HAVE_SYSTEMD)("host filter units under a real systemd --user (sway, PipeWire)", () => {
  let sway: Compositor;
  let pw: PipeWireStack;
  let mgr: UserManager;
  const instance = `cwtest${process.pid}`;
  const policyDir = join("/etc/crossway", instance);
  const filters: Record<"wayland" | "pipewire", HostFilter> = {
    wayland: {
      template: "crossway-wayland-filter@.service",
      policyFile: join(policyDir, "wayland.json"),
      firstPolicy: {},
      unit: `crossway-wayland-filter@${instance}.service`,
      log: () => readText(join(mgr.home, "wayland-filter.log")),
    },
    pipewire: {
      template: "crossway-pipewire-filter@.service",
      policyFile: join(policyDir, "pipewire.json"),
      firstPolicy: { profile: "audio-playback" },
      unit: `crossway-pipewire-filter@${instance}.service`,
      log: () => readText(join(mgr.home, "pipewire-filter.log")),
    },
  };

  beforeAll(async () => {
    requireCommand("systemctl", "systemd");
    requireCommand("pw-dump", "pipewire-bin");
    // sway's runtime dir becomes the session's %t, so %t/wayland-0 is the session's compositor as on a desktop.
    sway = await underRun(() => startSway({ width: WIDTH, height: HEIGHT }));
    if (sway.displayName !== "wayland-0") symlinkSync(sway.displayName, join(sway.runtimeDir, "wayland-0"));
    // The session's PipeWire at %t/pipewire-0: the test's daemon runs as root, so its directory is made traversable
    // and its socket connectable for the session's user.
    pw = await underRun(() => startPipeWire());
    chmodSync(pw.runtimeDir, 0o711);
    chmodSync(pw.socketPath, 0o666);
    symlinkSync(pw.socketPath, join(sway.runtimeDir, "pipewire-0"));
    // The units assert their policy at /etc/crossway/%i (docs/install.md §2.4): a per-run instance name.
    mkdirSync(policyDir, { recursive: true });
    for (const f of Object.values(filters)) writeFileSync(f.policyFile, JSON.stringify(f.firstPolicy));
    mgr = await startUserManager({
      runtimeDir: sway.runtimeDir,
      prepare: (home) => {
        const unitDir = join(home, ".config/systemd/user");
        for (const [kind, f] of Object.entries(filters)) {
          mkdirSync(join(unitDir, `${f.template}.d`), { recursive: true });
          copyFileSync(join(UNITS, "host", f.template), join(unitDir, f.template));
          const text = readFileSync(join(UNITS, "host", f.template), "utf8");
          writeFileSync(
            join(unitDir, `${f.template}.d/50-test.conf`),
            dropIn(text, join(home, `${kind}-filter.log`)),
          );
        }
      },
    });
    for (const f of Object.values(filters)) {
      await mgr.systemctl("start", f.unit);
      await logSays(f.unit, f.log, "listening on");
    }
  }, 240_000);

  afterAll(async () => {
    await mgr?.stop();
    await pw?.stop();
    await sway?.stop();
    rmSync(policyDir, { recursive: true, force: true });
    try {
      rmdirSync("/etc/crossway"); // only when no other policy is left in it
    } catch {
      // not empty: someone else's policies stay
    }
  });

  const infoThroughFilter = async (): Promise<string[]> => {
    const r = await mgr.user("wayland-info", [], {
      WAYLAND_DISPLAY: join(mgr.runtimeDir, "crossway", instance, "wayland-0"),
    });
    const why = `${r.stdout.toString().slice(0, 500)}\n${r.stderr.toString()}\n${filters.wayland.log()}`;
    expect(r.code, why).toBe(0);
    // wayland-info exits 0 with nothing printed when the server closes the connection: look for a global.
    expect(r.stdout.toString(), why).toMatch(/interface: 'wl_compositor'/);
    return interfaces(r.stdout.toString());
  };

  /** The media classes pw-dump sees through the PipeWire filter (audio-playback shows sinks, camera does not). */
  const classesThroughFilter = async (): Promise<string[]> => {
    const r = await mgr.user("pw-dump", [], {
      PIPEWIRE_REMOTE: join(mgr.runtimeDir, "crossway", instance, "pipewire-0"),
    });
    expect(r.code, `${r.stderr.toString()}\n${filters.pipewire.log()}`).toBe(0);
    const objs = JSON.parse(r.stdout.toString()) as Array<{ info?: { props?: Record<string, unknown> } }>;
    return objs.map((o) => String(o.info?.props?.["media.class"] ?? "")).filter((c) => c !== "");
  };

  it("both start from their units, hardened as written, and forward real clients", async () => {
    expect(await infoThroughFilter()).toContain("wp_viewporter");
    expect(await classesThroughFilter()).toContain("Audio/Sink");
    for (const f of Object.values(filters)) {
      const props = await mgr.show(f.unit, [
        "NoNewPrivileges",
        "PrivateUsers",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectSystem",
        "CapabilityBoundingSet",
        "RestrictAddressFamilies",
      ]);
      expect(props, f.unit).toMatchObject({
        NoNewPrivileges: "yes",
        PrivateUsers: "yes",
        PrivateTmp: "yes",
        PrivateDevices: "yes",
        ProtectSystem: "strict",
        CapabilityBoundingSet: "",
        RestrictAddressFamilies: "AF_UNIX",
      });
      const a = applied(await mainPid(mgr, f.unit));
      expect(a.noNewPrivs, f.unit).toBe("1");
      expect(a.seccomp, f.unit).toBe("2");
      expect(a.uidMap, f.unit).not.toBe("0 0 4294967295");
      expect(a.mounts.has("/tmp"), f.unit).toBe(true);
      expect(a.mounts.has("/dev"), `${f.unit}: PrivateDevices, a /dev of its own`).toBe(true);
      expect(a.mounts.get("/")?.split(","), f.unit).toContain("ro");
      expect(a.mounts.get(join(mgr.runtimeDir, "crossway", instance))?.split(","), f.unit).toContain("rw");
    }
  });

  it("crossway doctor --host in the session: compositor, PipeWire, the VM's policy, both filters answering", async () => {
    const { code, found } = await doctor(mgr, ["--host"]);
    expect(code, JSON.stringify(found)).toBe(0);
    expect(found.find((f) => f.check === "compositor")?.status).toBe("ok");
    expect(found.find((f) => f.check === "PipeWire")?.status).toBe("ok");
    const mine = found.filter((f) => f.check.includes(instance));
    expect(mine.map((f) => f.check).sort(), JSON.stringify(found)).toEqual([
      `filter crossway-pipewire-filter@${instance}`,
      `filter crossway-wayland-filter@${instance}`,
      `policy ${instance}`, // pipewire.json
      `policy ${instance}`, // wayland.json
    ]);
    expect(
      mine.filter((f) => f.status !== "ok"),
      JSON.stringify(mine),
    ).toEqual([]);
  });

  it("systemctl --user reload: new connections get the new policy, the processes stay", async () => {
    const pids = await Promise.all(Object.values(filters).map((f) => mainPid(mgr, f.unit)));
    writeFileSync(filters.wayland.policyFile, JSON.stringify({ globals: { wp_viewporter: false } }));
    writeFileSync(filters.pipewire.policyFile, JSON.stringify({ profile: "camera" }));
    for (const f of Object.values(filters)) {
      await mgr.systemctl("reload", f.unit);
      await logSays(f.unit, f.log, "(generation 2)");
    }
    const names = await infoThroughFilter();
    expect(names).toContain("wl_compositor");
    expect(names).not.toContain("wp_viewporter");
    expect(await classesThroughFilter()).not.toContain("Audio/Sink");
    expect(await Promise.all(Object.values(filters).map((f) => mainPid(mgr, f.unit)))).toEqual(pids);
  });
});
