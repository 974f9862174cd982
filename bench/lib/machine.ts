// What a result was measured on: CPU, cores, kernel, Node, peer versions and the git commit.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, release } from "node:os";

function firstLine(cmd: string, args: readonly string[], cwd?: string): string {
  try {
    const out = execFileSync(cmd, args, { encoding: "utf8", cwd, stdio: ["ignore", "pipe", "pipe"] });
    return out.trim().split("\n")[0] ?? "";
  } catch {
    return "unknown";
  }
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return fallback;
  }
}

/** CPU model, core count, kernel, distribution and Node version. */
export function machineInfo(): Record<string, string | number> {
  const model =
    /^model name\s*:\s*(.+)$/m.exec(readOr("/proc/cpuinfo", ""))?.[1] ?? cpus()[0]?.model ?? "unknown";
  return {
    cpu: model.trim(),
    cores: cpus().length,
    kernel: release(),
    debian: readOr("/etc/debian_version", "unknown"),
    node: process.version,
  };
}

/** Versions of the peers and build tools the figures depend on. */
export function peerVersions(): Record<string, string> {
  return {
    weston: firstLine("weston", ["--version"]).replace(/^weston\s*/, ""),
    waypipe: firstLine("waypipe", ["--version"]).replace(/^waypipe\s*/, ""),
    libwayland: firstLine("pkg-config", ["--modversion", "wayland-client"]),
    cc: firstLine("cc", ["--version"]),
  };
}

/** HEAD and whether the work tree has changes outside bench/results. */
export function gitState(repoRoot: string): { commit: string; dirty: boolean } {
  const commit = firstLine("git", ["rev-parse", "HEAD"], repoRoot);
  let dirty = false;
  try {
    const status = execFileSync("git", ["status", "--porcelain", "--", ".", ":(exclude)bench/results"], {
      cwd: repoRoot,
      encoding: "utf8",
    });
    dirty = status.trim() !== "";
  } catch {}
  return { commit, dirty };
}
