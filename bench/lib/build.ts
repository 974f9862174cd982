// Compiles the C benchmark clients against the system libwayland-client into a cache dir keyed by their inputs.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { CrosswayError } from "../../src/errors.ts";
import { requireCommand } from "./processes.ts";

const exec = promisify(execFile);

/**
 * The benchmark programs, one per C file in bench/clients/: the clients, the reference relay proxy, the native
 * cross-domain floor, and the subreaper that every long-running peer is started under.
 */
export const CLIENT_NAMES = [
  "connect",
  "roundtrip",
  "burst",
  "shm",
  "idle",
  "relay",
  "reap",
  "crossdomain-floor",
] as const;
/** One of {@link CLIENT_NAMES}. */
export type ClientName = (typeof CLIENT_NAMES)[number];

/** Absolute paths of the compiled clients. */
export type ClientBinaries = Readonly<Record<ClientName, string>>;

/** Where xdg-shell comes from: the wayland-protocols package (never vendored, style.md). */
export const XDG_SHELL_XML = "/usr/share/wayland-protocols/stable/xdg-shell/xdg-shell.xml";

/** Clients that need the generated xdg-shell glue. */
const NEEDS_XDG: ReadonlySet<ClientName> = new Set(["shm"]);

async function output(cmd: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout, stderr } = await exec(cmd, args);
    return `${stdout}${stderr}`.trim();
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new CrosswayError(
      "CW_BENCH_FAILED",
      `${cmd} ${args.join(" ")} failed: ${e.stderr ?? e.message}`,
      {},
      {
        cause: err,
      },
    );
  }
}

/**
 * Builds every client (cc -O2, libwayland-client via pkg-config, xdg-shell glue from wayland-scanner) unless a
 * build with identical inputs (sources, XML, compiler and library versions) is already in `cacheRoot`.
 * Missing tools fail with the Debian package to install.
 */
export async function buildClients(srcDir: string, cacheRoot: string): Promise<ClientBinaries> {
  requireCommand("cc", "gcc");
  requireCommand("pkg-config", "pkgconf");
  requireCommand("wayland-scanner", "libwayland-bin");
  if (!existsSync(XDG_SHELL_XML)) {
    throw new CrosswayError(
      "CW_HARNESS_MISSING_PACKAGE",
      `${XDG_SHELL_XML} not found: install Debian package 'wayland-protocols'`,
    );
  }
  let flags: string[];
  try {
    flags = (await exec("pkg-config", ["--cflags", "--libs", "wayland-client"])).stdout.trim().split(/\s+/);
  } catch (err) {
    throw new CrosswayError(
      "CW_HARNESS_MISSING_PACKAGE",
      "pkg-config cannot find wayland-client: install Debian package 'libwayland-dev'",
      {},
      { cause: err },
    );
  }
  const hash = createHash("sha256");
  for (const f of readdirSync(srcDir).sort()) {
    if (f.endsWith(".c") || f.endsWith(".h")) hash.update(f).update(readFileSync(join(srcDir, f)));
  }
  hash.update(readFileSync(XDG_SHELL_XML));
  hash.update(await output("cc", ["--version"]));
  hash.update(await output("wayland-scanner", ["--version"]));
  hash.update(flags.join(" "));
  hash.update(await output("pkg-config", ["--modversion", "wayland-client"]));
  const dir = join(cacheRoot, hash.digest("hex").slice(0, 16));
  const bins = Object.fromEntries(CLIENT_NAMES.map((n) => [n, join(dir, n)])) as Record<ClientName, string>;
  if (CLIENT_NAMES.every((n) => existsSync(bins[n]))) return bins;

  // Build into a scratch dir and rename it into place, so an interrupted build never looks complete.
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await output("wayland-scanner", ["client-header", XDG_SHELL_XML, join(tmp, "xdg-shell-client-protocol.h")]);
  await output("wayland-scanner", ["private-code", XDG_SHELL_XML, join(tmp, "xdg-shell-protocol.c")]);
  for (const name of CLIENT_NAMES) {
    const sources = [join(srcDir, `${name}.c`)];
    if (NEEDS_XDG.has(name)) sources.push(join(tmp, "xdg-shell-protocol.c"));
    await output("cc", [
      "-O2",
      "-g",
      "-Wall",
      "-Wextra",
      "-I",
      tmp,
      "-o",
      join(tmp, name),
      ...sources,
      ...flags,
    ]);
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return bins;
}
