// The units in contrib/systemd: `systemd-analyze verify` accepts them, and the guest service runs the way systemd
// starts it (systemd-socket-activate with the socket unit's path and fd name, the service's ExecStart) with a real
// client drawn through it.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "../../src/control/status-report.ts";
import { makePeerDirs, type PeerDirs } from "../../src/harness/compositor.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayCommand, startCrosswayCommand } from "../helpers/crossway-command.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { countColor, readPng } from "../helpers/png.ts";
import { requireCommand, run, spawnTracked, type TrackedProcess, waitFor } from "../helpers/processes.ts";
import { startSway } from "../helpers/sway.ts";
import { CHECKOUT_BIN as BIN, INSTALLED_BIN, UNITS_DIR as UNITS } from "../helpers/unit-files.ts";

useFdLeakCheck();

const STEP_TIMEOUT_MS = 30_000;
const WIDTH = 320;
const HEIGHT = 240;
const FOOT_BG = "30a050";
const FOOT_RGB: [number, number, number] = [0x30, 0xa0, 0x50];

/** `Key=value` lines of one section of a unit file, in order (repeated keys kept). */
function unitKeys(text: string, section: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let cur = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("[")) cur = line;
    else if (cur === `[${section}]` && line !== "" && !line.startsWith("#")) {
      const eq = line.indexOf("=");
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
    }
  }
  return out;
}

function key(text: string, section: string, name: string): string {
  const v = unitKeys(text, section).find(([k]) => k === name)?.[1];
  if (v === undefined) throw new Error(`no ${name}= in [${section}]`);
  return v;
}

/** Every unit file, as [directory, file name]. */
function unitFiles(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const dir of ["guest", "host"]) {
    for (const f of readdirSync(join(UNITS, dir))) if (/\.(service|socket)$/.test(f)) out.push([dir, f]);
  }
  return out;
}

