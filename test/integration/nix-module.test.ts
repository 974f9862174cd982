// nix/ checked with Debian's nix-bin, without nixpkgs: every file parses; units.nix, evaluated against a stand-in
// for the few lib functions it uses, yields the directives of contrib/systemd/; module.nix's options and config
// evaluate, and the policy files it writes load in crossway's own parsers. docs/install.md says what is not checked.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parsePipeWirePolicy } from "../../src/proxy/pipewire/policy-file.ts";
import { parseGuestConfig } from "../../src/proxy/wayland/guest-config.ts";
import { parseFilterPolicy } from "../../src/proxy/wayland-filter/filter-policy.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { requireCommand, run } from "../helpers/processes.ts";

useFdLeakCheck();

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EVAL_TIMEOUT_MS = 60_000;

/** nix-instantiate with no store writes (dummy store) and no user config; resolves stdout or rejects with stderr. */
async function nix(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await run("nix-instantiate", ["--store", "dummy://", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/nonexistent", NIX_CONF_DIR: "/nonexistent" },
    timeoutMs: EVAL_TIMEOUT_MS,
  });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

async function evalJson(file: string, args: string[] = []): Promise<unknown> {
  const r = await nix(["--eval", "--strict", "--json", "--arg", "root", "./.", ...args, file]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** Directives only: comments and blank lines dropped (units.nix carries no comments into the unit text). */
function directives(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
}

function contribFiles(): string[] {
  return ["guest", "host"]
    .flatMap((d) => readdirSync(join(ROOT, "contrib/systemd", d)).map((f) => `${d}/${f}`))
    .sort();
}

const contrib = (f: string): string => readFileSync(join(ROOT, "contrib/systemd", f), "utf8");

describe("nix/ without nixpkgs", () => {
  beforeAll(() => requireCommand("nix-instantiate", "nix-bin"));

  it("every .nix file parses", async () => {
    for (const dir of ["nix", "test/nix"]) {
      for (const f of readdirSync(join(ROOT, dir)).filter((x) => x.endsWith(".nix"))) {
        const r = await nix(["--parse", join(dir, f)]);
        expect(r.code, `${dir}/${f}: ${r.stderr}`).toBe(0);
      }
    }
  });

  it("units.nix generates exactly the directives of every contrib/systemd file", async () => {
    const files = (await evalJson("test/nix/eval-units.nix")) as Record<string, string>;
    expect(Object.keys(files).sort()).toEqual(contribFiles());
    for (const [f, text] of Object.entries(files))
      expect(directives(text), f).toEqual(directives(contrib(f)));
  });

  const vms = `{ work = { waylandPolicy = { title.prefix = "[work] "; globals.wl_seat = false; }; pipewirePolicy = { profile = "camera"; targets = [ "cam0" ]; }; }; audio = { waylandPolicy = null; pipewirePolicy = { profile = "audio-playback"; }; }; }`;

  it("module.nix: options, unit texts with the package's binary, per-VM instances and policy files", async () => {
    const out = (await evalJson("test/nix/eval-module.nix", [
      "--arg",
      "guestPolicy",
      '{ titlePrefix = "[vm] "; globals.wp_viewporter = false; }',
      "--arg",
      "vms",
      vms,
    ])) as {
      package: string;
      options: { top: string[]; guest: string[]; vm: string[] };
      assertions: Array<{ assertion: boolean; message: string }>;
      units: Record<string, { text: string | null; wantedBy?: string[]; overrideStrategy?: string }>;
      etc: Record<string, string>;
    };
    expect(out.options).toEqual({
      top: ["guest", "host", "package"],
      guest: ["enable", "extraArgs", "pipewire", "policy"],
      vm: ["pipewirePolicy", "waylandPolicy"],
    });
    expect(out.assertions.every((a) => a.assertion)).toBe(true);
    const bin = `${out.package}/bin/crossway`;
    const expectText = (unit: string, file: string): void => {
      expect(directives(out.units[unit]?.text ?? ""), unit).toEqual(
        directives(contrib(file).replaceAll("/usr/local/bin/crossway", bin)),
      );
    };
    expectText("crossway-wayland.socket", "guest/crossway-wayland.socket");
    expectText("crossway-pipewire.socket", "guest/crossway-pipewire.socket");
    expectText("crossway-guest.service", "guest/crossway-guest.service");
    expectText("crossway-wayland-filter@.service", "host/crossway-wayland-filter@.service");
    expectText("crossway-pipewire-filter@.service", "host/crossway-pipewire-filter@.service");
    expect(out.units["crossway-wayland.socket"]?.wantedBy).toEqual(["sockets.target"]);
    // Instances: a Wayland filter only where a Wayland policy is set, a PipeWire filter where a PipeWire one is.
    const instances = Object.keys(out.units)
      .filter((u) => /@.+\.service$/.test(u))
      .sort();
    expect(instances).toEqual([
      "crossway-pipewire-filter@audio.service",
      "crossway-pipewire-filter@work.service",
      "crossway-wayland-filter@work.service",
    ]);
    expect(out.units["crossway-pipewire-filter@work.service"]).toMatchObject({
      wantedBy: ["default.target"],
      overrideStrategy: "asDropin",
    });
    // The files the units read, checked by crossway's own parsers.
    expect(out.etc["crossway/guest.env"]).toBe("CROSSWAY_GUEST_ARGS=--config /etc/crossway/guest.json\n");
    expect(parseGuestConfig(out.etc["crossway/guest.json"] as string, "guest.json").titlePrefix).toBe(
      "[vm] ",
    );
    // wayland.json as crossway wayland-filter reads it, with the unit's --name %i.
    expect(
      parseFilterPolicy(out.etc["crossway/work/wayland.json"] as string, "wayland.json", "work").title,
    ).toEqual({
      mode: "prefix",
      text: "[work] ",
    });
    expect(
      parsePipeWirePolicy(out.etc["crossway/work/pipewire.json"] as string, "pipewire.json"),
    ).toMatchObject({
      profile: "camera",
      targets: ["cam0"],
    });
    expect(parsePipeWirePolicy(out.etc["crossway/audio/pipewire.json"] as string, "p").profile).toBe(
      "audio-playback",
    );
    expect(out.etc["crossway/audio/wayland.json"]).toBeUndefined();
    expect(out.etc["environment.d/60-crossway.conf"]).toBe(
      contrib("guest/60-crossway.conf")
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .join("\n"),
    );
  });

  it("module.nix asserts on VM names that are not safe unit instance names", async () => {
    const out = (await evalJson("test/nix/eval-module.nix", [
      "--arg",
      "guestPolicy",
      "null",
      "--arg",
      "vms",
      '{ "my vm" = { waylandPolicy = { }; pipewirePolicy = null; }; }',
    ])) as { assertions: Array<{ assertion: boolean; message: string }> };
    expect(out.assertions.filter((a) => !a.assertion).map((a) => a.message)).toEqual([
      "services.crossway.host.vms: names must match [A-Za-z0-9_.-]+: my vm",
    ]);
  });

  // nixpkgs' prefetch-npm-deps (behind buildNpmPackage's npmDepsHash) downloads only lockfile entries that have a
  // `resolved` URL and skips the others silently; the build then fails offline with ENOTCACHED. npm omits the field
  // under omit-lockfile-registry-resolved=true, which the repository's .npmrc turns off.
  it("package-lock.json gives every package the resolved URL and integrity buildNpmPackage's fetcher needs", () => {
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<
        string,
        { version?: string; resolved?: string; integrity?: string; link?: boolean; name?: string }
      >;
    };
    const bad: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      if (path === "" || p.link === true) continue;
      const name = p.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
      const base = name.split("/").pop() as string;
      if (p.resolved !== `https://registry.npmjs.org/${name}/-/${base}-${p.version}.tgz`)
        bad.push(`${path}: ${p.resolved}`);
      if (!/^sha512-[A-Za-z0-9+/]+=*$/.test(p.integrity ?? "")) bad.push(`${path}: integrity ${p.integrity}`);
    }
    expect(bad).toEqual([]);
    expect(Object.keys(lock.packages).length).toBeGreaterThan(100);
    expect(readFileSync(join(ROOT, ".npmrc"), "utf8")).toMatch(/^omit-lockfile-registry-resolved=false$/m);
  });
});
