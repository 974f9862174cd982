// Coverage-guided fuzzer for the PipeWire framing and strict POD validator, seeded from captured real traffic.
//
// Jazzer.js was the first choice but cannot run here: @jazzer.js/core 4.x ships only prebuilt fuzzer addons that
// need GLIBC 2.38 (Debian 12 has 2.36), its npm package carries no sources to rebuild from, and 2.x fetches its
// prebuilds from github.com at install time. So this is the same idea in plain Node: V8 block coverage from
// node:inspector (Profiler.takePreciseCoverage after every input) decides which mutated inputs join the corpus.
//
// Oracles: only CrosswayError may escape the code under test; every payload the validator accepts must re-encode
// byte for byte; no input may take longer than 2 s; the heap must stay bounded.
//
// Usage: node --import tsx test/fuzz/pipewire-fuzzer.ts [--seconds N] [--seed N] [--out DIR]

import { CrosswayError } from "../../src/errors.ts";
import { decodePayload, encodeHeader, encodeMessage, Framer } from "../../src/wire/pipewire/framing.ts";
import { decodePod, STRICT_POD_LIMITS } from "../../src/wire/pipewire/pod-reader.ts";
import { checkSignature, EVENTS, METHODS } from "../../src/wire/pipewire/protocol.ts";
import { loadCaptures } from "../helpers/pipewire-fixtures.ts";
import { malformedCorpus } from "../helpers/pipewire-malformed.ts";
import { fuzzRun, startCoverageTracker } from "./fuzz-support.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;

const S2C = { ...STRICT_POD_LIMITS, maxDepth: 16, maxPods: 65536, maxString: 65536, maxElements: 4096 };
const SPECS = [...Object.values(METHODS), ...Object.values(EVENTS)].flatMap((t) =>
  t.filter((s) => s !== undefined && s.sig !== "*"),
);

/** The code under test. Throws only for bugs (anything that is not a CrosswayError, or a failed oracle). */
function target(data: Uint8Array): void {
  // Framing with a split point taken from the data, so partial reads are exercised too.
  const framer = new Framer(64 * 1024);
  const cut = data.length === 0 ? 0 : (data[0] as number) % (data.length + 1);
  try {
    framer.push(data.subarray(0, cut));
    let f = framer.next();
    framer.push(data.subarray(cut));
    for (f = f ?? framer.next(); f !== null; f = framer.next()) {
      const d = decodePayload(f.payload, f.nFds > 4 ? 0 : f.nFds);
      const again = encodeMessage(f.id, f.opcode, f.seq, f.nFds, d.body, d.footer).subarray(16);
      if (Buffer.compare(Buffer.from(again), Buffer.from(f.payload)) !== 0) {
        throw new Error("oracle: an accepted payload does not re-encode byte for byte");
      }
      const spec = SPECS[f.opcode % SPECS.length];
      if (spec !== undefined) {
        try {
          checkSignature(d.body.fields, spec.sig, spec.name, (f.id & 1) === 0);
        } catch (e) {
          if (!(e instanceof CrosswayError)) throw e;
        }
      }
    }
  } catch (e) {
    if (!(e instanceof CrosswayError)) throw e;
  }
  // The POD reader directly, at offset 0, with the daemon-side limits.
  try {
    decodePod(data, 0, data.length, S2C);
  } catch (e) {
    if (!(e instanceof CrosswayError)) throw e;
  }
}

// ---------------------------------------------------------------- coverage
/** Blocks of the code under test run since the last call that were never run before. */
const coverage = startCoverageTracker(["/src/wire/pipewire/"]);
const newCoverage = (): number => coverage.newBlocks();

// ---------------------------------------------------------------- corpus and mutation
const corpus: Uint8Array[] = [];
for (const msgs of loadCaptures().values()) for (const m of msgs) corpus.push(m.bytes);
for (const mc of malformedCorpus()) {
  const msg = new Uint8Array(16 + mc.payload.length);
  msg.set(encodeHeader(0, 2, mc.payload.length, 0, 0), 0);
  msg.set(mc.payload, 16);
  corpus.push(msg);
}
const seedCount = corpus.length;