describe("contrib/systemd units", () => {
  let dirs: PeerDirs;

  beforeAll(() => {
    requireCommand("systemd-analyze", "systemd");
    dirs = makePeerDirs("units");
    mkdirSync(dirs.runtimeDir, { mode: 0o700, recursive: true });
  });

  afterAll(() => dirs?.remove());

  /**
   * Copies the units for `systemd-analyze --user verify`: templates get an instance name, and the binary path
   * becomes this checkout's launcher, because verify requires ExecStart's program to exist (nothing else changes).
   */
  function stage(name: string, mutate: (text: string) => string = (t) => t): string[] {
    const dir = join(dirs.base, name);
    mkdirSync(dir, { recursive: true });
    const paths: string[] = [];
    for (const [sub, f] of unitFiles()) {
      const text = readFileSync(join(UNITS, sub, f), "utf8");
      const out = join(dir, f.replace("@.", "@vm1."));
      writeFileSync(out, mutate(text.replaceAll(INSTALLED_BIN, BIN)));
      paths.push(out);
    }
    return paths;
  }

  async function verify(paths: string[]): Promise<{ code: number | null; stderr: string }> {
    const r = await run("systemd-analyze", ["--user", "verify", "--man=no", ...paths], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dirs.base, XDG_RUNTIME_DIR: dirs.runtimeDir },
      timeoutMs: STEP_TIMEOUT_MS,
    });
    return { code: r.code, stderr: r.stderr.toString() };
  }

  it("systemd-analyze --user verify passes on every unit", async () => {
    const paths = stage("ok");
    expect(paths.map((p) => p.split("/").pop()).sort()).toEqual([
      "crossway-guest.service",
      "crossway-pipewire-filter@vm1.service",
      "crossway-pipewire.socket",
      "crossway-wayland-filter@vm1.service",
      "crossway-wayland.socket",
    ]);
    const r = await verify(paths);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  // systemd only warns about an unknown key (exit 0), so the passing test above requires an empty stderr.
  it("verify is a real check: a misspelt hardening key is reported", async () => {
    const r = await verify(stage("typo", (t) => t.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")));
    expect(r.stderr).toMatch(/Unknown key( name)? 'NoNewPrivilege'/);
  });

  it("the host filters are hardened as the issue asks", () => {
    for (const f of ["crossway-wayland-filter@.service", "crossway-pipewire-filter@.service"]) {
      const keys = unitKeys(readFileSync(join(UNITS, "host", f), "utf8"), "Service");
      const has = (k: string, v: string): boolean => keys.some(([a, b]) => a === k && b === v);
      expect(has("NoNewPrivileges", "yes"), f).toBe(true);
      expect(has("ProtectSystem", "strict"), f).toBe(true);
      expect(has("RestrictAddressFamilies", "AF_UNIX"), f).toBe(true);
      expect(has("PrivateTmp", "yes"), f).toBe(true);
      expect(has("SystemCallFilter", "@system-service"), f).toBe(true);
      expect(has("CapabilityBoundingSet", ""), f).toBe(true);
    }
  });
});

describe("crossway-guest.service under socket activation (sway, foot)", () => {
  let sway: Compositor;
  let dirs: PeerDirs;
  let device: CrosswayCommand | undefined;
  const devSock = (): string => join(dirs.base, "dev.sock");

  beforeAll(async () => {
    requireCommand("systemd-socket-activate", "systemd");
    requireCommand("foot", "foot");
    requireCommand("grim", "grim");
    sway = await startSway({ width: WIDTH, height: HEIGHT });
    dirs = makePeerDirs("sockact");
    mkdirSync(dirs.runtimeDir, { mode: 0o700, recursive: true });
    device = await startCrosswayCommand(
      ["device", "--listen", devSock(), "--wayland", sway.socketPath],
      join(dirs.base, "device.log"),
    );
  });

  afterAll(async () => {
    await device?.stop();
    await sway?.stop();
    dirs?.remove();
  });

  it("systemd-socket-activate with the units' socket path, fd name and ExecStart: wayland-info, foot on screen, status", async () => {
    const socketUnit = readFileSync(join(UNITS, "guest/crossway-wayland.socket"), "utf8");
    const serviceUnit = readFileSync(join(UNITS, "guest/crossway-guest.service"), "utf8");
    const t = dirs.runtimeDir; // %t of a user unit: $XDG_RUNTIME_DIR
    const listen = key(socketUnit, "Socket", "ListenStream").replaceAll("%t", t);
    const fdName = key(socketUnit, "Socket", "FileDescriptorName");
    expect(key(socketUnit, "Socket", "Service")).toBe("crossway-guest.service");
    // ExecStart as systemd expands it: %t, the empty $CROSSWAY_GUEST_ARGS; the program is this checkout's launcher.
    // The one change: there is no virtio-gpu here, so the device is `crossway device` (the emulated VMM side).
    const exec = key(serviceUnit, "Service", "ExecStart").replaceAll("%t", t).split(/\s+/);
    expect(exec[0]).toBe(INSTALLED_BIN);
    const argv = exec
      .slice(1)
      .filter((a) => a !== "$CROSSWAY_GUEST_ARGS")
      .map((a) => (a === "virtgpu" ? `emulated:${devSock()}` : a));
    expect(argv).toContain(`emulated:${devSock()}`);
    const control = argv[argv.indexOf("--control") + 1] as string;
    mkdirSync(join(t, key(serviceUnit, "Service", "RuntimeDirectory")), { mode: 0o700 }); // RuntimeDirectory=

    const logPath = join(dirs.base, "activate.log");
    const logFd = openSync(logPath, "a");
    let act: TrackedProcess;
    try {
      act = spawnTracked(
        "systemd-socket-activate",
        "systemd-socket-activate",
        [
          "-l",
          listen,
          `--fdname=${fdName}`,
          "-E",
          `XDG_RUNTIME_DIR=${t}`,
          "-E",
          `PATH=${process.env.PATH ?? "/usr/bin:/bin"}`,
          "-E",
          "CROSSWAY_LOG=info",
          process.execPath,
          BIN,
          ...argv,
        ],
        { pipeStdout: true, logFd },
      );
    } finally {
      closeSync(logFd);
    }
    let out = "";
    act.child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const log = (): string => readFileSync(logPath, "utf8");
    try {
      // systemd-socket-activate prints this once its socket listens; the service starts on the first connection.
      await waitFor(
        "systemd-socket-activate listening",
        () => (log().includes(`Listening on ${listen}`) ? true : undefined),
        {
          timeoutMs: STEP_TIMEOUT_MS,
          abort: () => (act.running ? undefined : `systemd-socket-activate exited: ${log()}`),
        },
      );
      const info = await run("wayland-info", [], {
        env: { ...sway.env, WAYLAND_DISPLAY: listen },
        timeoutMs: STEP_TIMEOUT_MS,
      });
      expect(info.code, `${info.stderr.toString()}\n${log()}`).toBe(0);
      expect(info.stdout.toString()).toMatch(/interface: 'wl_compositor'/);
      expect(out).toContain(`listening on inherited sockets (fd 3 '${fdName}')`);
      // An app on screen through the activated service: foot's background fills sway's output in grim's shot.
      const footIni = join(dirs.base, "foot.ini");
      writeFileSync(footIni, `[colors]\nbackground=${FOOT_BG}\n[main]\nfont=DejaVu Sans Mono:size=10\n`);
      const foot = spawnTracked("foot", "foot", ["-c", footIni, "sh", "-c", "sleep 600"], {
        env: { ...sway.env, WAYLAND_DISPLAY: listen },
      });
      try {
        const shot = join(dirs.base, "shot.png");
        const seen = await waitFor(
          "foot's background in a screenshot",
          async () => {
            await sway.screenshot(shot);
            const c = countColor(readPng(shot), FOOT_RGB);
            return c.count > (WIDTH * HEIGHT) / 2 ? c : undefined;
          },
          { timeoutMs: STEP_TIMEOUT_MS, abort: () => (foot.running ? undefined : "foot exited") },
        );
        expect(seen.count).toBeGreaterThan((WIDTH * HEIGHT) / 2);
        // The service's control socket (ExecStart's --control under RuntimeDirectory=) lists foot by its app_id.
        const r = await run(process.execPath, [BIN, "status", "--control", control, "--json"], {
          timeoutMs: STEP_TIMEOUT_MS,
        });
        expect(r.code, r.stderr.toString()).toBe(0);
        const s = JSON.parse(r.stdout.toString()) as StatusReport;
        expect(s.command).toBe("guest");
        expect(s.connections.map((c) => c.appId)).toEqual(["foot"]);
      } finally {
        await foot.stop();
      }
    } finally {
      await act.stop();
    }
  });
});
