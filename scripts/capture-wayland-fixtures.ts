// Re-captures test/fixtures/wayland/*.json: real clients against headless weston and sway through a recording relay.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSway } from "../src/harness/sway.ts";
import { startWeston } from "../src/harness/weston.ts";
import { captureClient, type WaylandFixture } from "../test/helpers/capture-relay.ts";

// dpkg-query's format string; a plain string, not a template.
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query syntax, not JS interpolation
const DPKG_VERSION_FORMAT = "-f=${Version}";
const outDir = fileURLToPath(new URL("../test/fixtures/wayland/", import.meta.url));
mkdirSync(outDir, { recursive: true });

function versions(pkgs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pkgs)
    out[p] = execFileSync("dpkg-query", ["-W", DPKG_VERSION_FORMAT, p], { encoding: "utf8" }).trim();
  return out;
}

function save(f: WaylandFixture): void {
  const path = join(outDir, `${f.name}.json`);
  writeFileSync(path, `${JSON.stringify(f, null, 1)}\n`);
  process.stdout.write(`${path}: ${f.chunks.length} chunks, ${f.debug.split("\n").length} debug lines\n`);
}

const weston = await startWeston();
try {
  const pk = versions(["libwayland-client0", "weston"]);
  const wi = await captureClient("weston-wayland-info", weston, ["wayland-info"], {
    debPackage: "wayland-utils",
  });
  save({ ...wi, compositor: "weston", packages: { ...pk, ...versions(["wayland-utils"]) } });
  const shm = await captureClient("weston-simple-shm", weston, ["weston-simple-shm"], {
    debPackage: "weston",
    interruptAfterMs: 600,
  });
  save({ ...shm, compositor: "weston", packages: pk });
} finally {
  await weston.stop();
}

const sway = await startSway();
const tmp = mkdtempSync(join(tmpdir(), "crossway-foot-"));
try {
  const pk = versions(["libwayland-client0", "sway", "foot"]);
  const ini = join(tmp, "foot.ini");
  writeFileSync(
    ini,
    "[main]\nfont=DejaVu Sans Mono:size=8\n[colors]\nbackground=ff0000\nforeground=00ff00\n",
  );
  const foot = await captureClient(
    "sway-foot",
    sway,
    ["foot", "-c", ini, "sh", "-c", "echo hello; sleep 0.7"],
    {
      debPackage: "foot",
    },
  );
  save({ ...foot, compositor: "sway", packages: pk });
  const wi = await captureClient("sway-wayland-info", sway, ["wayland-info"], {
    debPackage: "wayland-utils",
  });
  save({ ...wi, compositor: "sway", packages: { ...pk, ...versions(["wayland-utils"]) } });
} finally {
  await sway.stop();
  rmSync(tmp, { recursive: true, force: true });
}
