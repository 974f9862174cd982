// systemd socket activation of `crossway wayland-filter` (the unit in docs/wayland-filter.md): it filters clients on
// the listening socket it inherits as fd 3, with --listen left out.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { tempDir } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { globalsOf } from "../helpers/globals.ts";
import { run, waitFor } from "../helpers/processes.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));
const READY_MS = 30_000;

let weston: Compositor;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  weston = await startWeston();
  tmp = tempDir("crossway-wlfilter-activation-");
});

afterAll(async () => {
  await weston?.stop();
  tmp?.remove();
});

it("filters clients on the inherited socket with the --name default policy", async () => {
  const sockPath = join(tmp.dir, "vm.sock");
  const listenFd = native.unixListen(sockPath, 16);
  // As systemd does: fd 3 of the service, LISTEN_PID naming the service itself (exec keeps the shell's pid).
  const child = spawn(
    "sh",
    [
      "-c",
      `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${BIN}" wayland-filter --upstream "${weston.socketPath}" --name act`,
    ],
    { stdio: ["ignore", "pipe", "pipe", listenFd] },
  );
  native.close(listenFd);
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.resume();
  try {
    await waitFor("the filter's ready line", () => (out.includes("listening on") ? true : undefined), {
      timeoutMs: READY_MS,
    });
    expect(out).toContain("crossway wayland-filter: VM act listening on inherited sockets");
    const direct = await run("wayland-info", [], { env: weston.env, timeoutMs: 60_000 });
    const filtered = await run("wayland-info", [], {
      env: { ...weston.env, WAYLAND_DISPLAY: sockPath },
      timeoutMs: 60_000,
    });
    expect(filtered.code, filtered.stderr.toString()).toBe(0);
    const d = globalsOf(direct.stdout.toString());
    const f = globalsOf(filtered.stdout.toString());
    expect(f.has("wl_compositor")).toBe(true);
    // Weston's private globals (e.g. weston_debug_v1 with --debug) stay on the host's side.
    for (const name of d.keys()) if (name.startsWith("weston_")) expect(f.has(name), name).toBe(false);
    expect(f.size).toBeLessThan(d.size);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
});

it("refuses to start without --name or --policy, and without --listen or LISTEN_FDS (exit status 2)", async () => {
  const noName = await run(
    process.execPath,
    [BIN, "wayland-filter", "--listen", join(tmp.dir, "x.sock"), "--upstream", weston.socketPath],
    { timeoutMs: 60_000 },
  );
  expect(noName.code).toBe(2);
  expect(noName.stderr.toString()).toBe("crossway wayland-filter: give --name VM, --policy FILE or both\n");
  const noListen = await run(
    process.execPath,
    [BIN, "wayland-filter", "--upstream", weston.socketPath, "--name", "a"],
    { timeoutMs: 60_000 },
  );
  expect(noListen.code).toBe(2);
  expect(noListen.stderr.toString()).toBe(
    "crossway wayland-filter: --listen PATH is required unless systemd passes a socket (LISTEN_FDS)\n",
  );
});
