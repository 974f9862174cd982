// Host flavours and configuration against real `crossway device` processes: libkrun (24-byte INIT, eventfd type 6),
// the legacy 4-identifier layout, back-pressure by pausing, failed queries, and guest-side close.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrossDomainChannel, type ReceivedItem } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType, type CrossDomainConfig, DrmFormat } from "../../src/crossdomain/protocol.ts";
import type { CrosswayError } from "../../src/errors.ts";
import { native } from "../../src/native.ts";
import {
  type DeviceProcess,
  HostServer,
  pattern,
  readPeer,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

interface Env {
  tmp: ReturnType<typeof tempDir>;
  host: HostServer;
  device: DeviceProcess;
}

async function env(name: string, args: string[]): Promise<Env> {
  const tmp = tempDir(`crossway-${name}-`);
  const host = new HostServer(join(tmp.dir, "wayland-host"));
  const device = await startDeviceProcess(tmp.dir, ["--wayland", host.path, ...args]);
  return { tmp, host, device };
}

async function stop(e: Env | undefined): Promise<void> {
  if (e === undefined) return;
  await e.device.stop();
  e.host.close();
  e.tmp.remove();
}

async function openOn(e: Env, config: CrossDomainConfig, initForm: "v1" | "libkrun" = "v1") {
  const ch = await CrossDomainChannel.open({
    gpu: openEmulatedVirtGpu(e.device.socket),
    channelType: ChannelType.WAYLAND,
    config,
    initForm,
  });
  const peer = await e.host.next();
  const closed = new Promise((resolve) => {
    ch.onClose = resolve;
  });
  return { ch, peer, closed };
}

function nextReceive(ch: CrossDomainChannel): Promise<{ data: Uint8Array; items: readonly ReceivedItem[] }> {
  return new Promise((resolve) => {
    ch.onReceive = (data, items) => {
      resolve({ data: data.slice(), items });
      return "continue";
    };
  });
}

describe("libkrun flavour", () => {
  let e: Env | undefined;
  const cfg: CrossDomainConfig = { flavor: "libkrun", maxIdentifiers: 28 };
  beforeAll(async () => {
    e = await env("libkrun", ["--flavor", "libkrun"]);
  });
  afterAll(() => stop(e));

  it("accepts the 24-byte INIT and carries eventfds (identifier type 6 on libkrun)", async () => {
    const { ch, peer, closed } = await openOn(e!, cfg, "libkrun");
    const efd = native.eventfd(0, 0);
    const got = nextReceive(ch);
    await writeAll(peer, Uint8Array.of(1), [efd]);
    const r = await got;
    // Item ids share one counter from 2 with image-requirement templates (the open probe took 2).
    expect(r.items).toEqual([{ kind: "eventfd", id: 3 }]);
    const local = ch.eventfdFromHost(3);
    const v = new Uint8Array(8);
    v[0] = 3;
    native.write(efd, v, 0, 8);
    let n = -1;
    const deadline = Date.now() + 30_000;
    while (n !== 8 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 5));
      n = native.read(local, v, 0, 8);
    }
    expect(n, "the counter reached the guest's eventfd").toBe(8);
    expect(v[0]).toBe(3);
    for (const fd of [efd, local, peer]) native.close(fd);
    ch.close();
    await closed;
  });
});

describe("crosvm flavour, legacy 4-identifier layout", () => {
  let e: Env | undefined;
  beforeAll(async () => {
    e = await env("legacy", ["--identifiers", "4"]);
  });
  afterAll(() => stop(e));

  it("splits 5 blobs into SENDs of 4 and 1 and lays data out at offset 64", async () => {
    const { ch, peer, closed } = await openOn(e!, { flavor: "crosvm", maxIdentifiers: 4 });
    const reqs = await ch.imageRequirements(100, 10, DrmFormat.XRGB8888);
    expect(reqs).toMatchObject({ strides: [400, 0, 0, 0], size: 4096 });
    const blobs = [];
    for (let i = 0; i < 5; i++) blobs.push(await ch.createHostBlob(reqs));
    const msg = pattern(40, 2);
    ch.send(
      msg,
      blobs.map((b) => ({ kind: "blob" as const, resourceId: b.resourceId })),
    );
    const r = await readPeer(peer, 40);
    expect(Buffer.from(r.data).equals(Buffer.from(msg))).toBe(true);
    expect(r.fdBatches).toEqual([4, 1]);
    for (const fd of r.fds) native.close(fd);
    for (const b of blobs) b.close();
    native.close(peer);
    ch.close();
    await closed;
  });

  it("the legacy 16-byte INIT shares one ring for queries and messages", async () => {
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(e!.device.socket),
      channelType: ChannelType.WAYLAND,
      config: { flavor: "crosvm", maxIdentifiers: 4 },
      initForm: "legacy",
    });
    const peer = await e!.host.next();
    const closed = new Promise((resolve) => {
      ch.onClose = resolve;
    });
    const got = nextReceive(ch);
    await writeAll(peer, Uint8Array.of(7, 8, 9));
    expect([...(await got).data]).toEqual([7, 8, 9]);
    native.close(peer);
    expect(await closed).toEqual({ kind: "host-hangup" });
  });

  it("a crosvm host rejects the libkrun 24-byte INIT (P2), and the guest is told", async () => {
    const err = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(e!.device.socket),
      channelType: ChannelType.WAYLAND,
      config: { flavor: "crosvm", maxIdentifiers: 4 },
      initForm: "libkrun",
    }).catch((x: unknown) => x);
    expect((err as CrosswayError).code).toBe("CW_CROSSDOMAIN_INIT_FAILED");
    expect((err as Error).message).toMatch(/cmd_size 24 is not 16, 20 or 36/);
  });
});

