// Listens on a Wayland display socket with a lock file, the way libwayland's wl_display_add_socket does.
import { closeSync, constants, openSync, statSync, unlinkSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { CrosswayError } from "../errors.ts";
import { native } from "../native.ts";
import { LOCK_EX, LOCK_NB, S_IWGRP, S_IWUSR } from "./constants.ts";

/** A listening Wayland socket and the lock that guards its name. */
export interface WaylandSocket {
  /** The non-blocking listening fd (accept with native.unixAccept). */
  readonly fd: number;
  /** Absolute socket path. */
  readonly path: string;
  /** What a client puts in WAYLAND_DISPLAY: the name relative to XDG_RUNTIME_DIR, or the absolute path. */
  readonly displayName: string;
  readonly lockPath: string;
  /** Unlinks the socket and the lock file and closes both fds. Idempotent. */
  close(): void;
}

/** Where to listen: a name in $XDG_RUNTIME_DIR, an absolute path, or (neither) the first free wayland-0..32. */
export interface WaylandSocketOptions {
  /** "wayland-1" (relative to runtimeDir) or an absolute path, as WAYLAND_DISPLAY accepts both. */
  name?: string;
  /** Defaults to $XDG_RUNTIME_DIR. */
  runtimeDir?: string;
  backlog?: number;
}

/** libwayland's wl_display_add_socket_auto tries wayland-0 up to wayland-32. */
const AUTO_MAX = 32;

/**
 * Creates the socket. With a name, fails with CW_WAYLAND_SOCKET when another server holds its lock; without one,
 * takes the first wayland-N whose lock is free, as wl_display_add_socket_auto does.
 */
export function listenWayland(opts: WaylandSocketOptions = {}): WaylandSocket {
  const backlog = opts.backlog ?? 128;
  if (opts.name !== undefined) {
    const s = tryListen(resolvePath(opts.name, opts.runtimeDir), opts.name, backlog);
    if (s === undefined) {
      throw new CrosswayError(
        "CW_WAYLAND_SOCKET",
        `cannot lock ${opts.name}.lock: another Wayland server is using display '${opts.name}'`,
        { arg: "name", value: opts.name },
      );
    }
    return s;
  }
  for (let n = 0; n <= AUTO_MAX; n++) {
    const name = `wayland-${n}`;
    const s = tryListen(resolvePath(name, opts.runtimeDir), name, backlog);
    if (s !== undefined) return s;
  }
  throw new CrosswayError(
    "CW_WAYLAND_SOCKET",
    `no free display: wayland-0..wayland-${AUTO_MAX} are all locked`,
  );
}

function resolvePath(name: string, runtimeDir: string | undefined): string {
  if (isAbsolute(name)) return name;
  const dir = runtimeDir ?? process.env.XDG_RUNTIME_DIR;
  if (dir === undefined || dir === "") {
    throw new CrosswayError(
      "CW_WAYLAND_SOCKET",
      `XDG_RUNTIME_DIR is not set: cannot place socket '${name}'`,
      {
        arg: "XDG_RUNTIME_DIR",
      },
    );
  }
  return join(dir, name);
}

/** One attempt: lock, clear a stale socket, bind. Undefined when the lock is held by someone else. */
function tryListen(path: string, displayName: string, backlog: number): WaylandSocket | undefined {
  const lockPath = `${path}.lock`;
  // libwayland (wayland-server.c, wl_socket_lock) opens NAME.lock with O_CREAT|O_CLOEXEC|O_RDWR, mode 0660;
  // libuv adds O_CLOEXEC to every open on Linux.
  const lockFd = openSync(lockPath, constants.O_CREAT | constants.O_RDWR, 0o660);
  let fd = -1;
  try {
    if (!native.flock(lockFd, LOCK_EX | LOCK_NB)) {
      closeSync(lockFd);
      return undefined;
    }
    // Holding the lock proves no live server owns the name, so a leftover socket is stale: remove it, but only if
    // it has write permission bits, as libwayland does (it leaves a socket it could not have created alone).
    const st = statSync(path, { throwIfNoEntry: false });
    if (st !== undefined && (st.mode & (S_IWUSR | S_IWGRP)) !== 0) unlinkSync(path);
    fd = native.unixListen(path, backlog);
  } catch (err) {
    // The lock file stays: unlinking it could break the lock of a server that opened it meanwhile.
    closeSync(lockFd);
    throw err;
  }
  let closed = false;
  return {
    fd,
    path,
    displayName,
    lockPath,
    close(): void {
      if (closed) return;
      closed = true;
      // Unlink before closing so no new client can connect to a socket nobody accepts on.
      try {
        unlinkSync(path);
      } catch {
        // Already removed by someone cleaning the runtime dir.
      }
      native.close(fd);
      try {
        unlinkSync(lockPath);
      } catch {
        // Same as above.
      }
      closeSync(lockFd);
    },
  };
}
