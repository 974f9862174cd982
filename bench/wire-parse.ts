// Parse+validate throughput of the Wayland wire engine on captured real traffic, in messages per second.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import Benchmark from "benchmark";
import { MessageFramer, NEED_MORE } from "../src/wire/wayland/framer.ts";
import { ProtocolRegistry } from "../src/wire/wayland/protocol-registry.ts";
import { Direction, WireConnection } from "../src/wire/wayland/wire-connection.ts";
import { loadFixtures } from "../test/helpers/wayland-fixtures.ts";

const registry = ProtocolRegistry.fromGenerated();
const fixtures = loadFixtures().map((f) => ({
  name: f.name,
  chunks: f.chunks.map((c) => ({
    dir: c.d === "c2s" ? Direction.REQUEST : Direction.EVENT,
    bytes: new Uint8Array(Buffer.from(c.b64, "base64")),
    fds: c.fds,
  })),
}));

/** Replays every capture through a fresh connection (framing, validation, object map); returns messages parsed. */
function parseAll(): number {
  let n = 0;
  for (const f of fixtures) {
    const conn = new WireConnection(registry);
    for (const c of f.chunks) {
      conn.framer(c.dir).push(c.bytes);
      for (let i = 0; i < c.fds; i++) conn.fdQueue(c.dir).push(3);
      while (conn.next(c.dir) !== NEED_MORE) n++;
    }
  }
  return n;
}

// Framing alone over a 64 KiB stream of real requests and events.
const stream = Buffer.concat(fixtures.flatMap((f) => f.chunks.map((c) => c.bytes)));
const frame64k = new Uint8Array(65536);
let filled = 0;
let framedPer64k = 0;
// The corpus is smaller than 64 KiB: repeat its messages until the window is full.
for (let full = false; !full; ) {
  const f = new MessageFramer();
  f.push(stream);
  for (let v = f.next(); v !== NEED_MORE; v = f.next()) {
    if (filled + v.size > frame64k.length) {
      full = true;
      break;
    }
    frame64k.set(v.bytes.subarray(v.offset, v.offset + v.size), filled);
    filled += v.size;
    framedPer64k++;
  }
}
function frameOnly(): number {
  const f = new MessageFramer({ capacity: 65536 });
  f.push(frame64k, 0, filled);
  let n = 0;
  while (f.next() !== NEED_MORE) n++;
  return n;
}

const perReplay = parseAll();
const commit = (() => {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
})();
const cpu = cpus()[0]?.model ?? "unknown cpu";
process.stdout.write(
  `machine: ${cpu} x${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}; commit ${commit}\n` +
    `corpus: ${fixtures.length} captures, ${perReplay} messages, ${stream.length} bytes; framing window ${framedPer64k} messages in ${filled} bytes\n`,
);

const results: { name: string; msgsPerSec: number; rme: number }[] = [];
new Benchmark.Suite("wire-parse")
  .add("parse+validate (framer, decode, object map) on captured traffic", () => {
    parseAll();
  })
  .add("framing only, 64 KiB window", () => {
    frameOnly();
  })
  .on("cycle", (e) => {
    const per = e.target.name.startsWith("framing") ? framedPer64k : perReplay;
    const msgs = e.target.hz * per;
    results.push({ name: e.target.name, msgsPerSec: Math.round(msgs), rme: e.target.stats.rme });
    process.stdout.write(
      `${e.target.name}: ${Math.round(msgs).toLocaleString("en-US")} msgs/s (±${e.target.stats.rme.toFixed(1)}%, ${e.target.stats.sample.length} samples)\n`,
    );
  })
  .on("complete", () => {
    const record = {
      bench: "wire-parse",
      date: new Date().toISOString(),
      commit,
      node: process.version,
      cpu,
      cores: cpus().length,
      messagesPerReplay: perReplay,
      results,
    };
    process.stdout.write(`${JSON.stringify(record)}\n`);
    // Kept in the repo as the last recorded run (compare only runs from one machine and one session).
    const dir = new URL("./results/", import.meta.url);
    mkdirSync(dir, { recursive: true });
    writeFileSync(new URL("wire-parse.json", dir), `${JSON.stringify(record, null, 2)}\n`);
  })
  .run({ async: false });
