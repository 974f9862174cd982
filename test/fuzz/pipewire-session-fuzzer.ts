// Coverage-guided fuzzing of the filter's session logic (allowlists, property rules, param schemas) end to end:
// mutated client message sequences, seeded from captured real traffic, go through an in-process filter to a real
// PipeWire daemon. V8 block coverage of src/proxy/pipewire and src/wire/pipewire decides what joins the corpus.
//
// Oracles: the filter never refuses for an unexpected reason ("internal": an exception its handlers did not
// anticipate), it never leaks an fd, and it keeps serving; the daemon stays alive.
//
// Usage: node --import tsx test/fuzz/pipewire-session-fuzzer.ts [--seconds N] [--seed N] [--out DIR]

import { join } from "node:path";
import { startPipeWire, TEST_SINK } from "../../src/harness/pipewire.ts";
import type { AuditRecord } from "../../src/proxy/pipewire/audit.ts";
import { startPipeWireFilter } from "../../src/proxy/pipewire/filter-server.ts";
import type { ProfileName } from "../../src/proxy/pipewire/policy.ts";
import { RawPipeWireClient } from "../helpers/pipewire-raw-client.ts";
import { fuzzRun, processAlive, runCampaign, startCoverageTracker } from "./fuzz-support.ts";
import { type Case, PipeWireCaseGenerator, seedCases } from "./pipewire-cases.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;

const cases = new PipeWireCaseGenerator(rand);

// ---------------------------------------------------------------- coverage
/** Blocks of the code under test run since the last call that were never run before. */
const coverage = startCoverageTracker(["/src/proxy/pipewire/", "/src/wire/pipewire/"]);
const newCoverage = (): number => coverage.newBlocks();

// ---------------------------------------------------------------- run
const stack = await startPipeWire();
const audit: AuditRecord[] = [];
const filters = new Map<ProfileName, ReturnType<typeof startPipeWireFilter>>();
for (const profile of ["camera", "audio-playback", "audio-capture"] as const) {
  filters.set(
    profile,
    startPipeWireFilter({
      listenPath: join(stack.runtimeDir, `fuzz-${profile}`),
      upstreamPath: stack.socketPath,
      profile,
      targets: profile === "camera" ? [] : [TEST_SINK],
      audit: (r) => audit.push(r),
    }),
  );
}

async function fail(c: Case, why: string): Promise<never> {
  run.saveCrash("session", Buffer.concat(c.msgs.map((m) => Buffer.from(m))), why, { profile: c.profile });
  for (const f of filters.values()) f.close();
  await stack.stop();
  process.exit(1);
}

async function runOne(c: Case): Promise<number> {
  const filter = filters.get(c.profile)!;
  const before = audit.length;
  const client = new RawPipeWireClient(filter.listenPath);
  for (const m of c.msgs) if (!client.sendRaw(m)) break;
  client.seq = c.msgs.length;
  await client.sync(2000);
  client.close();
  const deadline = Date.now() + 3000;
  while (filter.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  if (filter.sessions.size > 0) await fail(c, "the filter did not drop a closed connection");
  if (!processAlive("pipewire", stack.pids)) await fail(c, "the PipeWire daemon died");
  const internal = audit.slice(before).find((r) => r.reason === "internal");
  if (internal !== undefined) await fail(c, `unexpected exception in the filter: ${internal.detail ?? ""}`);
  return newCoverage();
}

const stats = await runCampaign<Case>({
  run,
  coverage,
  corpus: seedCases(),
  next: (corpus) => cases.mutate(corpus[rand(corpus.length)] as Case),
  runOne,
  fail,
  fdOwner: "filter",
});
const reasons = new Map<string, number>();
for (const r of audit) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
for (const f of filters.values()) f.close();
await stack.stop();
process.stdout.write(`${JSON.stringify({ seed, seconds, ...stats, refusalReasons: reasons.size })}\n`);
