// Bytes `crossway guest` allocates per Wayland round trip, and where: V8's sampling heap profiler (collected objects
// included) over an in-process guest in front of a real `crossway device` and headless weston, while the C client
// bench/clients/roundtrip.c runs wl_display_roundtrip in a loop. A measurement, not a test: it prints and records.
//
// Usage: npm run bench:alloc -- [--round-trips N] [--interval BYTES] [--top N]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pino from "pino";
import { spawnCrossway } from "../src/harness/crossway-stack.ts";
import { waitFor } from "../src/harness/processes.ts";
import { startWeston } from "../src/harness/weston.ts";
import { DEFAULT_GUEST_CONFIG } from "../src/proxy/wayland/guest-config.ts";
import { GuestServer } from "../src/proxy/wayland/guest-server.ts";
import { ProtocolRegistry } from "../src/wire/wayland/protocol-registry.ts";
import { buildClients } from "./lib/build.ts";
import { gitState, machineInfo } from "./lib/machine.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: o } = parseArgs({
  options: {
    "round-trips": { type: "string", default: "20000" },
    interval: { type: "string", default: "256" },
    top: { type: "string", default: "15" },
    out: { type: "string", default: join(REPO_ROOT, "bench/results") },
  },
});
const roundTrips = Number(o["round-trips"]);
const top = Number(o.top);

/** A node of V8's sampling heap profile. */
interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const bins = await buildClients(
  join(REPO_ROOT, "bench/clients"),
  join(REPO_ROOT, "node_modules/.cache/crossway-bench"),
);
const dir = mkdtempSync(join(tmpdir(), "crossway-bench-alloc-"));
const weston = await startWeston();
const device = spawnCrossway(
  "crossway device",
  ["device", "--listen", join(dir, "device.sock"), "--wayland", weston.socketPath],
  { ...(process.env as Record<string, string>), CROSSWAY_LOG: "warn" },
  join(dir, "device.log"),
);
const guest = await (async () => {
  await waitFor(
    "crossway device's ready line",
    () => (device.stdout().includes("listening on") ? true : undefined),
    {
      timeoutMs: 30_000,
    },
  );
  return GuestServer.start({
    device: `emulated:${join(dir, "device.sock")}`,
    socket: join(dir, "wayland-alloc"),
    config: DEFAULT_GUEST_CONFIG,
    registry: ProtocolRegistry.fromGenerated(),
    log: pino({ level: "warn" }),
  });
})();
const session = new Session();
session.connect();
try {
  // roundtrip.c: warm-up, "ready" (waits for a line), the measured loop, "result {...}" (waits for a line).
  const client = spawn(bins.roundtrip, [String(roundTrips), "2000", "600000"], {
    env: { WAYLAND_DISPLAY: guest.socketPath as string, XDG_RUNTIME_DIR: dir },
    stdio: ["pipe", "pipe", "inherit"],
  });
  let profile: { head: ProfileNode } | undefined;
  let result = "";
  for await (const line of createInterface({ input: client.stdout })) {
    if (line === "ready") {
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: Number(o.interval),
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      client.stdin.write("go\n");
    } else if (line.startsWith("result ")) {
      profile = ((await session.post("HeapProfiler.stopSampling")) as { profile: { head: ProfileNode } })
        .profile;
      result = line.slice(7);
      client.stdin.end("go\n");
    }
  }
  if (profile === undefined) throw new Error("the round-trip client gave no result");
  // Self bytes by function, with the caller for the builtins that allocate for someone else (subarray, Map ops).
  const bySite = new Map<string, number>();
  let total = 0;
  const name = (n: ProfileNode): string =>
    `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").slice(-2).join("/")}`.trim();
  const walk = (n: ProfileNode, caller: string): void => {
    const here = name(n);
    const key = n.callFrame.url === "" && caller !== "" ? `${here} <- ${caller}` : here;
    total += n.selfSize;
    if (n.selfSize > 0) bySite.set(key, (bySite.get(key) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c, here);
  };
  walk(profile.head, "");
  const perRoundTrip = total / roundTrips;
  const sites = [...bySite]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([site, bytes]) => ({ site, bytesPerRoundTrip: Math.round((bytes / roundTrips) * 10) / 10 }));
  const report = {
    what: "crossway guest: bytes allocated per wl_display_roundtrip (sampling heap profiler, collected included)",
    roundTrips,
    samplingInterval: Number(o.interval),
    bytesPerRoundTrip: Math.round(perRoundTrip),
    client: JSON.parse(result) as unknown,
    sites,
    machine: machineInfo(),
    git: gitState(REPO_ROOT),
    date: new Date().toISOString(),
  };
  writeFileSync(join(o.out as string, "latest-alloc.json"), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(
    `crossway guest allocates ${Math.round(perRoundTrip)} B per round trip (${roundTrips})\n`,
  );
  for (const s of sites) process.stdout.write(`${String(s.bytesPerRoundTrip).padStart(8)} B  ${s.site}\n`);
} finally {
  session.disconnect();
  guest.close();
  await device.proc.stop();
  await weston.stop();
  rmSync(dir, { recursive: true, force: true });
}