describe("back-pressure, queries and teardown", () => {
  let e: Env | undefined;
  beforeAll(async () => {
    e = await env("bp", []);
  });
  afterAll(() => stop(e));

  it("a paused receiver gets nothing until resume(), then everything in order", async () => {
    const { ch, peer, closed } = await openOn(e!, { flavor: "crosvm", maxIdentifiers: 28 });
    const chunks: Uint8Array[] = [];
    ch.onReceive = (d) => {
      chunks.push(d.slice());
      return "pause";
    };
    const all = pattern(10_000, 4);
    await writeAll(peer, all);
    await waitFor("the first RECEIVE", () => (chunks.length > 0 ? true : undefined), { timeoutMs: 30_000 });
    // Paused: no second RECEIVE may follow, however long we look (150 ms here).
    await new Promise((r) => setTimeout(r, 150));
    expect(chunks.length).toBe(1);
    let total = chunks[0]!.length;
    while (total < all.length) {
      ch.resume();
      await new Promise((r) => setTimeout(r, 20));
      total = chunks.reduce((a, c) => a + c.length, 0);
    }
    expect(Buffer.concat(chunks).equals(Buffer.from(all))).toBe(true);
    native.close(peer);
    ch.close();
    await closed;
  });

  it("an unsupported format fails its query without ending the channel; queries are cached", async () => {
    const { ch, peer, closed } = await openOn(e!, { flavor: "crosvm", maxIdentifiers: 28 });
    const bad = await ch.imageRequirements(16, 16, 0x12345678).catch((x: unknown) => x);
    expect((bad as CrosswayError).code).toBe("CW_CROSSDOMAIN_QUERY_FAILED");
    expect((bad as Error).message).toMatch(/InvalidGrallocDrmFormat 0x12345678/);
    expect(ch.isClosed).toBe(false);
    const a = await ch.imageRequirements(64, 64, DrmFormat.ARGB8888);
    const b = await ch.imageRequirements(64, 64, DrmFormat.ARGB8888);
    expect(a).toBe(b);
    expect(a).toMatchObject({ strides: [256, 0, 0, 0], size: 16384 });
    // A blob of the wrong size for its template is refused, like rutabaga's "blob size mismatch".
    const wrong = await ch.createHostBlob({ ...a, size: 4096 }).catch((x: unknown) => x);
    expect((wrong as Error).message).toMatch(/blob size mismatch/);
    native.close(peer);
    ch.close();
    await closed;
  });

  it("reports the host caps (no dmabuf from the emulated device) and imports only its own blobs", async () => {
    const { ch, peer, closed } = await openOn(e!, { flavor: "crosvm", maxIdentifiers: 28 });
    expect(ch.caps).toEqual({
      version: 1,
      supportedChannels: 1 << ChannelType.WAYLAND,
      supportsDmabuf: false,
      supportsExternalGpuMemory: false,
    });
    const blob = await ch.createHostBlob(await ch.imageRequirements(4096, 1, DrmFormat.R8));
    const exp = await blob.export();
    const imported = await ch.importDmabuf(exp.fd);
    const again = await ch.importDmabuf(exp.fd);
    expect(imported.resourceId).toBe(blob.resourceId);
    expect(again.resourceId).toBe(blob.resourceId);
    ch.send(Uint8Array.of(9), [{ kind: "blob", resourceId: imported.resourceId }]);
    imported.release();
    again.release();
    blob.close();
    const r = await readPeer(peer, 1);
    expect(r.fds.length).toBe(1);
    const plain = native.memfdCreate("client-shm", 0);
    await expect(ch.importDmabuf(plain)).rejects.toThrow(/not a virtio-gpu blob/);
    for (const fd of [plain, exp.fd, ...r.fds, peer]) native.close(fd);
    ch.close();
    await closed;
  });

  it("closing the channel closes the host connection (the peer sees EOF)", async () => {
    const { ch, peer, closed } = await openOn(e!, { flavor: "crosvm", maxIdentifiers: 28 });
    ch.send(Uint8Array.of(1, 2, 3));
    await readPeer(peer, 3);
    ch.close();
    expect(await closed).toEqual({ kind: "local" });
    await expect(readPeer(peer, 1)).rejects.toThrow(/peer EOF after 0 of 1 bytes/);
    native.close(peer);
  });
});
