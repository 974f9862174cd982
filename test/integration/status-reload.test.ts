// crossway status and SIGHUP reload on real peers: the guest in front of weston, pipewire-filter in front of a
// private PipeWire. New connections get the new policy, connected ones keep theirs, a bad file is refused.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePeerDirs, type PeerDirs } from "../../src/harness/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../../src/harness/crossway-stack.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { controlStatus } from "../helpers/control-status.ts";
import { type CrosswayCommand, startCrosswayCommand } from "../helpers/crossway-command.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire } from "../helpers/pipewire.ts";
import { run, spawnTracked, waitFor } from "../helpers/processes.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));
/** A reload is one event-loop turn of the proxy; tsx start-up of `crossway status` dominates on a loaded machine. */
const STEP_TIMEOUT_MS = 30_000;

async function statusTable(control: string): Promise<string> {
  const r = await run(process.execPath, [BIN, "status", "--control", control], {
    timeoutMs: STEP_TIMEOUT_MS,
  });
  expect(r.code, r.stderr.toString()).toBe(0);
  return r.stdout.toString();
}

/** Counts occurrences of `needle` in `text`: each reload prints one line, so the n-th line is the answer. */
function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

async function connectWithRegistry(path: string): Promise<{ client: WaylandTestClient; registry: number }> {
  const client = WaylandTestClient.connect(path);
  const registry = await client.getRegistry();
  return { client, registry };
}

function hasGlobal(c: WaylandTestClient, iface: string): boolean {
  return [...c.globals.values()].some((g) => g.iface === iface);
}

describe("crossway guest: status and reload", () => {
  let weston: Compositor;
  let stack: CrosswayStack;
  let dirs: PeerDirs;
  let config: string;
  let control: string;
  const clients: WaylandTestClient[] = [];

  beforeAll(async () => {
    weston = await startWeston();
    dirs = makePeerDirs("reload");
    mkdirSync(dirs.base, { recursive: true });
    config = join(dirs.base, "guest.json");
    control = join(dirs.base, "guest.ctl");
    writeFileSync(config, JSON.stringify({ titlePrefix: "[one] " }));
    stack = await startCrosswayStack(weston, { guestArgs: ["--config", config, "--control", control] });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await stack?.stop();
    await weston?.stop();
    dirs?.remove();
  });

  it("lists a client's app_id, title and objects; a reload applies to new clients only; a bad file is refused", async () => {
    const a = await connectWithRegistry(stack.socketPath);
    clients.push(a.client);
    expect(hasGlobal(a.client, "wp_viewporter")).toBe(true);
    const compositor = a.client.bind(a.registry, "wl_compositor", 4);
    const wmBase = a.client.bind(a.registry, "xdg_wm_base", 1);
    const surface = a.client.newId();
    a.client.request(compositor, "wl_compositor", "create_surface", (w) => w.uint(surface));
    const xdgSurface = a.client.newId();
    a.client.request(wmBase, "xdg_wm_base", "get_xdg_surface", (w) => w.uint(xdgSurface).uint(surface));
    const toplevel = a.client.newId();
    a.client.request(xdgSurface, "xdg_surface", "get_toplevel", (w) => w.uint(toplevel));
    a.client.request(toplevel, "xdg_toplevel", "set_title", (w) => w.string("status\ttest"));
    a.client.request(toplevel, "xdg_toplevel", "set_app_id", (w) => w.string("org.example.A"));
    await a.client.roundtrip();

    const s1 = await controlStatus(control);
    expect(s1).toMatchObject({ command: "guest", policyFile: config, policyGeneration: 1 });
    expect(s1.connections).toHaveLength(1);
    // Outside truth for refusals: the globals weston offers that the proxy did not show (the default allowlist).
    const direct = await connectWithRegistry(weston.socketPath);
    const hidden1 = direct.client.globals.size - a.client.globals.size;
    direct.client.close();
    expect(hidden1).toBeGreaterThan(0);
    const c1 = s1.connections[0];
    expect(c1).toMatchObject({
      appId: "org.example.A",
      title: "status\ttest",
      refusals: hidden1,
      policyGeneration: 1,
    });
    // wl_display, registry, 3 sync callbacks already destroyed, compositor, wm_base, surface, xdg_surface, toplevel.
    expect(c1?.objects).toBeGreaterThanOrEqual(7);
    const table = await statusTable(control);
    expect(table).toMatch(
      /^crossway guest \(pid \d+, up \d+s\), policy .*guest\.json generation 1, 1 connection$/m,
    );
    expect(table).toMatch(
      new RegExp(
        `^c\\d+\\s+org\\.example\\.A\\s+status\\?test\\s+\\d+\\s+\\d+ B\\s+\\d+ B\\s+\\d+s\\s+${hidden1}\\s+1$`,
        "m",
      ),
    );

    // Reload: viewporter hidden from now on.
    writeFileSync(config, JSON.stringify({ titlePrefix: "[two] ", globals: { wp_viewporter: false } }));
    process.kill(stack.guestPid, "SIGHUP");
    await waitFor(
      "the guest's reload line",
      () => (count(stack.guestOutput(), "(generation 2)") === 1 ? true : undefined),
      { timeoutMs: STEP_TIMEOUT_MS },
    );
    const b = await connectWithRegistry(stack.socketPath);
    clients.push(b.client);
    expect(hasGlobal(b.client, "wp_viewporter")).toBe(false);
    // The connected client keeps its policy: a second registry still shows viewporter.
    a.client.globals.clear();
    await a.client.getRegistry();
    expect(hasGlobal(a.client, "wp_viewporter")).toBe(true);

    // A bad file: refused with its error, generation 2 stays.
    writeFileSync(config, JSON.stringify({ globals: { wp_viewporter: "nope" } }));
    process.kill(stack.guestPid, "SIGHUP");
    const refused = await waitFor(
      "the guest's refusal line",
      () =>
        stack
          .guestLog()
          .split("\n")
          .find((l) => l.startsWith("crossway guest: reload refused")),
      { timeoutMs: STEP_TIMEOUT_MS },
    );
    expect(refused).toContain("keeping generation 2");
    expect(refused).toContain(config);
    const c = await connectWithRegistry(stack.socketPath);
    clients.push(c.client);
    expect(hasGlobal(c.client, "wp_viewporter")).toBe(false);

    const s2 = await controlStatus(control);
    expect(s2.policyGeneration).toBe(2);
    const gens = s2.connections.map((x) => x.policyGeneration).sort();
    expect(gens).toEqual([1, 2, 2]);
    // Every hidden global is a refusal: generation 2 hides viewporter too; client A asked for two registries.
    const refusals = s2.connections.map((x) => [x.policyGeneration, x.refusals]).sort();
    expect(refusals).toEqual([
      [1, 2 * hidden1],
      [2, hidden1 + 1],
      [2, hidden1 + 1],
    ]);
    expect(stack.guestRunning()).toBe(true);
    for (const x of clients.splice(0)) x.close();
  });
});

