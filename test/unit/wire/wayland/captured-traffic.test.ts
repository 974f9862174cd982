// Real libwayland traffic (test/fixtures/wayland): exact re-encoding and WAYLAND_DEBUG output line for line.
import { describe, expect, it } from "vitest";
import { ProtocolRegistry } from "../../../../src/wire/wayland/protocol-registry.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";
import { compareWithClientDebug, loadFixtures, replay } from "../../../helpers/wayland-fixtures.ts";

useFdLeakCheck();

const registry = ProtocolRegistry.fromGenerated();
const fixtures = loadFixtures();

describe("captured traffic", () => {
  it("covers the clients the issue names", () => {
    expect(fixtures.map((f) => f.name).sort()).toEqual([
      "sway-foot",
      "sway-wayland-info",
      "weston-simple-shm",
      "weston-wayland-info",
    ]);
  });

  it.each(fixtures.map((f) => [f.name, f] as const))(
    "%s: decode then re-encode reproduces every message",
    (_, f) => {
      const r = replay(f, registry);
      expect(r.messages).toBeGreaterThan(40);
      expect(r.mismatches).toEqual([]);
      // Each fd that crossed the socket was taken by exactly one message, in both directions.
      expect(r.fdsTaken).toEqual(r.fdsReceived);
    },
  );

  it.each(fixtures.map((f) => [f.name, f] as const))(
    "%s: formatted trace matches the client's WAYLAND_DEBUG",
    (_, f) => {
      const r = replay(f, registry);
      const cmp = compareWithClientDebug(r.lines, f.debug);
      expect(cmp.problems).toEqual([]);
      expect(cmp.matched).toBeGreaterThan(40);
    },
  );
});
