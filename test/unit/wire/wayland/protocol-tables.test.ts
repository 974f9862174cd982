// Generated protocol tables: byte-exact regeneration from the installed XML, golden output, bad-XML error lines.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  generateInstalledTables,
  installedProtocols,
  packageVersions,
} from "../../../../scripts/wayland-xml-sources.ts";
import { WireXmlError } from "../../../../src/wire/wayland/errors.ts";
import { protocolFromXml } from "../../../../src/wire/wayland/protocol-ir.ts";
import {
  emitGeneratedModule,
  packProtocol,
  unpackProtocol,
} from "../../../../src/wire/wayland/protocol-pack.ts";
import { ProtocolRegistry } from "../../../../src/wire/wayland/protocol-registry.ts";
import { GENERATED_PACKAGES } from "../../../../src/wire/wayland/protocols.generated.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

const GOLDEN = fileURLToPath(new URL("../../../golden/", import.meta.url));
const GENERATED = fileURLToPath(
  new URL("../../../../src/wire/wayland/protocols.generated.ts", import.meta.url),
);
const update = process.env.UPDATE_GOLDEN === "1";

/** Compares `actual` with the golden file `name`, or rewrites it with UPDATE_GOLDEN=1. */
function golden(name: string, actual: string): void {
  const path = GOLDEN + name;
  if (update || !existsSync(path)) {
    if (!update) throw new Error(`golden file ${name} is missing: run with UPDATE_GOLDEN=1 and review it`);
    writeFileSync(path, actual);
    return;
  }
  expect(actual).toBe(readFileSync(path, "utf8"));
}

describe("protocols.generated.ts", () => {
  it("is reproduced byte for byte from the installed XML when the package versions match", () => {
    const installed = packageVersions(["libwayland-dev", "wayland-protocols"]);
    const text = generateInstalledTables();
    if (JSON.stringify(installed) === JSON.stringify(GENERATED_PACKAGES)) {
      expect(text).toBe(readFileSync(GENERATED, "utf8"));
    } else {
      // Different distribution release (e.g. Debian 13): the committed file cannot match; say so and still check
      // that what this machine's XML gives is usable.
      console.warn(
        `installed ${JSON.stringify(installed)} differ from the generated tables' ${JSON.stringify(GENERATED_PACKAGES)}: checking the regenerated tables parse instead of byte equality`,
      );
      expect(text).toContain(`// Package: wayland-protocols ${installed["wayland-protocols"]}`);
      const reg = new ProtocolRegistry();
      for (const p of installedProtocols()) reg.addProtocol(unpackProtocol(packProtocol(p)));
      for (const name of [
        "wl_display",
        "wl_registry",
        "wl_surface",
        "wl_seat",
        "xdg_wm_base",
        "wp_viewporter",
      ])
        expect(reg.get(name)?.known, name).toBe(true);
    }
  });

  it("holds the core and well-known interfaces with their XML facts", () => {
    const reg = ProtocolRegistry.fromGenerated();
    expect(reg.size).toBeGreaterThan(100);
    // Every installed protocol's IR survives packing (what the generated file stores) unchanged.
    for (const p of installedProtocols()) expect(unpackProtocol(packProtocol(p))).toEqual(p);
    const display = reg.get("wl_display");
    expect(display?.requests.map((m) => `${m.name}(${m.signature})`)).toEqual(["sync(n)", "get_registry(n)"]);
    expect(display?.events.map((m) => `${m.name}(${m.signature})`)).toEqual(["error(ous)", "delete_id(u)"]);
    const bind = reg.get("wl_registry")?.requests[0];
    expect(bind?.signature).toBe("usun");
    expect(bind?.untypedNewId).toBe(true);
    expect(bind?.newIdIndex).toBe(3);
    expect(reg.get("wl_surface")?.requests.find((m) => m.name === "set_buffer_scale")?.signature).toBe("3i");
    expect(reg.get("wl_surface")?.requests.find((m) => m.name === "attach")?.signature).toBe("?oii");
    expect(reg.get("wl_keyboard")?.events[0]?.fdCount).toBe(1);
    expect(reg.get("wl_keyboard")?.eventFdCounts[0]).toBe(1);
    expect(reg.get("xdg_wm_base")?.version).toBeGreaterThanOrEqual(5);
    expect(reg.get("wl_callback")?.events[0]?.destructor).toBe(true);
    expect(reg.get("zwp_linux_dmabuf_v1")?.known).toBe(true);
    // unstable xdg-shell v5 redefines xdg_surface; stable (loaded first) wins and the shadowing is recorded.
    expect(reg.get("xdg_surface")?.file).toBe("wayland-protocols/stable/xdg-shell/xdg-shell.xml");
    expect(reg.shadowed.map((s) => s.name).sort()).toEqual(["xdg_popup", "xdg_surface"]);
  });

  it("accepts extra XML at run time, overriding installed definitions", () => {
    const reg = ProtocolRegistry.fromGenerated();
    reg.addXml(readFileSync(`${GOLDEN}test-protocol.xml`, "utf8"), "test-protocol.xml", { override: true });
    expect(reg.get("ct_factory")?.requests.map((m) => m.signature)).toEqual(["n?s", "2sun", "3huh", ""]);
    expect(reg.get("wl_display")?.known).toBe(true);
  });
});

describe("generator golden (test/golden/test-protocol.xml)", () => {
  it("emits the golden module and compiled descriptors", () => {
    const ir = protocolFromXml(readFileSync(`${GOLDEN}test-protocol.xml`, "utf8"), "test-protocol.xml");
    const text = emitGeneratedModule([ir], {
      packages: { "crossway-test": "1" },
      sources: ["test/golden/test-protocol.xml"],
      generator: "test/unit/wire/wayland/protocol-tables.test.ts",
    });
    golden("test-protocol.generated.txt", text);
    // Packing round-trips the IR exactly.
    expect(unpackProtocol(packProtocol(ir))).toEqual(ir);
    const reg = new ProtocolRegistry();
    reg.addProtocol(ir);
    const lines: string[] = [];
    for (const i of reg.interfaces()) {
      for (const m of [...i.requests, ...i.events]) {
        lines.push(
          `${i.name}.${m.name} ${m.isEvent ? "event" : "request"} op=${m.opcode} since=${m.since} sig=${m.signature} fds=${m.fdCount} new_id=${m.newIdIndex}${m.untypedNewId ? " untyped" : ""}${m.destructor ? " destructor" : ""} args=${m.argNames.join(",")} ifaces=${m.argIfaces.map((x) => x ?? "-").join(",")} enums=${m.argEnums.map((x) => x ?? "-").join(",")}`,
        );
      }
      for (const e of i.enums)
        lines.push(
          `${i.name} enum ${e.name}${e.bitfield ? " bitfield" : ""}: ${e.entries.map((x) => `${x.name}=${x.value}${x.since > 1 ? `@${x.since}` : ""}`).join(" ")}`,
        );
    }
    golden("test-protocol.compiled.txt", `${lines.join("\n")}\n`);
  });

  const bad = readdirSync(`${GOLDEN}bad`).filter((f) => f.endsWith(".xml"));
  it.each(bad)("bad/%s fails with the golden error line", (file) => {
    const text = readFileSync(`${GOLDEN}bad/${file}`, "utf8");
    let err: unknown;
    try {
      protocolFromXml(text, file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WireXmlError);
    const e = err as WireXmlError;
    expect(e.code).toBe("CW_WIRE_XML");
    expect(e.line).toBeGreaterThan(0);
    golden(`bad/${file.replace(/\.xml$/, ".err")}`, `${e.message}\n`);
  });
});