describe("crossway pipewire-filter: status and reload", () => {
  let pw: PipeWireStack;
  let dirs: PeerDirs;
  let filter: CrosswayCommand | undefined;

  beforeAll(async () => {
    pw = await startPipeWire();
    dirs = makePeerDirs("pwreload");
    mkdirSync(dirs.base, { recursive: true });
  });

  afterAll(async () => {
    await filter?.stop();
    await pw?.stop();
    dirs?.remove();
  });

  it("new connections get the reloaded profile, a bad policy is refused, status lists the connections", async () => {
    const policy = join(dirs.base, "pipewire.json");
    const control = join(dirs.base, "pwf.ctl");
    const listen = join(dirs.base, "pwf.sock");
    writeFileSync(policy, JSON.stringify({ profile: "audio-playback" }));
    const started = await startCrosswayCommand(
      [
        "pipewire-filter",
        "--listen",
        listen,
        "--upstream",
        pw.socketPath,
        "--policy",
        policy,
        "--control",
        control,
      ],
      join(dirs.base, "filter.log"),
    );
    filter = started;
    const proc = started.proc;
    const out = (): string => started.stdout();
    const err = (): string => started.log();
    // pw-dump through the filter: what it shows depends on the profile (audio-playback: sinks; camera: sources).
    const dump = async (): Promise<string[]> => {
      const r = await run("pw-dump", [], {
        env: { ...pw.env, PIPEWIRE_REMOTE: listen },
        timeoutMs: STEP_TIMEOUT_MS,
      });
      expect(r.code, r.stderr.toString()).toBe(0);
      const objs = JSON.parse(r.stdout.toString()) as Array<{ info?: { props?: Record<string, unknown> } }>;
      return objs.map((o) => String(o.info?.props?.["media.class"] ?? "")).filter((c) => c !== "");
    };
    expect(await dump()).toContain("Audio/Sink");

    writeFileSync(policy, JSON.stringify({ profile: "camera" }));
    process.kill(proc.pid, "SIGHUP");
    await waitFor("the filter's reload line", () => (out().includes("(generation 2)") ? true : undefined), {
      timeoutMs: STEP_TIMEOUT_MS,
    });
    expect(await dump()).not.toContain("Audio/Sink");

    writeFileSync(policy, "{ not json");
    process.kill(proc.pid, "SIGHUP");
    await waitFor("the filter's refusal line", () => (err().includes("reload refused") ? true : undefined), {
      timeoutMs: STEP_TIMEOUT_MS,
    });
    expect(err()).toMatch(/reload refused, keeping generation 2: .*pipewire\.json: not JSON/);
    expect(await dump()).not.toContain("Audio/Sink");
    // A long-lived client (pw-mon) is listed with the generation it connected under.
    const mon = spawnTracked("pw-mon", "pw-mon", [], { env: { ...pw.env, PIPEWIRE_REMOTE: listen } });
    try {
      const s = await waitFor(
        "pw-mon in the filter's status",
        async () => {
          const r = await controlStatus(control);
          return r.connections.length === 1 && (r.connections[0]?.objects ?? 0) > 1 ? r : undefined;
        },
        { timeoutMs: STEP_TIMEOUT_MS },
      );
      expect(s).toMatchObject({ command: "pipewire-filter", policyFile: policy, policyGeneration: 2 });
      expect(s.connections[0]).toMatchObject({ policyGeneration: 2 });
    } finally {
      await mon.stop();
    }
    await proc.stop();
  });
});

