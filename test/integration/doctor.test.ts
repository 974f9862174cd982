// `crossway doctor` against real peers: host mode with headless weston and a private PipeWire stack (and with
// nothing running), guest mode through `crossway device` (the emulated cross-domain host) to the same peers.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePeerDirs, type PeerDirs } from "../../src/harness/compositor.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { startCrosswayCommand } from "../helpers/crossway-command.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire } from "../helpers/pipewire.ts";
import { run } from "../helpers/processes.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));
/** A doctor run: tsx start-up plus a few round trips on a loaded 2-core machine. */
const DOCTOR_TIMEOUT_MS = 60_000;

interface Found {
  status: string;
  check: string;
  detail: string;
  fix?: string;
}

async function doctor(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; found: Found[] }> {
  const r = await run(process.execPath, [BIN, "doctor", ...args, "--json"], {
    env,
    timeoutMs: DOCTOR_TIMEOUT_MS,
  });
  expect(r.timedOut).toBe(false);
  return { code: r.code, found: JSON.parse(r.stdout.toString()) as Found[] };
}

function byCheck(found: Found[], check: string): Found {
  const f = found.find((x) => x.check === check);
  if (f === undefined) throw new Error(`no finding '${check}' in ${JSON.stringify(found)}`);
  return f;
}

/** The globals wayland-info lists directly: the outside truth the doctor's count must match. */
async function directGlobalCount(env: Record<string, string>): Promise<number> {
  const info = await run("wayland-info", [], { env, timeoutMs: 20_000 });
  expect(info.code).toBe(0);
  return (info.stdout.toString().match(/^interface: '/gm) ?? []).length;
}

describe("crossway doctor", () => {
  let weston: Compositor;
  let pw: PipeWireStack;
  let dirs: PeerDirs;

  beforeAll(async () => {
    weston = await startWeston();
    pw = await startPipeWire();
    dirs = makePeerDirs("doctor");
    mkdirSync(dirs.runtimeDir, { mode: 0o700 });
  });

  afterAll(async () => {
    await pw?.stop();
    await weston?.stop();
    dirs?.remove();
  });

  it("host mode: the compositor's globals and the PipeWire version match what their own clients report", async () => {
    const policyDir = join(dirs.base, "policy-ok");
    mkdirSync(join(policyDir, "vm1"), { recursive: true });
    writeFileSync(
      join(policyDir, "vm1", "pipewire.json"),
      JSON.stringify({ profile: "camera", targets: ["cam"] }),
    );
    // vm1's filter runs where its unit would put it (%t/crossway/vm1/pipewire-0); vm3 has a policy but no filter.
    mkdirSync(join(policyDir, "vm3"), { recursive: true });
    writeFileSync(join(policyDir, "vm3", "pipewire.json"), JSON.stringify({ profile: "audio-playback" }));
    const filterDir = join(weston.runtimeDir, "crossway", "vm1");
    mkdirSync(filterDir, { recursive: true, mode: 0o700 });
    const filter = await startCrosswayCommand(
      [
        "pipewire-filter",
        "--listen",
        join(filterDir, "pipewire-0"),
        "--upstream",
        pw.socketPath,
        "--policy",
        join(policyDir, "vm1", "pipewire.json"),
      ],
      join(dirs.base, "filter.log"),
    );
    let result: { code: number | null; found: Found[] };
    try {
      result = await doctor(
        ["--host", "--wayland", weston.socketPath, "--pipewire", pw.socketPath, "--policy-dir", policyDir],
        { ...weston.env },
      );
    } finally {
      await filter.stop();
    }
    const { code, found } = result;
    expect(code, JSON.stringify(found)).toBe(0);
    const n = await directGlobalCount(weston.env);
    expect(byCheck(found, "compositor").detail).toContain(`answers: ${n} globals (wl_compositor v`);
    const info = await run("pw-cli", ["info", "0"], { env: pw.env, timeoutMs: 20_000 });
    const version = /version: "([^"]+)"/.exec(info.stdout.toString())?.[1];
    expect(version).toBeDefined();
    expect(byCheck(found, "PipeWire").detail).toContain(`(daemon ${version})`);
    expect(byCheck(found, "policy vm1")).toMatchObject({ status: "ok" });
    // Through the filter the daemon answers too (Core.Hello and Sync pass every profile).
    expect(byCheck(found, "filter crossway-pipewire-filter@vm1")).toMatchObject({
      status: "ok",
      detail: `${join(filterDir, "pipewire-0")} answers (daemon ${version})`,
    });
    expect(byCheck(found, "filter crossway-pipewire-filter@vm3")).toMatchObject({
      status: "warn",
      fix: expect.stringContaining("systemctl --user enable --now crossway-pipewire-filter@vm3.service"),
    });
  });

  it("host mode: a bad policy file fails with its error; missing sockets fail naming the path", async () => {
    const policyDir = join(dirs.base, "policy-bad");
    mkdirSync(join(policyDir, "vm2"), { recursive: true });
    writeFileSync(join(policyDir, "vm2", "pipewire.json"), JSON.stringify({ profile: "webcam" }));
    const missing = join(dirs.runtimeDir, "no-such-wayland");
    const { code, found } = await doctor(
      [
        "--host",
        "--wayland",
        missing,
        "--pipewire",
        join(dirs.runtimeDir, "no-pw"),
        "--policy-dir",
        policyDir,
      ],
      { ...weston.env, XDG_RUNTIME_DIR: dirs.runtimeDir },
    );
    expect(code).toBe(1);
    expect(byCheck(found, "compositor")).toMatchObject({ status: "fail", detail: `no socket at ${missing}` });
    expect(byCheck(found, "PipeWire").status).toBe("fail");
    const pol = byCheck(found, "policy vm2");
    expect(pol.status).toBe("fail");
    expect(pol.detail).toContain(
      "pipewire.json: 'profile' must be one of camera|screencast|audio-playback|audio-capture, not \"webcam\"",
    );
  });

  it("guest mode through the emulated device: caps, channels and both round trips", async () => {
    const devSock = join(dirs.base, "dev.sock");
    const device = await startCrosswayCommand(
      ["device", "--listen", devSock, "--wayland", weston.socketPath, "--pipewire", pw.socketPath],
      join(dirs.base, "device.log"),
    );
    try {
      const { code, found } = await doctor(
        ["--guest", "--device", `emulated:${devSock}`, "--pipewire-guest"],
        {
          ...weston.env,
        },
      );
      expect(code, JSON.stringify(found)).toBe(0);
      expect(byCheck(found, "capsets").detail).toContain("includes cross-domain (5)");
      expect(byCheck(found, "Wayland channel").status).toBe("ok");
      expect(byCheck(found, "PipeWire channel").status).toBe("ok");
      expect(byCheck(found, "host dmabuf").status).toBe("warn");
      const n = await directGlobalCount(weston.env);
      expect(byCheck(found, "Wayland round trip").detail).toContain(`answers: ${n} globals`);
      expect(byCheck(found, "Wayland round trip").detail).toMatch(
        /; the host parses (4|28) identifier slots$/,
      );
      expect(byCheck(found, "PipeWire round trip").status).toBe("ok");
    } finally {
      await device.stop();
    }
  });
});
