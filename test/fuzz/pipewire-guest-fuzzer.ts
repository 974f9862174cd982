// Coverage-guided fuzzing of `crossway guest`'s PipeWire socket, client → guest: mutated client message sequences,
// seeded from captured real traffic (pipewire-cases.ts), go through the whole chain as deployed, in process: the
// guest PipeWire server, the emulated device (libkrun flavour) and the host's PipeWire filter (the case's profile),
// to a real PipeWire daemon. The filter is there as deployed, and because the daemon is not hardened against raw
// clients: without it, two runs of seed 587054 ended with the daemon dead within a minute, after a few hundred cases
// (pipewire 0.3.65, "segfault at 4" in libpipewire at +0x39b70, a static function, not the NULL dict of
// docs/pipewire-filter.md); the last case alone, replayed on a fresh daemon, did not kill it.
// V8 block coverage of the guest's PipeWire proxy and the PipeWire wire code decides what joins the corpus.
//
// Oracles: no component ends a client for an unplanned reason (an error-level line from the guest or the device,
// an "internal" audit record from the filter), every client ends once it is gone, no fd leaks, the daemon stays
// alive, and a well-behaved client on each chain keeps getting its sync answers.
//
// Usage: node --import tsx test/fuzz/pipewire-guest-fuzzer.ts [--seconds N] [--seed N] [--out DIR]

import { join } from "node:path";
import pino from "pino";
import { startDevice } from "../../src/crossdomain/device.ts";
import { startPipeWire, TEST_SINK } from "../../src/harness/pipewire.ts";
import { startPipeWireFilter } from "../../src/proxy/pipewire/filter-server.ts";
import type { ProfileName } from "../../src/proxy/pipewire/policy.ts";
import { GuestPipeWireServer } from "../../src/proxy/pipewire-guest/server.ts";
import { RawPipeWireClient } from "../helpers/pipewire-raw-client.ts";
import { fuzzRun, processAlive, runCampaign, startCoverageTracker } from "./fuzz-support.ts";
import { type Case, PipeWireCaseGenerator, seedCases } from "./pipewire-cases.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;
const cases = new PipeWireCaseGenerator(rand);

// ---------------------------------------------------------------- set-up
const coverage = startCoverageTracker(["/src/proxy/pipewire-guest/", "/src/wire/pipewire/"]);
const stack = await startPipeWire();
// Refusals are warnings and expected; anything at error level is a finding.
const errors: string[] = [];
const log = pino(
  { level: "warn" },
  {
    write(line: string): void {
      if ((JSON.parse(line) as { level: number }).level >= 50) errors.push(line.trim());
    },
  },
);
/** One guest → device → filter chain per filter profile, each with its well-behaved client. */
interface Chain {
  guest: GuestPipeWireServer;
  device: ReturnType<typeof startDevice>;
  filter: ReturnType<typeof startPipeWireFilter>;
  victim: RawPipeWireClient;
}
const chains = new Map<ProfileName, Chain>();
for (const profile of ["camera", "audio-playback", "audio-capture"] as const) {
  const filter = startPipeWireFilter({
    listenPath: join(stack.runtimeDir, `fuzz-filter-${profile}`),
    upstreamPath: stack.socketPath,
    profile,
    targets: profile === "camera" ? [] : [TEST_SINK],
    audit: (r) => {
      if (r.reason === "internal") errors.push(`filter: ${JSON.stringify(r)}`);
    },
  });
  const device = startDevice({
    listen: join(stack.runtimeDir, `fuzz-device-${profile}.sock`),
    pipewire: filter.listenPath,
    config: { flavor: "libkrun", maxIdentifiers: 28 },
    logger: log,
  });
  const guest = GuestPipeWireServer.start({
    device: `emulated:${device.listenPath}`,
    socket: join(stack.runtimeDir, `fuzz-guest-${profile}`),
    flavor: "libkrun",
    log,
  });
  const victim = new RawPipeWireClient(guest.socketPath as string);
  victim.handshake({ "application.name": "crossway-fuzz-victim" });
  if (!(await victim.sync(30_000)))
    throw new Error(`the ${profile} victim got no sync answer through the chain`);
  chains.set(profile, { guest, device, filter, victim });
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function stopAll(): Promise<void> {
  for (const c of chains.values()) {
    c.victim.close();
    c.guest.close();
    c.device.close();
    c.filter.close();
  }
  await stack.stop();
}

async function fail(c: Case, why: string): Promise<never> {
  run.saveCrash("pipewire-guest", Buffer.concat(c.msgs.map((m) => Buffer.from(m))), why, {
    profile: c.profile,
  });
  await stopAll();
  process.exit(1);
}

async function runOne(c: Case): Promise<number> {
  const { guest, victim } = chains.get(c.profile) as Chain;
  const client = new RawPipeWireClient(guest.socketPath as string);
  for (const m of c.msgs) if (!client.sendRaw(m)) break;
  client.seq = c.msgs.length;
  await client.sync(2000);
  client.close();
  const deadline = Date.now() + 5000;
  while (guest.clientCount > 1 && Date.now() < deadline) await sleep(2);
  if (guest.clientCount > 1)
    await fail(c, `the guest did not end a closed client (${guest.clientCount} live)`);
  if (errors.length > 0) await fail(c, `an error-level line: ${errors.join("\n").slice(0, 3000)}`);
  if (!processAlive("pipewire", stack.pids)) await fail(c, "the PipeWire daemon died");
  if (!(await victim.sync(10_000))) {
    const said = victim.errors().map((e) => JSON.stringify(e.body));
    await fail(
      c,
      `the well-behaved client got no sync answer (${victim.closed ? "its connection closed" : "still connected"}; errors: ${said.join(", ") || "none"})`,
    );
  }
  return coverage.newBlocks();
}

const stats = await runCampaign<Case>({
  run,
  coverage,
  corpus: seedCases(),
  next: (corpus) => cases.mutate(corpus[rand(corpus.length)] as Case),
  runOne,
  fail,
  fdOwner: "guest and device",
});
await stopAll();
process.stdout.write(`${JSON.stringify({ seed, seconds, ...stats })}\n`);
