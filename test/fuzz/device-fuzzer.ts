// Coverage-guided fuzzing of `crossway device` (the emulated VMM's host side), guest → host. Cases are frame
// sequences a hostile guest kernel could send: GET_PARAMS, GET_CAPS, CONTEXT_INIT, CREATE_BLOB with fds,
// CLOSE_RESOURCE and SUBMIT. The SUBMITs carry cross-domain commands (INIT, GET_IMAGE_REQUIREMENTS, POLL, SEND,
// READ, WRITE, the futex and eventfd commands) made with the codec's encoders, then mutated. Real sway is behind an
// in-process device; V8 block coverage of src/crossdomain/ decides what joins the corpus.
//
// Oracles: the device never logs at error level (an unplanned failure), every context ends once its guest side is
// gone, no fd leaks, sway stays alive, and a well-behaved guest on the same device (an in-process `crossway guest`
// with a Wayland client) keeps getting its round trips. A failing input is saved as JSON.
//
// Usage: node --import tsx test/fuzz/device-fuzzer.ts [--seconds N] [--seed N] [--out DIR]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import {
  encodeGetImageRequirements,
  encodeIdCommand,
  encodeInit,
  encodePoll,
  encodeReadWrite,
  encodeSendReceive,
  type InitForm,
  newIdentifierList,
} from "../../src/crossdomain/codec.ts";
import { startDevice } from "../../src/crossdomain/device.ts";
import { buildFrame, FrameType, u64Fields } from "../../src/crossdomain/device-protocol.ts";
import { FramedSocket } from "../../src/crossdomain/framed-socket.ts";
import {
  CAPSET_CROSS_DOMAIN,
  ChannelType,
  CrossDomainCmd,
  DEFAULT_CONFIG,
} from "../../src/crossdomain/protocol.ts";
import { BlobMem, ExecbufFlags } from "../../src/crossdomain/structs.ts";
import { compositorPid } from "../../src/harness/compositor.ts";
import { startSway } from "../../src/harness/sway.ts";
import { native } from "../../src/native.ts";
import { DEFAULT_GUEST_CONFIG } from "../../src/proxy/wayland/guest-config.ts";
import { GuestServer } from "../../src/proxy/wayland/guest-server.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { fuzzRun, makeFds, processAlive, runCampaign, startCoverageTracker } from "./fuzz-support.ts";

const run = fuzzRun();
const { seconds, seed, rand } = run;

/** One frame of a case: its bytes, and the fds that ride with it ("memfd:SIZE" or "pipe-w"). */
interface Frame {
  hex: string;
  fds: string[];
}
type Case = Frame[];

/** Stand-ins for the two ring blobs' resource ids, replaced by the real ones when a case is played. */
const QUERY_RING = 0x5a5a0001;
const CHANNEL_RING = 0x5a5a0002;
const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 16, 28, 64, 255, 4096, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T;
const u32 = (): number => (rand(3) === 0 ? rand(1 << 16) : pick(INTERESTING));

function frame(type: number, fields: number[], tail: Uint8Array | null = null, fds: string[] = []): Frame {
  const serial = 1 + rand(1000);
  return { hex: Buffer.from(buildFrame(type, serial, fields, tail, fds.length)).toString("hex"), fds };
}

/** A valid Wayland request stream (get_registry, sync) or random bytes, as SEND data. */
function wireBytes(): Uint8Array {
  if (rand(3) === 0) {
    const b = new Uint8Array(rand(64));
    for (let i = 0; i < b.length; i++) b[i] = rand(256);
    return b;
  }
  const w = new MessageWriter();
  w.begin(1, 1).uint(2).end();
  w.begin(1, 0).uint(3).end();
  return w.bytes().slice();
}