describe("crossway wayland-filter: status and reload", () => {
  let weston: Compositor;
  let dirs: PeerDirs;

  beforeAll(async () => {
    weston = await startWeston();
    dirs = makePeerDirs("wlfreload");
    mkdirSync(dirs.base, { recursive: true });
  });

  afterAll(async () => {
    await weston?.stop();
    dirs?.remove();
  });

  it("new connections get the reloaded policy, connected ones keep theirs, a bad file is refused", async () => {
    const policy = join(dirs.base, "wayland.json");
    const control = join(dirs.base, "wlf.ctl");
    const listen = join(dirs.base, "wlf.sock");
    writeFileSync(policy, JSON.stringify({}));
    const filter = await startCrosswayCommand(
      [
        "wayland-filter",
        "--listen",
        listen,
        "--upstream",
        weston.socketPath,
        "--policy",
        policy,
        "--name",
        "vm1",
        "--control",
        control,
      ],
      join(dirs.base, "wlf.log"),
    );
    const clients: WaylandTestClient[] = [];
    try {
      const a = await connectWithRegistry(listen);
      clients.push(a.client);
      expect(hasGlobal(a.client, "wp_viewporter")).toBe(true);
      writeFileSync(policy, JSON.stringify({ globals: { wp_viewporter: false } }));
      process.kill(filter.proc.pid, "SIGHUP");
      await waitFor(
        "the filter's reload line",
        () => (filter.stdout().includes("(generation 2)") ? true : undefined),
        {
          timeoutMs: STEP_TIMEOUT_MS,
        },
      );
      const b = await connectWithRegistry(listen);
      clients.push(b.client);
      expect(hasGlobal(b.client, "wp_viewporter")).toBe(false);
      a.client.globals.clear();
      await a.client.getRegistry();
      expect(hasGlobal(a.client, "wp_viewporter")).toBe(true);
      writeFileSync(policy, JSON.stringify({ quotas: { nonsense: 1 } }));
      process.kill(filter.proc.pid, "SIGHUP");
      await waitFor(
        "the filter's refusal line",
        () => (filter.log().includes("reload refused") ? true : undefined),
        {
          timeoutMs: STEP_TIMEOUT_MS,
        },
      );
      expect(filter.log()).toMatch(
        /reload refused, keeping generation 2: .*wayland\.json: quotas: unknown key 'nonsense'/,
      );
      const s = await controlStatus(control);
      expect(s).toMatchObject({ command: "wayland-filter", policyFile: policy, policyGeneration: 2 });
      expect(s.connections.map((x) => x.policyGeneration).sort()).toEqual([1, 2]);
    } finally {
      for (const c of clients) c.close();
      await filter.stop();
    }
  });
});
