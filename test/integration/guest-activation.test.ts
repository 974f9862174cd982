// systemd socket activation: `crossway guest` serves a listening socket it inherits as fd 3 (LISTEN_FDS=1).
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePeerDirs, type PeerDirs } from "../../src/harness/compositor.ts";
import { native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { run, spawnTracked, type TrackedProcess, waitFor } from "../helpers/processes.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

describe("crossway guest under socket activation", () => {
  let weston: Compositor;
  let dirs: PeerDirs;
  let device: TrackedProcess;

  beforeAll(async () => {
    weston = await startWeston();
    dirs = makePeerDirs("activation");
    let out = "";
    device = spawnTracked(
      "crossway device",
      process.execPath,
      [BIN, "device", "--listen", join(dirs.base, "dev.sock"), "--wayland", weston.socketPath],
      { pipeStdout: true },
    );
    device.child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await waitFor("crossway device", () => (out.includes("listening on") ? true : undefined), {
      timeoutMs: 30_000,
    });
  });

  afterAll(async () => {
    await device?.stop();
    await weston?.stop();
    dirs?.remove();
  });

  it("accepts clients on the inherited fd and creates no socket of its own", async () => {
    const sockPath = join(dirs.base, "activated.sock");
    const listenFd = native.unixListen(sockPath, 16);
    // As systemd does: the socket is fd 3 of the service, LISTEN_PID names the service itself (exec keeps $$).
    const child = spawn(
      "sh",
      [
        "-c",
        `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${BIN}" guest --device emulated:${join(dirs.base, "dev.sock")}`,
      ],
      {
        stdio: ["ignore", "pipe", "pipe", listenFd],
        env: { ...process.env, XDG_RUNTIME_DIR: dirs.runtimeDir },
      },
    );
    native.close(listenFd);
    let out = "";
    child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr?.resume();
    try {
      await waitFor("the guest's ready line", () => (out.includes("listening on") ? true : undefined), {
        timeoutMs: 30_000,
      });
      expect(out).toContain("listening on inherited sockets");
      const info = await run("wayland-info", [], {
        env: { ...weston.env, WAYLAND_DISPLAY: sockPath },
        timeoutMs: 60_000,
      });
      expect(info.code, info.stderr.toString()).toBe(0);
      expect(info.stdout.toString()).toMatch(/interface: 'wl_compositor'/);
      const own = existsSync(dirs.runtimeDir)
        ? readdirSync(dirs.runtimeDir).filter((n) => n.startsWith("wayland-"))
        : [];
      expect(own).toEqual([]);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });
});
