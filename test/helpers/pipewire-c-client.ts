// Builds the small C PipeWire clients of test/clients/ (cc + libpipewire-0.3 via pkg-config), cached by content.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CrosswayError } from "../../src/errors.ts";

const SOURCES = join(import.meta.dirname, "..", "clients");

/**
 * The binary of test/clients/NAME.c, built once per source, compiler and libpipewire version (in the temp dir).
 * A missing compiler or libpipewire-0.3-dev is reported with the Debian package to install.
 */
export function buildPipeWireClient(name: string): string {
  let flags: string[];
  let version: string;
  try {
    flags = execFileSync("pkg-config", ["--cflags", "--libs", "libpipewire-0.3"], { encoding: "utf8" })
      .trim()
      .split(/\s+/);
    version = execFileSync("pkg-config", ["--modversion", "libpipewire-0.3"], { encoding: "utf8" }).trim();
  } catch (err) {
    throw new CrosswayError(
      "CW_HARNESS_MISSING_PACKAGE",
      "pkg-config cannot find libpipewire-0.3: install Debian packages 'pkgconf' and 'libpipewire-0.3-dev'",
      {},
      { cause: err },
    );
  }
  const src = join(SOURCES, `${name}.c`);
  const hash = createHash("sha256").update(readFileSync(src)).update(version).update(flags.join(" "));
  const dir = join(tmpdir(), "crossway-test-clients", hash.digest("hex").slice(0, 16));
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  // Built under a temporary name and renamed, so a concurrent test never runs a half-written binary.
  const tmp = `${bin}.${process.pid}`;
  try {
    execFileSync("cc", ["-O2", "-Wall", "-o", tmp, src, ...flags], { encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    throw new CrosswayError(
      "CW_HARNESS_MISSING_PACKAGE",
      `cannot build ${src}: ${(err as { stderr?: string }).stderr ?? (err as Error).message} (is Debian package 'gcc' installed?)`,
      {},
      { cause: err },
    );
  }
  renameSync(tmp, bin);
  return bin;
}
