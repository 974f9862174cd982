// Channel tests against a real `crossway device` process with a real host peer socket behind it (crossdomain.md).
import { readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrossDomainChannel, closeItems, type ReceivedItem } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType, DrmFormat, MAX_SEND_RECV_SIZE } from "../../src/crossdomain/protocol.ts";
import { CrosswayError } from "../../src/errors.ts";
import {
  F_SEAL_GROW,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  PROT_READ,
  PROT_WRITE,
} from "../../src/fd/constants.ts";
import { native } from "../../src/native.ts";
import {
  type DeviceProcess,
  HostServer,
  pattern,
  readPeer,
  readToEof,
  sameBytes,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

let tmp: ReturnType<typeof tempDir>;
let device: DeviceProcess;
let host: HostServer;

beforeAll(async () => {
  tmp = tempDir("crossway-cd-");
  host = new HostServer(join(tmp.dir, "wayland-host"));
  device = await startDeviceProcess(tmp.dir, [
    "--wayland",
    host.path,
    "--pipewire",
    join(tmp.dir, "absent-pw"),
  ]);
});

afterAll(async () => {
  await device?.stop();
  host?.close();
  tmp?.remove();
});

/** Opens a Wayland channel and the host peer connection behind it. */
async function open(): Promise<{ ch: CrossDomainChannel; peer: number; closed: Promise<unknown> }> {
  const ch = await CrossDomainChannel.open({
    gpu: openEmulatedVirtGpu(device.socket),
    channelType: ChannelType.WAYLAND,
  });
  const peer = await host.next();
  native.setNonblockCloexec(peer);
  const closed = new Promise((resolve) => {
    ch.onClose = resolve;
  });
  return { ch, peer, closed };
}

/** Collects RECEIVEs until `bytes` bytes arrived. */
function collect(
  ch: CrossDomainChannel,
  bytes: number,
): Promise<{ data: Uint8Array; items: ReceivedItem[]; pieces: number[]; itemBatches: number[] }> {
  return new Promise((resolve) => {
    const data = new Uint8Array(bytes);
    let got = 0;
    const items: ReceivedItem[] = [];
    const pieces: number[] = [];
    const itemBatches: number[] = [];
    ch.onReceive = (d, its) => {
      data.set(d, got);
      got += d.length;
      pieces.push(d.length);
      if (its.length > 0) itemBatches.push(its.length);
      items.push(...its);
      if (got >= bytes) resolve({ data, items, pieces, itemBatches });
      return "continue";
    };
  });
}

async function shutdown(ch: CrossDomainChannel, peer: number, closed: Promise<unknown>): Promise<void> {
  ch.close();
  await closed;
  native.close(peer);
}

describe("cross-domain channel over the emulated device", () => {
  it("carries data both ways in pieces larger than 3744 bytes", async () => {
    const { ch, peer, closed } = await open();
    const out = pattern(20_000, 7);
    expect(ch.send(out)).toBe("sent");
    const atPeer = await readPeer(peer, out.length);
    expect(sameBytes(atPeer.data, out)).toBe("equal");

    const back = pattern(15_000, 9);
    const got = collect(ch, back.length);
    await writeAll(peer, back);
    const r = await got;
    expect(sameBytes(r.data, back)).toBe("equal");
    expect(Math.max(...r.pieces)).toBeLessThanOrEqual(MAX_SEND_RECV_SIZE);
    expect(r.pieces.length).toBeGreaterThanOrEqual(Math.ceil(back.length / MAX_SEND_RECV_SIZE));
    await shutdown(ch, peer, closed);
  });

  it("sends 28 blobs in one SEND and 29 in two; the peer maps host memory written by the guest", async () => {
    const { ch, peer, closed } = await open();
    const reqs = await ch.imageRequirements(4096, 1, DrmFormat.R8);
    expect(reqs).toMatchObject({ size: 4096, strides: [4096, 0, 0, 0] });
    // Cached: hosts never free templates, so the same query must not reach the host again.
    expect(await ch.imageRequirements(4096, 1, DrmFormat.R8)).toBe(reqs);
    const blobs = [];
    for (let i = 0; i < 29; i++) {
      const b = await ch.createHostBlob(reqs);
      const m = await b.map();
      m.bytes[0] = i;
      m.bytes[4095] = 0xa0 + (i % 16);
      m.unmap();
      blobs.push(b);
    }
    for (const n of [28, 29]) {
      const msg = pattern(64, n);
      ch.send(
        msg,
        blobs.slice(0, n).map((b) => ({ kind: "blob" as const, resourceId: b.resourceId })),
      );
      const r = await readPeer(peer, 64);
      expect(r.data).toEqual(msg);
      expect(r.fds.length).toBe(n);
      expect(r.fdBatches).toEqual(n === 28 ? [28] : [28, 1]);
      const probe = new Uint8Array(1);
      for (const [i, fd] of r.fds.entries()) {
        expect(native.fdPath(fd)).toMatch(/^\/memfd:crossway-host-blob/);
        native.pread(fd, probe, 0, 1, 0);
        expect(probe[0]).toBe(i);
        native.pread(fd, probe, 0, 1, 4095);
        expect(probe[0]).toBe(0xa0 + (i % 16));
        native.close(fd);
      }
    }
    for (const b of blobs) b.close();
    await shutdown(ch, peer, closed);
  });

  it("receives 28 and 29 host fds; a plain memfd maps read-write, a sealed one only read-only", async () => {
    const { ch, peer, closed } = await open();
    const mk = (text: string, seal: boolean) => {
      const fd = native.memfdCreate("host-keymap", MFD_ALLOW_SEALING);
      const b = new TextEncoder().encode(text);
      native.pwrite(fd, b, 0, b.length, 0);
      if (seal) native.addSeals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
      return fd;
    };
    const fds = [mk("sealed keymap", true), mk("plain table", false)];
    for (let i = 2; i < 29; i++) fds.push(mk(`fd ${i}`, false));
    const got = collect(ch, 2);
    await writeAll(peer, Uint8Array.of(1), fds.slice(0, 28));
    await writeAll(peer, Uint8Array.of(2), fds.slice(28));
    const r = await got;
    for (const fd of fds) native.close(fd);
    expect(r.itemBatches).toEqual([28, 1]);
    expect(r.items.length).toBe(29);
    const [sealed, plain] = r.items as [ReceivedItem, ReceivedItem];
    if (sealed.kind !== "blob" || plain.kind !== "blob") throw new Error("expected blobs");
    expect(sealed).toMatchObject({ size: 13, access: "read-only" });
    expect(plain).toMatchObject({ size: 11, access: "read-write" });
    const ro = native.mmap(sealed.fd, 13, PROT_READ, MAP_SHARED, 0);
    expect(new TextDecoder().decode(new Uint8Array(ro))).toBe("sealed keymap");
    native.munmap(ro);
    // The guest client cannot map the sealed keymap writable (the host could not either, §7.3).
    expect(() => native.mmap(sealed.fd, 13, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toThrow(/EACCES/);
    const rw = native.mmap(plain.fd, 11, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(new TextDecoder().decode(new Uint8Array(rw))).toBe("plain table");
    native.munmap(rw);
    closeItems(r.items);
    await shutdown(ch, peer, closed);
  });

  it("eventfds: host signals reach the guest and guest signals reach the host", async () => {
    const { ch, peer, closed } = await open();
    const hostA = native.eventfd(0, 0);
    const hostB = native.eventfd(0, 0);
    const got = collect(ch, 1);
    await writeAll(peer, Uint8Array.of(0), [hostA, hostB]);
    const r = await got;
    const [a, b] = r.items as [ReceivedItem, ReceivedItem];
    if (a.kind !== "eventfd" || b.kind !== "eventfd") throw new Error("expected eventfds");
    const fromHost = ch.eventfdFromHost(a.id);
    const toHost = ch.eventfdToHost(b.id);
    const v = new Uint8Array(8);
    new DataView(v.buffer).setBigUint64(0, 5n, true);
    native.write(hostA, v, 0, 8);
    expect(await readCounter(fromHost)).toBe(5n);
    new DataView(v.buffer).setBigUint64(0, 7n, true);
    native.write(toHost, v, 0, 8);
    expect(await readCounter(hostB)).toBe(7n);
    for (const fd of [hostA, hostB, fromHost, toHost]) native.close(fd);
    await shutdown(ch, peer, closed);
  });

  it("read pipes (host data into a guest client's pipe) and write pipes (guest data to a host pipe), with hang-up", async () => {
    const { ch, peer, closed } = await open();
    // Guest → host pipe request, e.g. wl_data_offer.receive: two pipes in one send need two SENDs.
    const [clientR1, clientW1] = native.pipe2();
    const [clientR2, clientW2] = native.pipe2();
    ch.send(pattern(16, 3), [
      { kind: "read-pipe", fd: clientW1 },
      { kind: "read-pipe", fd: clientW2 },
    ]);
    const req = await readPeer(peer, 16);
    expect(req.fdBatches).toEqual([1, 1]);
    const [hostW1, hostW2] = req.fds as [number, number];
    const big = pattern(300_000, 11);
    const p1 = readToEof(clientR1);
    await writeAll(hostW1, big);
    native.close(hostW1);
    expect(sameBytes(await p1, big)).toBe("equal");
    native.close(hostW2);
    expect((await readToEof(clientR2)).length).toBe(0);
    native.close(clientR1);
    native.close(clientR2);

    // Host → guest pipe, e.g. wl_data_source.send: the guest client writes, the host reads.
    const [hostR, hostW] = native.pipe2();
    const got = collect(ch, 1);
    await writeAll(peer, Uint8Array.of(4), [hostW]);
    native.close(hostW);
    const r = await got;
    const wp = r.items[0]!;
    if (wp.kind !== "write-pipe") throw new Error("expected a write pipe");
    const fromHost = readToEof(hostR);
    await writeAll(wp.fd, big);
    native.close(wp.fd);
    expect(sameBytes(await fromHost, big)).toBe("equal");
    native.close(hostR);
    await shutdown(ch, peer, closed);
  });

  it("moves 16 MiB each way through read and write pipes (clipboard-sized), intact", async () => {
    const { ch, peer, closed } = await open();
    const big = pattern(16 << 20, 21);
    const [clientR, clientW] = native.pipe2();
    ch.send(pattern(4, 1), [{ kind: "read-pipe", fd: clientW }]);
    const [hostW] = (await readPeer(peer, 4)).fds as [number];
    let t = performance.now();
    const got = readToEof(clientR, 32 << 20);
    await writeAll(hostW, big);
    native.close(hostW);
    expect(sameBytes(await got, big)).toBe("equal");
    const hostToGuestMs = performance.now() - t;
    native.close(clientR);

    const [hostR, hostW2] = native.pipe2();
    const rec = collect(ch, 1);
    await writeAll(peer, Uint8Array.of(4), [hostW2]);
    native.close(hostW2);
    const wp = (await rec).items[0]!;
    if (wp.kind !== "write-pipe") throw new Error("expected a write pipe");
    t = performance.now();
    const atHost = readToEof(hostR, 32 << 20);
    await writeAll(wp.fd, big);
    native.close(wp.fd);
    expect(sameBytes(await atHost, big)).toBe("equal");
    const guestToHostMs = performance.now() - t;
    native.close(hostR);
    console.log(
      `16 MiB host→guest ${hostToGuestMs.toFixed(0)} ms, guest→host ${guestToHostMs.toFixed(0)} ms`,
    );
    await shutdown(ch, peer, closed);
  });

  it("host EOF ends the channel cleanly (zero-length RECEIVE)", async () => {
    const { ch, peer, closed } = await open();
    native.close(peer);
    expect(await closed).toEqual({ kind: "host-hangup" });
    expect(ch.isClosed).toBe(true);
    expect(() => ch.send(Uint8Array.of(1))).toThrow(/closed/);
  });

  it("an unclassifiable host fd (a pipe's read end) ends the channel, as on a real host", async () => {
    const { ch, peer, closed } = await open();
    const [r, w] = native.pipe2();
    await writeAll(peer, Uint8Array.of(1), [r]);
    native.close(r);
    native.close(w);
    const reason = (await closed) as { kind: string; error?: CrosswayError };
    expect(ch.isClosed).toBe(true);
    expect(reason.kind).toBe("error");
    expect(reason.error?.message).toMatch(/worker halting.*read end of a pipe/);
    native.close(peer);
  });

  it("INIT to an absent host socket fails with a clear error instead of hanging", async () => {
    const t0 = Date.now();
    const err = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(device.socket),
      channelType: ChannelType.PIPEWIRE,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrosswayError);
    expect((err as CrosswayError).code).toBe("CW_CROSSDOMAIN_INIT_FAILED");
    expect((err as Error).message).toMatch(/channel pipewire.*absent-pw.*ENOENT/);
    expect(Date.now() - t0, "an immediate refusal, not a hang").toBeLessThan(20_000);
  });

  it("a channel the host does not offer is refused from the caps", async () => {
    const err = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(device.socket),
      channelType: ChannelType.X11,
    }).catch((e: unknown) => e);
    expect((err as CrosswayError).code).toBe("CW_CROSSDOMAIN_INIT_FAILED");
    expect((err as Error).message).toMatch(/offers no x11 channel/);
  });

  it("no fd of a guest client ever reaches the device process", async () => {
    const { ch, peer, closed } = await open();
    // Guest client fds: an shm pool memfd (copied into host memory) and a pipe for a clipboard transfer.
    const clientShm = native.memfdCreate("guest-client-shm", 0);
    native.ftruncate(clientShm, 4096);
    native.pwrite(clientShm, pattern(4096, 5), 0, 4096, 0);
    const [clientR, clientW] = native.pipe2();
    const reqs = await ch.imageRequirements(4096, 1, DrmFormat.R8);
    const pool = await ch.createHostBlob(reqs);
    const m = await pool.map();
    native.pread(clientShm, m.bytes, 0, 4096, 0);
    m.unmap();
    ch.send(pattern(8, 1), [
      { kind: "blob", resourceId: pool.resourceId },
      { kind: "read-pipe", fd: clientW },
    ]);
    const atPeer = await readPeer(peer, 8);
    const [poolFd, pipeW] = atPeer.fds as [number, number];
    const seen = new Uint8Array(4096);
    native.pread(poolFd, seen, 0, 4096, 0);
    expect(sameBytes(seen, pattern(4096, 5))).toBe("equal");

    const guestIds = new Set([clientShm, clientR].map((fd) => inode(`/proc/self/fd/${fd}`)));
    const deviceFds = readdirSync(`/proc/${device.pid}/fd`).map((n) => {
      const p = `/proc/${device.pid}/fd/${n}`;
      let target = "";
      try {
        target = readlinkSync(p);
      } catch {
        // raced with a close
      }
      return { target, id: inode(p) };
    });
    // The check can fail: the device does hold host blob memory and its end of the pipe.
    expect(deviceFds.some((f) => f.target.startsWith("/memfd:crossway-host-blob"))).toBe(true);
    expect(deviceFds.some((f) => f.target.startsWith("pipe:"))).toBe(true);
    expect(deviceFds.filter((f) => guestIds.has(f.id)).map((f) => f.target)).toEqual([]);
    expect(deviceFds.some((f) => f.target.startsWith("/memfd:guest-client-shm"))).toBe(false);

    native.close(pipeW);
    expect((await readToEof(clientR)).length).toBe(0);
    for (const fd of [poolFd, clientShm, clientR]) native.close(fd);
    pool.close();
    await shutdown(ch, peer, closed);
  });
});

describe("device resources", () => {
  it("40 channels opened and closed, with blobs, pipes and eventfds, leave the device's fd count where it was", async () => {
    const count = () => readdirSync(`/proc/${device.pid}/fd`).length;
    // One warm-up channel: the device's first context loads lazily created handles.
    const warm = await open();
    await shutdown(warm.ch, warm.peer, warm.closed);
    // The device tears a context down after the guest has gone: take the baseline once its count has held still
    // for 500 ms (the device closes everything of a context in one turn of its loop).
    let before = count();
    let still = Date.now();
    await waitFor(
      "the device's fd count to settle after the warm-up",
      () => {
        const n = count();
        if (n !== before) {
          before = n;
          still = Date.now();
        }
        return Date.now() - still >= 500 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    for (let i = 0; i < 40; i++) {
      const { ch, peer, closed } = await open();
      const blob = await ch.createHostBlob(await ch.imageRequirements(4096, 1, DrmFormat.R8));
      const [r, w] = native.pipe2();
      ch.send(pattern(8, i), [
        { kind: "blob", resourceId: blob.resourceId },
        { kind: "read-pipe", fd: w },
      ]);
      const atPeer = await readPeer(peer, 8);
      const ev = native.eventfd(0, 0);
      const got = collect(ch, 1);
      await writeAll(peer, Uint8Array.of(1), [ev]);
      closeItems((await got).items);
      for (const fd of [...atPeer.fds, r, ev]) native.close(fd);
      blob.close();
      await shutdown(ch, peer, closed);
    }
    let after = count();
    await waitFor(
      "the device's fd count back at its baseline",
      () => {
        after = count();
        return after === before ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    ).catch(() => undefined);
    expect(after).toBe(before);
  });
});

function inode(path: string): string {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return "gone";
  }
}

async function readCounter(fd: number): Promise<bigint> {
  const v = new Uint8Array(8);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const n = native.read(fd, v, 0, 8);
    if (n === 8) return new DataView(v.buffer).getBigUint64(0, true);
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("eventfd never signalled within 30 s");
}
