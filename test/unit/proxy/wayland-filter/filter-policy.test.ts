// The wayland-filter policy file: defaults, every key, and a precise error for each kind of mistake.
import { describe, expect, it } from "vitest";
import { TokenBucket } from "../../../../src/proxy/token-bucket.ts";
import { tagString } from "../../../../src/proxy/wayland/tag-string.ts";
import {
  DEFAULT_QUOTAS,
  defaultPolicy,
  parseFilterPolicy,
} from "../../../../src/proxy/wayland-filter/filter-policy.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

const parse = (o: unknown, name?: string) => parseFilterPolicy(JSON.stringify(o), "p.json", name);

describe("wayland-filter policy", () => {
  it("has a safe default for --name: tags, primary selection off, quotas on", () => {
    const p = defaultPolicy("work");
    expect(p.title).toEqual({ mode: "prefix", text: "[work] " });
    expect(p.appId).toEqual({ mode: "prefix", text: "work." });
    expect([p.clipboard, p.primarySelection, p.dnd]).toEqual(["both", "off", "both"]);
    expect(p.quotas).toEqual(DEFAULT_QUOTAS);
    expect(p.globals.zwlr_data_control_manager_v1).toBeUndefined();
    expect(p.globals.wl_compositor?.maxVersion).toBe(6);
  });

  it("parses every key", () => {
    const p = parse({
      name: "vault",
      globals: { wl_output: 2, wp_viewporter: false, wp_fractional_scale_manager_v1: true },
      title: { replace: "[vault]" },
      appId: { prefix: "v." },
      clipboard: "from-guest",
      primarySelection: "to-guest",
      dnd: "off",
      quotas: { objects: 100, requestsPerSecond: 10 },
      maxMessageSize: 8192,
    });
    expect(p.name).toBe("vault");
    expect(p.globals.wl_output?.maxVersion).toBe(2);
    expect(p.globals.wp_viewporter).toBeUndefined();
    expect(p.title).toEqual({ mode: "replace", text: "[vault]" });
    expect(p.appId).toEqual({ mode: "prefix", text: "v." });
    expect([p.clipboard, p.primarySelection, p.dnd]).toEqual(["from-guest", "to-guest", "off"]);
    expect(p.quotas).toEqual({ ...DEFAULT_QUOTAS, objects: 100, requestsPerSecond: 10 });
    expect(p.maxMessageSize).toBe(8192);
  });

  it("lets --name override the file's name and the default tags follow it", () => {
    const p = parse({ name: "a" }, "b");
    expect(p.name).toBe("b");
    expect(p.title.text).toBe("[b] ");
  });

  it.each([
    [{}, "p.json: no 'name' (give one in the file or with --name)"],
    [{ name: "a b" }, /p\.json: 'name' must be 1-64 letters/],
    [{ name: "a", colour: 1 }, "p.json: unknown key 'colour'"],
    [
      { name: "a", clipboard: "sometimes" },
      /'clipboard' must be one of off, to-guest, from-guest, both, got "sometimes"/,
    ],
    [{ name: "a", title: { suffix: "x" } }, /'title' must be \{"prefix": TEXT\} or \{"replace": TEXT\}/],
    [{ name: "a", title: { replace: "" } }, "p.json: 'title': \"replace\" needs a non-empty text"],
    [
      { name: "a", quotas: { objects: 1 } },
      "p.json: quotas.objects must be an integer in [16, 10000000], got 1",
    ],
    [{ name: "a", quotas: { files: 1 } }, "p.json: quotas: unknown key 'files'"],
    [
      { name: "a", maxMessageSize: 4097 },
      /'maxMessageSize' must be a multiple of 4 in \[4096, 65532\], got 4097/,
    ],
    [
      { name: "a", globals: { wl_seat: 0 } },
      "p.json: globals.wl_seat: expected a version >= 1, true or false, got 0",
    ],
  ])("refuses %j", (o, msg) => {
    expect(() => parse(o)).toThrow(msg);
  });

  it("allows a selection-bypassing global only when every selection kind it touches is both", () => {
    const o = { name: "a", globals: { zwlr_data_control_manager_v1: 2 } };
    expect(() => parse(o)).toThrow(
      /globals\.zwlr_data_control_manager_v1 would bypass primarySelection "off"/,
    );
    expect(() => parse({ ...o, primarySelection: "both" })).not.toThrow();
  });

  it("refuses text that is not JSON, naming the file", () => {
    expect(() => parseFilterPolicy("{", "p.json")).toThrow(/^p\.json: not valid JSON/);
  });
});

describe("tagString", () => {
  it("prefixes or replaces, and cuts whole code points from the end, never the tag", () => {
    expect(tagString("term", "[vm] ", "prefix", 100)).toBe("[vm] term");
    expect(tagString("term", "[vm]", "replace", 100)).toBe("[vm]");
    expect(tagString("🙂🙂🙂", "[vm] ", "prefix", 10)).toBe("[vm] 🙂"); // 5 + 4 bytes; a second 🙂 would be 13
    expect(tagString("x".repeat(5000), "[vm] ", "prefix", 4080).startsWith("[vm] x")).toBe(true);
  });
});

describe("TokenBucket", () => {
  it("allows the burst, then one token per 1/rate s", () => {
    const b = new TokenBucket(100, 3, 0);
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([0, 0, 0]);
    expect(b.take(0)).toBeCloseTo(10); // one token short: 10 ms at 100/s
    expect(b.take(20)).toBe(0); // 20 ms refilled 2 tokens, paying the debt of 1 and this one
  });

  it("budget + takeMany let through exactly what take, message by message, would", () => {
    // take() lets through the message that puts the bucket in debt, then the caller waits.
    const oneByOne = (tokens: number, now: number): { passed: number; wait: number } => {
      const b = new TokenBucket(100, 50, 0);
      b.takeMany(50 - tokens);
      let passed = 0;
      for (;;) {
        passed++;
        const wait = b.take(now);
        if (wait > 0) return { passed, wait };
      }
    };
    for (const [tokens, now] of [
      [0, 0],
      [2.5, 0],
      [3, 0],
      [0, 7],
      [-0.5, 0],
      [-0.5, 20],
      [50, 0],
    ] as const) {
      const b = new TokenBucket(100, 50, 0);
      b.takeMany(50 - tokens);
      const passed = b.budget(now);
      const wait = b.takeMany(passed);
      expect({ passed, wait }, `${tokens} tokens at ${now} ms`).toEqual(oneByOne(tokens, now));
    }
  });
});
