// The guest PipeWire fd mapping against real kernel objects: a test-owned "host daemon" socket behind a real
// `crossway device` (libkrun) sends AddMem memfds and Transport/SetActivation eventfds; a raw guest client checks
// what it gets (mapping access, shared memory, exact 8-byte counter values both ways) and that any other
// fd-carrying event ends only its connection.
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../src/fd/constants.ts";
import { componentLogger } from "../../src/log.ts";
import { AGAIN, native, POLL_READABLE } from "../../src/native.ts";
import { GuestPipeWireServer } from "../../src/proxy/pipewire-guest/server.ts";
import { decodePayload, encodeMessage, type Frame, Framer } from "../../src/wire/pipewire/framing.ts";
import { type Pod, pod } from "../../src/wire/pipewire/pod-types.ts";
import {
  type DeviceProcess,
  HostServer,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type RawEvent, RawPipeWireClient } from "../helpers/pipewire-raw-client.ts";
import { waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

/** SPA_DATA_MemFd (spa/buffer/buffer.h). */
const DATA_MEMFD = 2;
/** PW_MEMBLOCK_FLAG_READABLE / WRITABLE (pipewire/mem.h). */
const MEM_R = 1;
const MEM_W = 2;
const STEP_MS = 10_000;
/** ClientNode.PortBuffers (method) and PortUseBuffers (event) opcodes, and SPA_NODE_BUFFERS_FLAG_ALLOC (client-node.h, node.h). */
const PORT_BUFFERS = 6;
const PORT_USE_BUFFERS = 8;
const BUFFERS_ALLOC = 1;
/** SPA_DATA_DmaBuf; SPA_DIRECTION_INPUT / OUTPUT. */
const DATA_DMABUF = 3;
const INPUT = 0;
const OUTPUT = 1;

let tmp: { dir: string; remove(): void };
let host: HostServer;
let device: DeviceProcess;
let guest: GuestPipeWireServer;
let guestSock: string;

/** The host end of one guest client's channel: frames what the guest forwards, sends daemon events. */
class HostPeer {
  /** Frames the guest forwarded, with the fds (host objects) that came with them: the test closes those. */
  readonly frames: Array<{ id: number; opcode: number; body: Pod & { t: "struct" }; fds: number[] }> = [];
  private readonly framer = new Framer(1 << 20);
  private readonly fdsIn = new Int32Array(29);
  private readonly watcher;
  private seq = 0;
  closed = false;

  constructor(readonly fd: number) {
    this.watcher = native.createWatcher(fd, () => this.read());
    this.watcher.start(POLL_READABLE);
  }

  private read(): void {
    for (;;) {
      const r = this.framer.reserve(65536);
      const n = native.recvmsg(this.fd, r.buf, r.offset, r.length, this.fdsIn);
      if (n === AGAIN) return;
      if (n === 0) {
        this.closed = true;
        this.watcher.stop();
        return;
      }
      const fds: number[] = [];
      for (let k = 0; k < (this.fdsIn[0] as number); k++) fds.push(this.fdsIn[k + 1] as number);
      this.framer.commit(n, fds);
      for (let f: Frame | null = this.framer.next(); f !== null; f = this.framer.next()) {
        this.frames.push({
          id: f.id,
          opcode: f.opcode,
          body: decodePayload(f.payload, f.nFds).body,
          fds: f.fds.splice(0),
        });
      }
    }
  }

  async send(id: number, opcode: number, body: Pod, fds: number[] = []): Promise<void> {
    await writeAll(
      this.fd,
      encodeMessage(id, opcode, this.seq++, fds.length, body),
      fds.length > 0 ? fds : null,
    );
  }

  close(): void {
    this.watcher.stop();
    this.watcher.close();
    native.close(this.fd);
  }
}

/** A guest client past Hello with a client-node at id 3, and the host end of its channel. */
async function connectWithNode(): Promise<{ c: RawPipeWireClient; h: HostPeer }> {
  const c = new RawPipeWireClient(guestSock, { keepFds: true });
  c.handshake({ "application.name": "fd-test" });
  c.createClientNode([["media.class", "Stream/Output/Audio"]], 3);
  const h = new HostPeer(await host.next());
  await waitFor(
    "the CreateObject at the host",
    () => (h.frames.some((f) => f.id === 0 && f.opcode === 6) ? true : undefined),
    {
      timeoutMs: STEP_MS,
      intervalMs: 5,
    },
  );
  // The guest tagged the client as its own claim (client-supplied crossway.guest.* keys are replaced).
  const props = h.frames.find((f) => f.id === 1 && f.opcode === 2)?.body.fields[0];
  expect(JSON.stringify(props)).toContain("crossway.guest.app");
  return { c, h };
}

/** The Transport of node 3: the host's eventfds and the client's local ends. */
async function withTransport(
  c: RawPipeWireClient,
  h: HostPeer,
): Promise<{ hostRead: number; hostWrite: number; readFd: number; writeFd: number; close(): void }> {
  const hostRead = native.eventfd(0, 0);
  const hostWrite = native.eventfd(0, 0);
  await h.send(3, 0, pod.struct(pod.fd(0), pod.fd(1), pod.int(0), pod.int(0), pod.int(64)), [
    hostRead,
    hostWrite,
  ]);
  const [readFd, writeFd] = (await event(c, 3, 0)).fds as [number, number];
  return {
    hostRead,
    hostWrite,
    readFd,
    writeFd,
    close: () => {
      for (const fd of [hostRead, hostWrite, readFd, writeFd]) native.close(fd);
    },
  };
}

/**
 * The daemon asks port 0 (mix 0) of node 3 to allocate `n` buffers (PortUseBuffers with ALLOC; the guest reads
 * only direction, port, mix, flags and n_buffers), and the client has seen it.
 */
async function askToAllocate(c: RawPipeWireClient, h: HostPeer, direction: number, n: number): Promise<void> {
  await h.send(
    3,
    PORT_USE_BUFFERS,
    pod.struct(pod.int(direction), pod.int(0), pod.int(0), pod.int(BUFFERS_ALLOC), pod.int(n)),
  );
  await event(c, 3, PORT_USE_BUFFERS);
}

/** PortBuffers(direction, port 0, mix 0, one data per buffer: [type, fd index, mapoffset, maxsize]). */
function portBuffers(direction: number, datas: Array<[number, number, number, number]>): Pod {
  const fields: Pod[] = [pod.int(direction), pod.int(0), pod.int(0), pod.int(datas.length)];
  for (const [type, fd, offset, size] of datas)
    fields.push(pod.int(1), pod.id(type), pod.fd(fd), pod.int(0), pod.int(offset), pod.int(size));
  return pod.struct(...fields);
}

function memfd(size: number): number {
  const fd = native.memfdCreate("client-buffer", 0);
  native.ftruncate(fd, size);
  return fd;
}

function put(fd: number, at: number, text: string): void {
  const b = new TextEncoder().encode(text);
  native.pwrite(fd, b, 0, b.length, at);
}

function get(fd: number, at: number, n: number): string {
  const b = new Uint8Array(n);
  native.pread(fd, b, 0, n, at);
  return new TextDecoder().decode(b);
}

async function hostFrame(h: HostPeer, id: number, opcode: number): Promise<HostPeer["frames"][number]> {
  return await waitFor(
    `frame ${id}.${opcode} at the host`,
    () => h.frames.find((f) => f.id === id && f.opcode === opcode),
    { timeoutMs: STEP_MS, intervalMs: 5 },
  );
}

/** The Core.Error the guest sent the client before ending it, and the client's socket closed. */
async function refusedWith(c: RawPipeWireClient): Promise<string> {
  const err = await event(c, 0, 3);
  expect(await c.waitClosed(STEP_MS)).toBe(true);
  return String((err.body?.fields[3] as { v: string } | undefined)?.v);
}

/** Sockets this process holds (the guest runs in it): a refused client's socket lingers until it reads the EOF. */
function socketCount(): number {
  return readdirSync("/proc/self/fd").filter((n) => {
    try {
      return readlinkSync(`/proc/self/fd/${n}`).startsWith("socket:");
    } catch {
      return false;
    }
  }).length;
}

/** The guest has ended every session and closed their sockets (down to `sockets`, when given). */
async function guestIdle(sockets?: number): Promise<void> {
  await waitFor(
    "the guest to end every session",
    () => (guest.clientCount === 0 && (sockets === undefined || socketCount() <= sockets) ? true : undefined),
    { timeoutMs: STEP_MS, intervalMs: 5 },
  );
}

async function event(c: RawPipeWireClient, id: number, opcode: number): Promise<RawEvent> {
  const e = await c.waitFor((x) => x.id === id && x.opcode === opcode, STEP_MS);
  if (e === null) throw new Error(`no event ${id}.${opcode} reached the guest client`);
  return e;
}

function counter(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

async function readCounter(fd: number): Promise<bigint> {
  const b = new Uint8Array(8);
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const n = native.read(fd, b, 0, 8);
    if (n === 8) return new DataView(b.buffer).getBigUint64(0, true);
    if (Date.now() > deadline) throw new Error(`eventfd ${fd} never signalled`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// libkrun: 24-byte INIT, eventfds as identifier type 6; crosvm (upstream rutabaga): 20-byte INIT, type 5.
describe.each(["libkrun", "crosvm"] as const)(
  "guest PipeWire fd mapping (real %s device, real kernel objects)",
  (flavor) => {
    beforeAll(async () => {
      tmp = tempDir("cw-pwgfd-");
      host = new HostServer(join(tmp.dir, "pw-host"));
      device = await startDeviceProcess(tmp.dir, ["--pipewire", host.path, "--flavor", flavor]);
      guestSock = join(tmp.dir, "pipewire-0");
      guest = GuestPipeWireServer.start({
        device: `emulated:${device.socket}`,
        socket: guestSock,
        flavor,
        log: componentLogger("test-guest"),
      });
    }, 60_000);

    afterAll(async () => {
      guest?.close();
      await device?.stop();
      host?.close();
      tmp?.remove();
    });

    it("AddMem: a read-only block reaches the client unmappable for writing; a writable one is shared memory", async () => {
      const { c, h } = await connectWithNode();
      const ro = native.memfdCreate("pw-ro", 0);
      native.ftruncate(ro, 4096);
      native.pwrite(ro, new TextEncoder().encode("daemon data"), 0, 11, 0);
      await h.send(0, 6, pod.struct(pod.int(0), pod.id(DATA_MEMFD), pod.fd(0), pod.int(MEM_R)), [ro]);
      const rw = native.memfdCreate("pw-rw", 0);
      native.ftruncate(rw, 4096);
      await h.send(0, 6, pod.struct(pod.int(1), pod.id(DATA_MEMFD), pod.fd(0), pod.int(MEM_R | MEM_W)), [rw]);
      const e0 = await event(c, 0, 6);
      await waitFor(
        "both AddMems",
        () => (c.events.filter((e) => e.id === 0 && e.opcode === 6).length === 2 ? true : undefined),
        {
          timeoutMs: STEP_MS,
          intervalMs: 5,
        },
      );
      const e1 = c.events.filter((e) => e.id === 0 && e.opcode === 6)[1] as RawEvent;
      expect(e0.fds.length).toBe(1);
      expect(e1.fds.length).toBe(1);
      const [roFd] = e0.fds as [number];
      const [rwFd] = e1.fds as [number];
      // Read-only: the bytes are there, a writable shared mapping is refused by the kernel.
      const m = native.mmap(roFd, 4096, PROT_READ, MAP_SHARED, 0);
      expect(new TextDecoder().decode(new Uint8Array(m, 0, 11))).toBe("daemon data");
      native.munmap(m);
      expect(() => native.mmap(roFd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toThrow(/EACCES/);
      // Writable: what the client writes is what the daemon reads (the same memory, not a copy).
      const w = native.mmap(rwFd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      new Uint8Array(w).set(new TextEncoder().encode("client wrote"), 0);
      native.munmap(w);
      const back = new Uint8Array(12);
      native.pread(rw, back, 0, 12, 0);
      expect(new TextDecoder().decode(back)).toBe("client wrote");
      for (const fd of [ro, rw, roFd, rwFd]) native.close(fd);
      c.close();
      h.close();
    });

    it("Transport and SetActivation eventfds carry exact 8-byte counter values both ways", async () => {
      const { c, h } = await connectWithNode();
      const hostRead = native.eventfd(0, 0);
      const hostWrite = native.eventfd(0, 0);
      const hostSignal = native.eventfd(0, 0);
      const mem = native.memfdCreate("pw-activation", 0);
      native.ftruncate(mem, 4096);
      await h.send(0, 6, pod.struct(pod.int(0), pod.id(DATA_MEMFD), pod.fd(0), pod.int(MEM_R | MEM_W)), [
        mem,
      ]);
      await h.send(3, 0, pod.struct(pod.fd(0), pod.fd(1), pod.int(0), pod.int(0), pod.int(64)), [
        hostRead,
        hostWrite,
      ]);
      await h.send(3, 10, pod.struct(pod.int(7), pod.fd(0), pod.int(0), pod.int(64), pod.int(64)), [
        hostSignal,
      ]);
      const transport = await event(c, 3, 0);
      const activation = await event(c, 3, 10);
      const [readFd, writeFd] = transport.fds as [number, number];
      const [signalFd] = activation.fds as [number];
      // Daemon → client: the value the daemon adds is the value the client reads.
      native.write(hostRead, counter(5n), 0, 8);
      expect(await readCounter(readFd)).toBe(5n);
      // Client → daemon, values above 32 bits included.
      native.write(writeFd, counter(0x1_0000_0003n), 0, 8);
      expect(await readCounter(hostWrite)).toBe(0x1_0000_0003n);
      native.write(signalFd, counter(9n), 0, 8);
      expect(await readCounter(hostSignal)).toBe(9n);
      const memEvent = c.events.find((e) => e.id === 0 && e.opcode === 6) as RawEvent;
      for (const fd of [hostRead, hostWrite, hostSignal, mem, readFd, writeFd, signalFd, ...memEvent.fds])
        native.close(fd);
      c.close();
      h.close();
    });

    it("the node's eventfd items are released when the daemon removes it, and the channel goes on", async () => {
      const { c, h } = await connectWithNode();
      const t = await withTransport(c, h);
      // Core.RemoveId(3): the guest releases both eventfd items with WRITE {hang_up} (8 bytes of 0: an eventfd
      // WRITE of any other length is InvalidCrossDomainWriteLength on the host, which ended the whole channel).
      await h.send(0, 4, pod.struct(pod.int(3)));
      await event(c, 0, 4);
      await h.send(0, 1, pod.struct(pod.int(0), pod.int(77)));
      const done = await event(c, 0, 1);
      expect(done.body?.fields[1]).toEqual({ t: "int", v: 77 });
      expect(h.closed).toBe(false);
      // The release added nothing to the daemon's eventfd.
      expect(native.read(t.hostWrite, new Uint8Array(8), 0, 8)).toBe(AGAIN);
      t.close();
      c.close();
      h.close();
      await guestIdle();
    });

    it("client-allocated memfds (PortBuffers after an ALLOC request) reach the host as blobs, copied before each client signal", async () => {
      const { c, h } = await connectWithNode();
      const t = await withTransport(c, h);
      await askToAllocate(c, h, OUTPUT, 2);
      // One memfd per buffer, the second buffer at an offset inside a larger memfd.
      const m0 = memfd(4096);
      const m1 = memfd(8192);
      put(m0, 0, "prepared");
      const body = portBuffers(OUTPUT, [
        [DATA_MEMFD, 0, 0, 4096],
        [DATA_MEMFD, 1, 4096, 4096],
      ]);
      c.send(3, PORT_BUFFERS, body, { fds: [m0, m1] });
      const pb = await hostFrame(h, 3, PORT_BUFFERS);
      // Forwarded unchanged, with one host fd per client fd in the same order (the Fd indices keep their meaning).
      expect(pb.body).toEqual(body);
      expect(pb.fds.length).toBe(2);
      const [b0, b1] = pb.fds as [number, number];
      expect(native.fstat(b0).size).toBeGreaterThanOrEqual(4096);
      expect(native.fstat(b1).size).toBeGreaterThanOrEqual(8192);
      // What the client prepared before answering is there from the start.
      expect(get(b0, 0, 8)).toBe("prepared");
      // The next cycle: a copy, not shared memory, so the host sees it only once the client signals.
      put(m0, 0, "cycle 1!");
      put(m1, 4096, "second");
      expect(get(b0, 0, 8)).toBe("prepared");
      native.write(t.writeFd, counter(1n), 0, 8);
      expect(await readCounter(t.hostWrite)).toBe(1n);
      expect(get(b0, 0, 8)).toBe("cycle 1!");
      expect(get(b1, 4096, 6)).toBe("second");
      // Outside the data's range nothing is copied (the host blob is the guest's, not the client's file).
      put(m1, 0, "not data");
      native.write(t.writeFd, counter(1n), 0, 8);
      expect(await readCounter(t.hostWrite)).toBe(1n);
      expect(get(b1, 0, 8)).toBe("\0".repeat(8));
      for (const fd of [m0, m1, b0, b1]) native.close(fd);
      t.close();
      c.close();
      h.close();
    });

    it("an input port's client-allocated buffer gets what the host wrote before the client wakes (capture)", async () => {
      const { c, h } = await connectWithNode();
      const t = await withTransport(c, h);
      await askToAllocate(c, h, INPUT, 1);
      const m = memfd(4096);
      c.send(3, PORT_BUFFERS, portBuffers(INPUT, [[DATA_MEMFD, 0, 0, 4096]]), { fds: [m] });
      const [b] = (await hostFrame(h, 3, PORT_BUFFERS)).fds as [number];
      put(b, 0, "from the host");
      expect(get(m, 0, 13)).toBe("\0".repeat(13));
      native.write(t.hostRead, counter(3n), 0, 8);
      expect(await readCounter(t.readFd)).toBe(3n);
      expect(get(m, 0, 13)).toBe("from the host");
      for (const fd of [m, b]) native.close(fd);
      t.close();
      c.close();
      h.close();
    });

    it("client-allocated buffers that cannot be carried are refused, naming the buffer and the reason", async () => {
      const cases: Array<{ datas: Array<[number, number, number, number]>; fds: number; match: RegExp }> = [
        {
          datas: [[DATA_DMABUF, 0, 0, 4096]],
          fds: 1,
          match: /buffer 0 data 0: data type DmaBuf cannot be carried to the host \(only MemFd/,
        },
        {
          datas: [[DATA_MEMFD, 0, 0, 8192]],
          fds: 1,
          match: /buffer 0 data 0: mapoffset 0 \+ maxsize 8192 lies outside its memfd of 4096 bytes/,
        },
        {
          datas: [
            [DATA_MEMFD, 0, 0, 4096],
            [DATA_MEMFD, 1, 0, 4096],
          ],
          fds: 2,
          match: /PortBuffers: 2 buffers, the daemon asked for 1/,
        },
        // The strict codec itself refuses an fd no Fd field names.
        { datas: [[DATA_MEMFD, 0, 0, 4096]], fds: 2, match: /fd-unreferenced/ },
      ];
      for (const k of cases) {
        const sockets = socketCount();
        const { c, h } = await connectWithNode();
        await askToAllocate(c, h, OUTPUT, 1);
        const fds = Array.from({ length: k.fds }, () => memfd(4096));
        c.send(3, PORT_BUFFERS, portBuffers(OUTPUT, k.datas), { fds });
        expect(await refusedWith(c)).toMatch(k.match);
        expect(h.frames.some((f) => f.opcode === PORT_BUFFERS && f.id === 3)).toBe(false);
        for (const fd of fds) native.close(fd);
        c.close();
        h.close();
        await guestIdle(sockets);
      }
    });

    it("a client that shrinks its own buffer memfd is ended at its next signal, which never reaches the host", async () => {
      const { c, h } = await connectWithNode();
      const t = await withTransport(c, h);
      await askToAllocate(c, h, OUTPUT, 1);
      const m = memfd(4096);
      c.send(3, PORT_BUFFERS, portBuffers(OUTPUT, [[DATA_MEMFD, 0, 0, 4096]]), { fds: [m] });
      const [b] = (await hostFrame(h, 3, PORT_BUFFERS)).fds as [number];
      native.ftruncate(m, 0);
      native.write(t.writeFd, counter(1n), 0, 8);
      expect(await refusedWith(c)).toMatch(
        /ClientNode@3: the client's buffer memfd ends before byte 0 \(it shrank/,
      );
      await waitFor("the host end to see EOF", () => (h.closed ? true : undefined), {
        timeoutMs: STEP_MS,
        intervalMs: 5,
      });
      const v = new Uint8Array(8);
      expect(native.read(t.hostWrite, v, 0, 8)).toBe(AGAIN);
      for (const fd of [m, b]) native.close(fd);
      t.close();
      c.close();
      h.close();
      await guestIdle();
    });

    it("an fd on any other event ends that client only; another client's channel goes on", async () => {
      const a = await connectWithNode();
      const b = await connectWithNode();
      const efd = native.eventfd(0, 0);
      // Core.Done with a trailing Fd: well-formed, but Done never carries fds.
      await a.h.send(0, 1, pod.struct(pod.int(0), pod.int(1), pod.fd(0)), [efd]);
      native.close(efd);
      expect(await a.c.waitClosed(STEP_MS)).toBe(true);
      // The host sees the channel closed (the guest ended the context).
      await waitFor("the host end to see EOF", () => (a.h.closed ? true : undefined), {
        timeoutMs: STEP_MS,
        intervalMs: 5,
      });
      await b.h.send(0, 1, pod.struct(pod.int(0), pod.int(42)));
      const done = await event(b.c, 0, 1);
      expect(done.body?.fields[1]).toEqual({ t: "int", v: 42 });
      for (const x of [a, b]) {
        x.c.close();
        x.h.close();
      }
      await waitFor("the guest to end both sessions", () => (guest.clientCount === 0 ? true : undefined), {
        timeoutMs: STEP_MS,
        intervalMs: 5,
      });
    });
  },
);