/** One cross-domain command, encoded, with fields sometimes out of range. */
function command(): Uint8Array {
  const buf = new Uint8Array(1024);
  let n = 0;
  switch (rand(9)) {
    case 0: {
      const form = pick<InitForm>(["legacy", "v1", "libkrun", "uuid"]);
      n = encodeInit(buf, 0, {
        form,
        queryRingId: rand(8) === 0 ? u32() : QUERY_RING,
        channelRingId: rand(8) === 0 ? u32() : CHANNEL_RING,
        channelType: rand(4) === 0 ? u32() : ChannelType.WAYLAND,
        protocolVersion: rand(3),
      });
      break;
    }
    case 1:
      n = encodeGetImageRequirements(buf, 0, {
        width: u32(),
        height: u32(),
        drmFormat: rand(2) === 0 ? 0x34325258 : u32(),
        flags: u32(),
      });
      break;
    case 2:
      n = encodePoll(buf, 0);
      break;
    case 3: {
      const ids = newIdentifierList();
      ids.count = rand(6) === 0 ? 1 + rand(40) : rand(3);
      for (let i = 0; i < Math.min(ids.count, 28); i++) {
        ids.ids[i] = rand(2) === 0 ? 1 + rand(8) : u32();
        ids.types[i] = rand(9);
        ids.sizes[i] = u32();
      }
      try {
        n = encodeSendReceive(buf, 0, CrossDomainCmd.SEND, ids, wireBytes(), 28);
      } catch {
        // More identifiers than the form holds: the encoder refuses; send the header alone, claiming them.
        ids.count = 0;
        n = encodeSendReceive(buf, 0, CrossDomainCmd.SEND, ids, wireBytes(), 28);
        buf[8] = 29 + rand(100);
      }
      break;
    }
    case 4:
    case 5: {
      const data = new Uint8Array(rand(4) === 0 ? 600 : rand(32));
      const cmd = rand(2) === 0 ? CrossDomainCmd.WRITE : CrossDomainCmd.READ;
      n = encodeReadWrite(buf, 0, cmd, rand(2) === 0 ? 1 + rand(8) : u32(), rand(2) === 0, data);
      break;
    }
    case 6:
      n = encodeIdCommand(buf, 0, pick([9, 10, 11] as const), rand(2) === 0 ? 1 + rand(8) : u32());
      break;
    case 7: {
      // FUTEX_NEW and unknown commands: a header and some fields.
      n = 8 + 4 * rand(8);
      buf[0] = rand(2) === 0 ? CrossDomainCmd.FUTEX_NEW : rand(256);
      buf[2] = n & 0xff;
      buf[3] = n >> 8;
      for (let i = 8; i < n; i++) buf[i] = rand(256);
      break;
    }
    default: {
      // A header whose size lies: 0, shorter than the header, longer than the buffer.
      n = 16;
      buf[0] = 1 + rand(12);
      const size = pick([0, 4, 7, 8, 12, 0xffff]);
      buf[2] = size & 0xff;
      buf[3] = size >> 8;
    }
  }
  return buf.slice(0, n);
}

/** A SUBMIT frame: {flags, ringIdx, fenceId} and one or more commands. */
function submit(): Frame {
  const parts = [command()];
  while (rand(3) === 0) parts.push(command());
  const cmds = Buffer.concat(parts);
  const ring = rand(6) === 0 ? rand(70) : rand(2);
  const flags = rand(6) === 0 ? u32() : ExecbufFlags.RING_IDX;
  const fence = rand(4) === 0 ? 0 : 1 + rand(1 << 20);
  return frame(FrameType.SUBMIT, [flags, ring, fence], cmds);
}

/** The set-up a guest kernel does, then random frames: blobs, closes, submits, unknown types. */
function generate(): Case {
  const out: Case = [];
  if (rand(8) !== 0) out.push(frame(FrameType.GET_PARAMS, []));
  if (rand(8) !== 0)
    out.push(frame(FrameType.GET_CAPS, [CAPSET_CROSS_DOMAIN, 1, rand(8) === 0 ? u32() : 16]));
  if (rand(10) !== 0)
    out.push(
      frame(FrameType.CONTEXT_INIT, [
        rand(10) === 0 ? u32() : CAPSET_CROSS_DOMAIN,
        rand(10) === 0 ? u32() : 2,
        2,
      ]),
    );
  // The two rings (placeholders: the player creates them), and INIT on its own, as a guest must (P2).
  const init = new Uint8Array(64);
  const size = encodeInit(init, 0, {
    form: "v1",
    queryRingId: QUERY_RING,
    channelRingId: CHANNEL_RING,
    channelType: ChannelType.WAYLAND,
  });
  if (rand(6) !== 0) out.push(frame(FrameType.SUBMIT, [0, 0, 0], init.slice(0, size)));
  for (let k = 1 + rand(10); k > 0; k--) {
    switch (rand(6)) {
      case 0: {
        const mem = rand(4) === 0 ? u32() : rand(2) === 0 ? BlobMem.GUEST : BlobMem.HOST3D;
        const fds =
          mem === BlobMem.GUEST || rand(6) === 0
            ? [rand(2) === 0 ? `memfd:${4096 * rand(3)}` : "pipe-w"]
            : [];
        out.push(
          frame(
            FrameType.CREATE_BLOB,
            [mem, rand(4), ...u64Fields(4096 * rand(4)), ...u64Fields(rand(10))],
            null,
            fds,
          ),
        );
        break;
      }
      case 1:
        out.push(frame(FrameType.CLOSE_RESOURCE, [rand(2) === 0 ? QUERY_RING : u32()]));
        break;
      case 2: {
        const tail = new Uint8Array(rand(40));
        for (let i = 0; i < tail.length; i++) tail[i] = rand(256);
        out.push(frame(rand(2) === 0 ? rand(10) : u32(), [], tail, rand(8) === 0 ? ["pipe-w"] : []));
        break;
      }
      default:
        out.push(submit());
    }
  }
  return out;
}

