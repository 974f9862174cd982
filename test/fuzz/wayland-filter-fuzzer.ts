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

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CrosswayError } from "../../src/errors.ts";
import { startSway } from "../../src/harness/sway.ts";
import { componentLogger } from "../../src/log.ts";
import { native } from "../../src/native.ts";
import type { WlAuditRecord } from "../../src/proxy/wayland-filter/audit.ts";
import { defaultPolicy } from "../../src/proxy/wayland-filter/filter-policy.ts";
import { startWaylandFilter } from "../../src/proxy/wayland-filter/filter-server.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { ArgKind, type InterfaceDesc, ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { fuzzRun, startCoverageTracker } from "./fuzz-support.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;
const registry = ProtocolRegistry.fromGenerated();

/** One request of a case: the bytes, and which fds ride with it ("memfd:SIZE" or "pipe-w"). */
interface Msg {
  hex: string;
  fds: string[];
}
type Case = Msg[];

const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 64, 255, 4096, 0x7fff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
const STRINGS = ["", "a", "xdg_wm_base", "wl_seat", "text/plain", "é🙂", "x".repeat(300), "\u0000"];

/** Shown globals of the filter, learnt once: name -> interface, version. */
let globals: Array<{ name: number; iface: string; version: number }> = [];

/** Generates a plausible case from the tables: binds, then requests on live objects with mutated arguments. */
function generate(): Case {
  const objects = new Map<number, InterfaceDesc>([[1, registry.get("wl_display") as InterfaceDesc]]);
  // runOne made the registry (id 2) and a round trip (callback 3) first: binds name globals it has seen.
  const reg = 2;
  let next = 4;
  const out: Case = [];
  const push = (w: MessageWriter, fds: string[] = []): void => {
    out.push({ hex: Buffer.from(w.bytes()).toString("hex"), fds });
  };
  objects.set(reg, registry.get("wl_registry") as InterfaceDesc);
  for (let k = 1 + rand(4); k > 0 && globals.length > 0; k--) {
    const g = globals[rand(globals.length)] as (typeof globals)[number];
    const id = next++;
    const version = rand(8) === 0 ? g.version + 1 : 1 + rand(g.version);
    push(new MessageWriter().begin(reg, 0).uint(g.name).string(g.iface).uint(version).uint(id).end());
    const iface = registry.get(g.iface);
    if (iface !== undefined) objects.set(id, iface);
  }
  for (let k = 1 + rand(12); k > 0; k--) {
    const ids = [...objects.keys()];
    const target = ids[rand(ids.length)] as number;
    const iface = objects.get(target) as InterfaceDesc;
    if (iface.requests.length === 0) continue;
    const desc = iface.requests[rand(iface.requests.length)];
    if (desc === undefined) continue;
    const w = new MessageWriter({ maxMessageSize: 65532 });
    const fds: string[] = [];
    try {
      w.begin(rand(20) === 0 ? 1 + rand(64) : target, rand(30) === 0 ? rand(16) : desc.opcode);
      for (let i = 0; i < desc.kinds.length; i++) {
        switch (desc.kinds[i]) {
          case ArgKind.INT:
          case ArgKind.UINT:
          case ArgKind.FIXED:
            w.uint(rand(3) === 0 ? rand(1 << 16) : (INTERESTING[rand(INTERESTING.length)] as number));
            break;
          case ArgKind.STRING:
            w.string(rand(10) === 0 ? null : (STRINGS[rand(STRINGS.length)] as string));
            break;
          case ArgKind.OBJECT:
            w.uint(rand(6) === 0 ? rand(200) : rand(5) === 0 ? 0 : (ids[rand(ids.length)] as number));
            break;
          case ArgKind.NEW_ID: {
            if (desc.untypedNewId) w.string(STRINGS[rand(3)] as string).uint(1);
            const id = rand(15) === 0 ? rand(300) : next++;
            w.uint(id);
            const created = desc.argIfaces[i];
            const ci = created !== null && created !== undefined ? registry.get(created) : undefined;
            // A null new_id is sent (a mutation worth trying) but is no object to address later.
            if (ci !== undefined && id !== 0) objects.set(id, ci);
            break;
          }
          case ArgKind.ARRAY: {
            const a = new Uint8Array(rand(5) === 0 ? 4096 : rand(64));
            for (let j = 0; j < a.length; j++) a[j] = rand(256);
            w.array(a);
            break;
          }
          case ArgKind.FD:
            fds.push(rand(2) === 0 ? `memfd:${INTERESTING[rand(8)] as number}` : "pipe-w");
            break;
          default:
            w.uint(rand(256));
        }
      }
      w.end();
    } catch (err) {
      // The writer refuses what it cannot encode (over the size limit, a NUL in a string): try another message.
      if (err instanceof CrosswayError) continue;
      throw err;
    }
    push(w, fds);
    if (desc.destructor && rand(2) === 0) objects.delete(target);
  }
  return out;
}

