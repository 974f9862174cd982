// Coverage-guided fuzzing of the host-side Wayland filter, guest → host, with real sway behind it: request
// sequences generated from the XML tables (valid-looking messages with mutated arguments, ids, fds, sizes and
// orders) go through an in-process filter; V8 block coverage of the filter and the wire engine decides what joins
// the corpus.
//
// Oracles: the filter never ends a connection for an unplanned reason (audit rule "internal"), it never leaks an
// fd, sway stays alive, and a second, well-behaved client on the same filter keeps getting its round trips (a
// compositor disconnect of the other client is a failure). A failing input is saved as JSON.
//
// Usage: node --import tsx test/fuzz/wayland-filter-fuzzer.ts [--seconds N] [--seed N] [--out DIR]

import { join } from "node:path";
import { compositorPid } from "../../src/harness/compositor.ts";
import { startSway } from "../../src/harness/sway.ts";
import { componentLogger } from "../../src/log.ts";
import type { WlAuditRecord } from "../../src/proxy/wayland-filter/audit.ts";
import { defaultPolicy } from "../../src/proxy/wayland-filter/filter-policy.ts";
import { startWaylandFilter } from "../../src/proxy/wayland-filter/filter-server.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { fuzzRun, processAlive, runCampaign, startCoverageTracker } from "./fuzz-support.ts";
import { type Case, playOnFreshClient, type ShownGlobal, WaylandCaseGenerator } from "./wayland-cases.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;
const registry = ProtocolRegistry.fromGenerated();

/** Shown globals of the filter, learnt once. */
let globals: ShownGlobal[] = [];
const cases = new WaylandCaseGenerator(registry, rand, () => globals);

// ---------------------------------------------------------------- set-up
const coverage = startCoverageTracker(["/src/proxy/wayland-filter/", "/src/wire/wayland/"]);
const sway = await startSway();
// Our sway, not any on the machine (a test beside this one may run its own): read once, checked per case.
const swayPid = compositorPid(sway);
const audit: WlAuditRecord[] = [];
// Refusals are the normal outcome here: only errors are worth printing.
const quietLog = componentLogger("wayland-filter-fuzz");
quietLog.level = "error";
const filter = startWaylandFilter({
  listenPath: join(sway.runtimeDir, "..", "fuzz-filter.sock"),
  upstreamPath: sway.socketPath,
  policy: { ...defaultPolicy("fuzz"), quotas: { ...defaultPolicy("fuzz").quotas, objects: 2000 } },
  registry,
  audit: (r) => audit.push(r),
  log: quietLog,
});
const listen = filter.listenPath as string;
const victim = WaylandTestClient.connect(listen);
await victim.getRegistry();
{
  const probe = RawWaylandClient.connect(listen);
  probe.getRegistry();
  await probe.roundTrip();
  globals = [...probe.globals].map(([name, g]) => ({ name, ...g }));
  probe.close();
}

async function fail(c: Case, why: string): Promise<never> {
  run.saveCrash("wayland-filter", Buffer.from(JSON.stringify(c)), why);
  victim.close();
  filter.close();
  await sway.stop();
  process.exit(1);
}

async function runOne(c: Case): Promise<number> {
  const before = audit.length;
  await playOnFreshClient(listen, c, fail);
  const deadline = Date.now() + 5000;
  while (filter.sessions.size > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  if (filter.sessions.size > 1) {
    const stuck = [...filter.sessions].map((x) => x.ioState());
    await fail(c, `the filter did not drop a closed connection: ${JSON.stringify(stuck)}`);
  }
  const internal = audit.slice(before).find((r) => r.rule === "internal");
  if (internal !== undefined) await fail(c, `unplanned error in the filter: ${internal.detail}`);
  try {
    await victim.roundtrip(10_000);
  } catch (err) {
    await fail(c, `the well-behaved client lost its connection: ${(err as Error).message}`);
  }
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
  fdOwner: "filter process",
});
const rules = new Map<string, number>();
for (const r of audit) rules.set(r.rule, (rules.get(r.rule) ?? 0) + 1);
victim.close();
filter.close();
await sway.stop();
process.stdout.write(`${JSON.stringify({ seed, seconds, ...stats, rules: Object.fromEntries(rules) })}\n`);
