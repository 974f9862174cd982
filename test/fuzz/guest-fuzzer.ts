// Coverage-guided fuzzing of `crossway guest` (the guest's Wayland server), client → guest, with the real emulated
// device and sway behind it: request sequences from the XML tables (wayland-cases.ts) go to an in-process guest
// server; V8 block coverage of the guest's proxy, the wire engine and the cross-domain channel decides what joins the
// corpus. Shm pools, keymaps, clipboard pipes and damage copies all take the generated fds and sizes.
//
// Oracles: the guest never ends a connection for an unplanned reason (its "internal error" line, or any other line at
// error level), every connection it was given ends once the client is gone, it never leaks an fd, the device
// process and sway stay alive, and a second, well-behaved client on the same guest keeps getting its round trips.
// A failing input is saved as JSON.
//
// Usage: node --import tsx test/fuzz/guest-fuzzer.ts [--seconds N] [--seed N] [--out DIR]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { compositorPid } from "../../src/harness/compositor.ts";
import { spawnCrossway } from "../../src/harness/crossway-stack.ts";
import { waitFor } from "../../src/harness/processes.ts";
import { startSway } from "../../src/harness/sway.ts";
import { DEFAULT_GUEST_CONFIG } from "../../src/proxy/wayland/guest-config.ts";
import { GuestServer } from "../../src/proxy/wayland/guest-server.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { fuzzRun, processAlive, runCampaign, startCoverageTracker } from "./fuzz-support.ts";
import { type Case, playOnFreshClient, type ShownGlobal, WaylandCaseGenerator } from "./wayland-cases.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;
const registry = ProtocolRegistry.fromGenerated();

/** Globals the guest shows, learnt once. */
let globals: ShownGlobal[] = [];
const cases = new WaylandCaseGenerator(registry, rand, () => globals);

// ---------------------------------------------------------------- set-up
const coverage = startCoverageTracker(["/src/proxy/wayland/", "/src/wire/wayland/", "/src/crossdomain/"]);
const dir = mkdtempSync(join(tmpdir(), "crossway-guest-fuzz-"));
const sway = await startSway();
// Our sway, not any on the machine (a test beside this one may run its own): read once, checked per case.
const swayPid = compositorPid(sway);
const devSock = join(dir, "dev.sock");
const device = spawnCrossway(
  "crossway device",
  ["device", "--listen", devSock, "--wayland", sway.socketPath],
  { ...(process.env as Record<string, string>), CROSSWAY_LOG: "warn" },
  join(dir, "device.log"),
);
await waitFor(
  "crossway device's ready line",
  () => (device.stdout().includes("listening on") ? true : undefined),
  {
    timeoutMs: 60_000,
    abort: () => (device.proc.running ? undefined : "crossway device exited"),
    explain: () => `device stderr:\n${device.stderr().slice(-2000)}`,
  },
);

// The guest's log lines, kept in memory: refusals are warnings and expected; anything at error level is a finding.
const errors: string[] = [];
const log = pino(
  { level: "warn" },
  {
    write(line: string): void {
      const r = JSON.parse(line) as { level: number };
      if (r.level >= 50) errors.push(line.trim());
    },
  },
);
const guest = GuestServer.start({
  // No spare channel: the device's context count and this process's fds follow the clients alone.
  spareChannels: 0,
  device: `emulated:${devSock}`,
  socket: join(dir, "wayland-fuzz"),
  config: DEFAULT_GUEST_CONFIG,
  registry,
  log,
});
const listen = guest.socketPath as string;
const victim = WaylandTestClient.connect(listen);
await victim.getRegistry();
{
  const probe = RawWaylandClient.connect(listen);
  probe.getRegistry();
  await probe.roundTrip();
  globals = [...probe.globals].map(([name, g]) => ({ name, ...g }));
  probe.close();
}

async function stopAll(): Promise<void> {
  victim.close();
  guest.close();
  await device.proc.stop();
  await sway.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function fail(c: Case, why: string): Promise<never> {
  run.saveCrash("guest", Buffer.from(JSON.stringify(c)), why);
  await stopAll();
  process.exit(1);
}

async function runOne(c: Case): Promise<number> {
  await playOnFreshClient(listen, c, fail);
  const deadline = Date.now() + 5000;
  while (guest.clientCount > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  if (guest.clientCount > 1)
    await fail(c, `the guest did not end a closed connection: ${JSON.stringify(guest.status())}`);
  if (errors.length > 0) await fail(c, `the guest logged an error: ${errors.join("\n").slice(0, 3000)}`);
  try {
    await victim.roundtrip(10_000);
  } catch (err) {
    await fail(c, `the well-behaved client lost its connection: ${(err as Error).message}`);
  }
  if (!device.proc.running) await fail(c, `crossway device exited: ${device.stderr().slice(-2000)}`);
  if (!processAlive("sway", [swayPid])) await fail(c, "sway died");
  return coverage.newBlocks();
}

const stats = await runCampaign<Case>({
  run,
  coverage,
  corpus: cases.seeds(),
  next: (corpus) => cases.next(corpus),
  runOne,
  fail,
  fdOwner: "guest process",
});
await stopAll();
process.stdout.write(`${JSON.stringify({ seed, seconds, ...stats })}\n`);
