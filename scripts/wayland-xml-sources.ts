// Finds the Wayland protocol XML this machine's packages install and their versions (I/O kept out of src/wire).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { type ProtocolIr, protocolFromXml } from "../src/wire/wayland/protocol-ir.ts";
import { emitGeneratedModule } from "../src/wire/wayland/protocol-pack.ts";

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query syntax, not JS interpolation
const DPKG_VERSION_FORMAT = "-f=${Version}";

/** Where Debian installs the XML (libwayland-dev, wayland-protocols). */
export const WAYLAND_XML = "/usr/share/wayland/wayland.xml";
export const PROTOCOLS_DIR = "/usr/share/wayland-protocols";
const SHARE = "/usr/share";

/** The installed XML files, in load order: wayland.xml, then stable, staging, unstable (each sorted). */
export function installedXmlFiles(): string[] {
  const files = [WAYLAND_XML];
  for (const tier of ["stable", "staging", "unstable"])
    files.push(...xmlFilesUnder(join(PROTOCOLS_DIR, tier)));
  return files;
}

/** Every *.xml below `dir`, sorted by path (byte order, so the result does not depend on the locale). */
export function xmlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".xml")) out.push(p);
    }
  };
  walk(dir);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** dpkg-query's version of each package (throws naming the package if it is not installed). */
export function packageVersions(names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    try {
      out[n] = execFileSync("dpkg-query", ["-W", DPKG_VERSION_FORMAT, n], { encoding: "utf8" }).trim();
    } catch {
      throw new Error(`Debian package ${n} is not installed (apt-get install ${n})`);
    }
  }
  return out;
}

/** The generator command recorded in the header. */
export const GENERATOR = "npx tsx scripts/gen-wayland-tables.ts";

/** Parses every installed protocol XML file into IR, in load order. */
export function installedProtocols(): ProtocolIr[] {
  return installedXmlFiles().map((f) => protocolFromXml(readFileSync(f, "utf8"), relative(SHARE, f)));
}

/** Reads the installed XML and returns the text of protocols.generated.ts. */
export function generateInstalledTables(): string {
  const protocols = installedProtocols();
  return emitGeneratedModule(protocols, {
    packages: packageVersions(["libwayland-dev", "wayland-protocols"]),
    sources: [WAYLAND_XML, `${PROTOCOLS_DIR}/{stable,staging,unstable}/**/*.xml`],
    generator: GENERATOR,
  });
}