/** Mutates a case: drop, duplicate, swap or bit-flip messages (sequence and size mutations). */
function mutate(c: Case): Case {
  const msgs = c.map((m) => ({ hex: m.hex, fds: [...m.fds] }));
  const i = rand(msgs.length);
  switch (rand(5)) {
    case 0:
      if (msgs.length > 1) msgs.splice(i, 1);
      break;
    case 1:
      msgs.splice(i, 0, msgs[rand(msgs.length)] as Msg);
      break;
    case 2:
      msgs.push(...generate());
      break;
    default: {
      const b = Buffer.from((msgs[i] as Msg).hex, "hex");
      const at = rand(b.length);
      b[at] = ((b[at] ?? 0) ^ (1 << rand(8))) & 0xff;
      (msgs[i] as Msg).hex = b.toString("hex");
    }
  }
  return msgs;
}

// ---------------------------------------------------------------- set-up
const coverage = startCoverageTracker(["/src/proxy/wayland-filter/", "/src/wire/wayland/"]);
const sway = await startSway();
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
const swayPids = (): number[] =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "sway";
      } catch {
        return false;
      }
    });
const victim = WaylandTestClient.connect(listen);
await victim.getRegistry();
{
  const probe = RawWaylandClient.connect(listen);
  probe.getRegistry();
  await probe.roundTrip();
  globals = [...probe.globals].map(([name, g]) => ({ name, ...g }));
  probe.close();
}
const fdsNow = (): number => readdirSync("/proc/self/fd").length;

async function fail(c: Case, why: string): Promise<never> {
  run.saveCrash("wayland-filter", Buffer.from(JSON.stringify(c)), why);
  victim.close();
  filter.close();
  await sway.stop();
  process.exit(1);
}

async function runOne(c: Case): Promise<number> {
  const before = audit.length;
  const a = RawWaylandClient.connect(listen);
  a.getRegistry();
  try {
    await a.roundTrip(5000);
  } catch (err) {
    await fail(c, `the filter did not answer a fresh client: ${(err as Error).message}`);
  }
  for (const m of c) {
    const bytes = Buffer.from(m.hex, "hex");
    const fds: number[] = [];
    for (const f of m.fds) {
      if (f === "pipe-w") {
        const [r, w] = native.pipe2();
        native.close(r);
        fds.push(w);
      } else {
        const fd = native.memfdCreate("fuzz", 0);
        native.ftruncate(fd, Number(f.slice(6)));
        fds.push(fd);
      }
    }
    try {
      if (fds.length > 0) native.sendmsg(a.fd, bytes, 0, bytes.length, fds);
      else a.send(bytes, 1000);
    } catch {
      // The filter already ended the connection.
    } finally {
      for (const fd of fds) native.close(fd);
    }
    if (a.eof) break;
  }
  try {
    await a.roundTrip(5000);
  } catch {
    // Refused or disconnected: expected for most mutated cases.
  }
  a.close();
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
  if (swayPids().length === 0) await fail(c, "sway died");
  return coverage.newBlocks();
}

coverage.newBlocks();
const corpus: Case[] = [];
for (let i = 0; i < 20; i++) corpus.push(generate());
const baseFds = fdsNow();
for (const c of corpus) await runOne(c);
const seedCount = corpus.length;
const seedBlocks = coverage.total;
const deadline = Date.now() + seconds * 1000;
let execs = seedCount;
while (Date.now() < deadline) {
  const child = rand(4) === 0 ? generate() : mutate(corpus[rand(corpus.length)] as Case);
  execs++;
  if ((await runOne(child)) > 0) corpus.push(child);
  if (execs % 50 === 0) {
    const n = fdsNow();
    if (n > baseFds + 8) await fail(child, `filter process fds grew from ${baseFds} to ${n}`);
  }
}
const rules = new Map<string, number>();
for (const r of audit) rules.set(r.rule, (rules.get(r.rule) ?? 0) + 1);
victim.close();
filter.close();
await sway.stop();
process.stdout.write(
  `${JSON.stringify({ seed, seconds, execs, seeds: seedCount, corpus: corpus.length, seedBlocks, blocks: coverage.total, rules: Object.fromEntries(rules) })}\n`,
);