/** Drops, duplicates, appends, flips a bit of, or lies about the payload length or fd count of, one frame. */
function mutate(c: Case): Case {
  const frames = c.map((f) => ({ hex: f.hex, fds: [...f.fds] }));
  const i = rand(frames.length);
  const f = frames[i] as Frame;
  switch (rand(6)) {
    case 0:
      if (frames.length > 1) frames.splice(i, 1);
      break;
    case 1:
      frames.splice(i, 0, frames[rand(frames.length)] as Frame);
      break;
    case 2:
      frames.push(...generate().slice(-2));
      break;
    case 3: {
      const b = Buffer.from(f.hex, "hex");
      b.writeUInt32LE(
        rand(2) === 0 ? pick(INTERESTING) : Math.max(0, b.length - 16 + pick([-4, -1, 1, 4])),
        rand(2) === 0 ? 8 : 12,
      );
      f.hex = b.toString("hex");
      break;
    }
    default: {
      const b = Buffer.from(f.hex, "hex");
      const at = rand(b.length);
      b[at] = ((b[at] ?? 0) ^ (1 << rand(8))) & 0xff;
      f.hex = b.toString("hex");
    }
  }
  return frames;
}

// ---------------------------------------------------------------- set-up
const coverage = startCoverageTracker(["/src/crossdomain/"]);
const dir = mkdtempSync(join(tmpdir(), "crossway-device-fuzz-"));
const sway = await startSway();
// Our sway, not any on the machine (a test beside this one may run its own): read once, checked per case.
const swayPid = compositorPid(sway);
// Refusals are warnings and expected; anything at error level is a finding.
const errors: string[] = [];
const errorLog = (): pino.Logger =>
  pino(
    { level: "warn" },
    {
      write(line: string): void {
        if ((JSON.parse(line) as { level: number }).level >= 50) errors.push(line.trim());
      },
    },
  );
const device = startDevice({
  listen: join(dir, "dev.sock"),
  wayland: sway.socketPath,
  config: DEFAULT_CONFIG,
  logger: errorLog(),
});
const guest = GuestServer.start({
  // No spare channel: the device's context count and this process's fds follow the clients alone.
  spareChannels: 0,
  device: `emulated:${device.listenPath}`,
  socket: join(dir, "wayland-victim"),
  config: DEFAULT_GUEST_CONFIG,
  registry: ProtocolRegistry.fromGenerated(),
  log: pino({ level: "silent" }),
});
const victim = WaylandTestClient.connect(guest.socketPath as string);
await victim.getRegistry();
const baseContexts = device.contexts;

