// Extra protocol XML at run time: files and directories, errors naming file and line; `crossway trace` usage.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { main } from "../../../src/cli.ts";
import { loadExtraProtocols } from "../../../src/trace/load-protocols.ts";
import { WireXmlError } from "../../../src/wire/wayland/errors.ts";
import { ProtocolRegistry } from "../../../src/wire/wayland/protocol-registry.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const golden = fileURLToPath(new URL("../../golden/", import.meta.url));

describe("loadExtraProtocols", () => {
  it("loads a file, overriding nothing it does not define", () => {
    const reg = ProtocolRegistry.fromGenerated();
    expect(loadExtraProtocols(reg, [`${golden}test-protocol.xml`])).toBe(1);
    expect(reg.get("ct_factory")?.version).toBe(3);
    expect(reg.get("wl_surface")?.known).toBe(true);
  });

  it("walks a directory in sorted order and stops at the first bad file with file:line", () => {
    const reg = ProtocolRegistry.fromGenerated();
    let err: unknown;
    try {
      loadExtraProtocols(reg, [`${golden}bad`]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WireXmlError);
    expect((err as WireXmlError).message).toBe(
      `${golden}bad/bad-arg-type.xml:5: x.r argument b has unknown type "double"`,
    );
  });

  it("names a missing path", () => {
    expect(() => loadExtraProtocols(ProtocolRegistry.fromGenerated(), ["/nonexistent/x.xml"])).toThrow(
      /protocol XML path \/nonexistent\/x.xml cannot be read/,
    );
  });
});

describe("crossway trace usage", () => {
  it("exits 2 without its required options", async () => {
    const write = process.stderr.write;
    let text = "";
    process.stderr.write = ((s: string) => {
      text += s;
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await main(["trace", "--socket", "/tmp/x"])).toBe(2);
      expect(
        await main(["trace", "--socket", "/tmp/x", "--upstream", "/tmp/y", "--max-message-size", "70000"]),
      ).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(text).toContain("crossway trace: missing required option '--upstream PATH'");
    expect(text).toContain("crossway trace: --max-message-size must be an integer in 8..65532, not '70000'");
  });
});