const INTERESTING = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  13,
  14,
  15,
  16,
  19,
  20,
  21,
  0x7f,
  0x80,
  0xff,
  0xffff,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  1 << 20,
  (1 << 20) - 1,
  (1 << 24) - 1,
];

function mutate(src: Uint8Array): Uint8Array {
  let b = new Uint8Array(src);
  const n = 1 + rand(4);
  for (let k = 0; k < n; k++) {
    const len = b.length;
    switch (rand(8)) {
      case 0:
        if (len > 0) b[rand(len)] = (b[rand(len)] as number) ^ (1 << rand(8));
        break;
      case 1:
        if (len > 0) b[rand(len)] = [0, 1, 0x7f, 0x80, 0xff][rand(5)] as number;
        break;
      case 2:
        if (len >= 4)
          new DataView(b.buffer).setUint32(
            rand(len >> 2) * 4,
            INTERESTING[rand(INTERESTING.length)] as number,
            true,
          );
        break;
      case 3:
        if (len >= 4) {
          const v = new DataView(b.buffer);
          const at = rand(len >> 2) * 4;
          v.setUint32(at, (v.getUint32(at, true) + [-8, -4, -1, 1, 4, 8][rand(6)]!) >>> 0, true);
        }
        break;
      case 4: {
        // Delete a chunk.
        if (len > 8) {
          const a = rand(len);
          const c = 1 + rand(Math.min(64, len - a));
          const out = new Uint8Array(len - c);
          out.set(b.subarray(0, a));
          out.set(b.subarray(a + c), a);
          b = out;
        }
        break;
      }
      case 5: {
        // Duplicate a chunk (8-aligned, so POD boundaries stay plausible).
        if (len >= 16 && len < 60000) {
          const a = rand(len >> 3) * 8;
          const c = 8 * (1 + rand(Math.min(8, (len - a) >> 3 || 1)));
          const chunk = b.slice(a, Math.min(len, a + c));
          const out = new Uint8Array(len + chunk.length);
          out.set(b.subarray(0, a));
          out.set(chunk, a);
          out.set(b.subarray(a), a + chunk.length);
          b = out;
        }
        break;
      }
      case 6: {
        // Splice with another corpus entry.
        const other = corpus[rand(corpus.length)] as Uint8Array;
        const a = rand(len + 1);
        const c = rand(other.length + 1);
        const out = new Uint8Array(a + other.length - c);
        out.set(b.subarray(0, a));
        out.set(other.subarray(c), a);
        b = out;
        break;
      }
      default:
        if (len > 1) b = b.slice(0, rand(len));
    }
  }
  return b;
}

// ---------------------------------------------------------------- loop
function crash(input: Uint8Array, why: string): never {
  run.saveCrash("crash", input, why);
  process.exit(1);
}

function runOne(input: Uint8Array): number {
  const t0 = performance.now();
  try {
    target(input);
  } catch (e) {
    crash(input, e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e));
  }
  const ms = performance.now() - t0;
  if (ms > 2000) crash(input, `slow input: ${ms.toFixed(0)} ms`);
  return newCoverage();
}

newCoverage(); // Drop what module loading ran.
for (const c of corpus) runOne(c);
const seedBlocks = coverage.total;
const deadline = Date.now() + seconds * 1000;
let execs = corpus.length;
let peakHeap = 0;
while (Date.now() < deadline) {
  for (let i = 0; i < 64; i++) {
    const parent = corpus[rand(corpus.length)] as Uint8Array;
    const child = mutate(parent);
    execs++;
    if (runOne(child) > 0) corpus.push(child);
  }
  const heap = process.memoryUsage().heapUsed;
  peakHeap = Math.max(peakHeap, heap);
  // Below the child's 512 MiB V8 cap, so growth is reported as a finding instead of an out-of-memory abort.
  if (heap > 384 * 1024 * 1024) crash(new Uint8Array(0), `heap grew to ${heap} bytes`);
}
process.stdout.write(
  `${JSON.stringify({ seed, seconds, execs, seeds: seedCount, corpus: corpus.length, seedBlocks, blocks: coverage.total, peakHeapMiB: Math.round(peakHeap / 1048576) })}\n`,
);