async function stopAll(): Promise<void> {
  victim.close();
  guest.close();
  device.close();
  await sway.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function fail(c: Case, why: string): Promise<never> {
  run.saveCrash("device", Buffer.from(JSON.stringify(c)), why);
  await stopAll();
  process.exit(1);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw guest kernel's side of the device socket: frames out with fds, replies in (kept by serial). */
class RawGuestSide {
  readonly fd = native.unixConnect(device.listenPath);
  readonly replies = new Map<number, { status: number; fields: Uint8Array; fds: readonly number[] }>();
  closed = false;
  private readonly socket = new FramedSocket(
    this.fd,
    (type, serial, payload, fds) => {
      if (type === FrameType.REPLY)
        this.replies.set(serial, {
          status:
            payload.length >= 4 ? new DataView(payload.buffer, payload.byteOffset).getUint32(0, true) : -1,
          fields: payload.slice(),
          fds,
        });
      else for (const fd of fds) native.close(fd);
    },
    () => {
      this.closed = true;
    },
  );

  /** Writes a frame; false once the device stopped taking bytes (closed, or not reading). */
  write(bytes: Uint8Array, fdSpecs: readonly string[]): boolean {
    const fds = makeFds(fdSpecs);
    try {
      return native.sendmsg(this.fd, bytes, 0, bytes.length, fds) === bytes.length;
    } catch {
      return false;
    } finally {
      for (const fd of fds) native.close(fd);
    }
  }

  /** The reply to `serial`, or undefined after `ms` (or once the device hung up). */
  async reply(serial: number, ms = 5000): Promise<{ status: number; fields: Uint8Array } | undefined> {
    const deadline = Date.now() + ms;
    while (!this.replies.has(serial) && !this.closed && Date.now() < deadline) await sleep(1);
    const r = this.replies.get(serial);
    if (r !== undefined) for (const fd of r.fds) native.close(fd);
    return r;
  }

  close(): void {
    for (const r of this.replies.values()) for (const fd of r.fds) native.close(fd);
    this.replies.clear();
    this.socket.close();
  }
}

/**
 * Creates a 4 KiB guest blob for a ring; its resource id, or undefined if the device refused. `sealed`: its memory
 * sealed as guest RAM is, so the device maps it and its native fast path may take the context's steady state.
 */
async function ringBlob(g: RawGuestSide, serial: number, sealed: boolean): Promise<number | undefined> {
  g.write(buildFrame(FrameType.CREATE_BLOB, serial, [BlobMem.GUEST, 0, ...u64Fields(4096), 0, 0], null, 1), [
    sealed ? "sealed-memfd:4096" : "memfd:4096",
  ]);
  const r = await g.reply(serial);
  return r !== undefined && r.status === 0 ? new DataView(r.fields.buffer).getUint32(4, true) : undefined;
}

async function runOne(c: Case): Promise<number> {
  const g = new RawGuestSide();
  // The channel ring as the emulated guest makes it (sealed: written through a mapping, by the native fast path
  // too); the query ring unsealed (written with pwrite), so both ways of writing a ring meet hostile input.
  const query = await ringBlob(g, 0x7fff0001, false);
  const channel = await ringBlob(g, 0x7fff0002, true);
  if (query === undefined || channel === undefined)
    await fail(c, "the device refused a fresh guest's ring blobs");
  const real = (v: number): number =>
    v === QUERY_RING ? (query as number) : v === CHANNEL_RING ? (channel as number) : v;
  for (const f of c) {
    const b = Buffer.from(f.hex, "hex");
    for (let at = 16; at + 4 <= b.length; at += 4) b.writeUInt32LE(real(b.readUInt32LE(at)), at);
    if (!g.write(b, f.fds) || g.closed) break;
  }
  // Frames are handled in order: the answer to a last GET_PARAMS says the device took the whole case (unless it
  // hung up, or stopped reading, which a broken frame can cause).
  if (!g.closed && g.write(buildFrame(FrameType.GET_PARAMS, 0x7fff0003, [], null, 0), []))
    await g.reply(0x7fff0003, 500);
  g.close();
  const deadline = Date.now() + 5000;
  while (device.contexts > baseContexts && Date.now() < deadline) await sleep(2);
  if (device.contexts > baseContexts)
    await fail(c, `the device did not end a closed context (${device.contexts} live)`);
  if (errors.length > 0) await fail(c, `the device logged an error: ${errors.join("\n").slice(0, 3000)}`);
  try {
    await victim.roundtrip(10_000);
  } catch (err) {
    await fail(c, `the well-behaved guest lost its connection: ${(err as Error).message}`);
  }
  if (!processAlive("sway", [swayPid])) await fail(c, "sway died");
  return coverage.newBlocks();
}

const stats = await runCampaign<Case>({
  run,
  coverage,
  corpus: Array.from({ length: 20 }, () => generate()),
  next: (corpus) => (rand(4) === 0 ? generate() : mutate(corpus[rand(corpus.length)] as Case)),
  runOne,
  fail,
  fdOwner: "device process",
});
// What the contexts' native fast path carried: zero would mean the campaign never reached it.
const fastPath = device.fastPathCounters();
await stopAll();
process.stdout.write(`${JSON.stringify({ seed, seconds, ...stats, fastPath })}\n`);
