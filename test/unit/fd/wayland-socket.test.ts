// Wayland display sockets with lock files, as libwayland's wl_display_add_socket(_auto) makes them.
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LOCK_EX, LOCK_NB } from "../../../src/fd/constants.ts";
import { listenWayland } from "../../../src/fd/wayland-socket.ts";
import { AGAIN, native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";
import { requireCommand, run } from "../../helpers/processes.ts";

useFdLeakCheck();

const roots: string[] = [];
function runtimeDir(): string {
  const d = mkdtempSync(join(tmpdir(), "crossway-wlsock-"));
  roots.push(d);
  return d;
}
afterAll(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

describe("listenWayland", () => {
  it("auto-picks wayland-0, then wayland-1 while the first is held, and cleans up socket and lock on close", () => {
    const dir = runtimeDir();
    const a = listenWayland({ runtimeDir: dir });
    const b = listenWayland({ runtimeDir: dir });
    try {
      expect(a.displayName).toBe("wayland-0");
      expect(b.displayName).toBe("wayland-1");
      expect(a.path).toBe(join(dir, "wayland-0"));
      expect(statSync(a.path).isSocket()).toBe(true);
      expect(statSync(a.lockPath).mode & 0o777).toBe(0o660 & ~process.umask());
    } finally {
      a.close();
      b.close();
      a.close();
    }
    expect(existsSync(join(dir, "wayland-0"))).toBe(false);
    expect(existsSync(join(dir, "wayland-0.lock"))).toBe(false);
    expect(existsSync(join(dir, "wayland-1"))).toBe(false);
  });

  it("skips a name whose lock another process holds, even if no socket exists", () => {
    const dir = runtimeDir();
    const lock = openSync(join(dir, "wayland-0.lock"), "a+");
    expect(native.flock(lock, LOCK_EX | LOCK_NB)).toBe(true);
    try {
      const s = listenWayland({ runtimeDir: dir });
      expect(s.displayName).toBe("wayland-1");
      s.close();
      expect(() => listenWayland({ runtimeDir: dir, name: "wayland-0" })).toThrow(
        expect.objectContaining({ code: "CW_WAYLAND_SOCKET" }),
      );
    } finally {
      closeSync(lock);
    }
  });

  it("replaces a stale socket (lock free) and accepts connections on it", () => {
    const dir = runtimeDir();
    const stale = native.unixListen(join(dir, "wl-x"), 1);
    native.close(stale); // the socket file stays behind, as after a crash
    const s = listenWayland({ runtimeDir: dir, name: "wl-x" });
    try {
      const c = native.unixConnect(s.path);
      const srv = native.unixAccept(s.fd);
      expect(srv).toBeGreaterThanOrEqual(0);
      expect(native.unixAccept(s.fd)).toBe(AGAIN);
      native.close(c);
      native.close(srv);
    } finally {
      s.close();
    }
  });

  it("takes an absolute path as the name", () => {
    const dir = runtimeDir();
    const s = listenWayland({ name: join(dir, "abs-sock") });
    try {
      expect(s.path).toBe(join(dir, "abs-sock"));
      expect(s.displayName).toBe(join(dir, "abs-sock"));
      expect(existsSync(`${s.path}.lock`)).toBe(true);
    } finally {
      s.close();
    }
  });

  it("needs XDG_RUNTIME_DIR for a relative name", () => {
    const saved = process.env.XDG_RUNTIME_DIR;
    delete process.env.XDG_RUNTIME_DIR;
    try {
      expect(() => listenWayland({ name: "wayland-5" })).toThrow(/XDG_RUNTIME_DIR is not set/);
    } finally {
      if (saved !== undefined) process.env.XDG_RUNTIME_DIR = saved;
    }
  });

  it("a real libwayland client (wayland-info) connects to it", async () => {
    requireCommand("wayland-info", "wayland-utils");
    const dir = runtimeDir();
    const s = listenWayland({ runtimeDir: dir });
    try {
      const client = run("wayland-info", [], {
        env: { XDG_RUNTIME_DIR: dir, WAYLAND_DISPLAY: s.displayName, PATH: process.env.PATH ?? "" },
        timeoutMs: 5000,
      });
      const srv = await new Promise<number>((resolve) => {
        const poll = setInterval(() => {
          const fd = native.unixAccept(s.fd);
          if (fd !== AGAIN) {
            clearInterval(poll);
            resolve(fd);
          }
        }, 5);
      });
      // The client found the socket through XDG_RUNTIME_DIR + WAYLAND_DISPLAY and connected; closing without an
      // answer ends it (wayland-info reports the broken connection) rather than leaving it waiting.
      expect(native.fstat(srv).mode & 0o170000).toBe(0o140000);
      native.close(srv);
      const r = await client;
      expect(r.timedOut).toBe(false);
    } finally {
      s.close();
    }
  });

  it("does not remove a non-socket file it has no business with when the lock is held elsewhere", () => {
    const dir = runtimeDir();
    writeFileSync(join(dir, "wayland-9"), "keep");
    const lock = openSync(join(dir, "wayland-9.lock"), "a+");
    native.flock(lock, LOCK_EX | LOCK_NB);
    try {
      expect(() => listenWayland({ runtimeDir: dir, name: "wayland-9" })).toThrow(/another Wayland server/);
      expect(existsSync(join(dir, "wayland-9"))).toBe(true);
    } finally {
      closeSync(lock);
    }
  });
});
