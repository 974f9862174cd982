// A wl_shm pool's host blob mapped by windows (PoolBlob.cover): against a real `crossway device`, the bytes written
// through a window at a base offset land at that offset of the host's memory, widening keeps what was written, and
// V8 never sees a mapping of the whole blob.
import { closeSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { createUnmappedLinearBlob } from "../../src/crossdomain/linear-blob.ts";
import { ChannelType } from "../../src/crossdomain/protocol.ts";
import { native } from "../../src/native.ts";
import { PoolBlob, ShmBuffer, ShmPool } from "../../src/proxy/wayland/shm-pools.ts";
import { useDeviceAndHost } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

const MiB = 1024 * 1024;

const env = useDeviceAndHost("crossway-poolwin-");

/** Reads `len` bytes at `at` of the blob's memory as the host sees it (an exported fd of the same memory). */
function hostBytes(fd: number, at: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  expect(native.pread(fd, out, 0, len, at)).toBe(len);
  return out;
}

describe("PoolBlob windows over a 64 MiB host blob", () => {
  it("maps only what buffers use, at their offsets, and widens without losing bytes", async () => {
    const mappingsAtStart = native.liveMappings();
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(env.device.socket),
      channelType: ChannelType.WAYLAND,
    });
    const peer = await env.host.next();
    const blob = await createUnmappedLinearBlob(ch, 64 * MiB);
    const exported = await blob.export();
    const pool = new PoolBlob(blob, 64 * MiB);
    const mappingsBefore = native.liveMappings();
    try {
      expect(pool.mapped).toBeNull();
      // A buffer deep in the pool (foot puts its first one 128 MiB into a 512 MiB pool): one 64 KiB-aligned window.
      const deep = 40 * MiB + 1000;
      await pool.cover(deep, deep + 5000);
      const w1 = pool.mapped!;
      expect(w1.base).toBe(40 * MiB);
      expect(w1.bytes.byteLength).toBe(64 * 1024);
      expect(native.liveMappings()).toBe(mappingsBefore + 1);
      w1.bytes.set([1, 2, 3, 4], deep - w1.base);
      expect(hostBytes(exported.fd, deep, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
      // Inside the window: nothing new is mapped.
      expect(pool.covers(deep + 100, deep + 200)).toBe(true);
      await pool.cover(deep + 100, deep + 200);
      expect(pool.mapped).toBe(w1);
      // A second buffer lower in the pool: the window becomes the union, the old mapping goes, the bytes stay.
      const low = 2 * MiB + 10;
      await pool.cover(low, low + 4096);
      const w2 = pool.mapped!;
      expect(w1.bytes.byteLength).toBe(0); // unmapped and detached
      expect(w2.base).toBe(2 * MiB);
      expect(w2.base + w2.bytes.byteLength).toBe(40 * MiB + 64 * 1024);
      expect(native.liveMappings()).toBe(mappingsBefore + 1);
      expect(Array.from(w2.bytes.subarray(deep - w2.base, deep - w2.base + 4))).toEqual([1, 2, 3, 4]);
      w2.bytes.set([9, 8, 7], low - w2.base);
      expect(hostBytes(exported.fd, low, 3)).toEqual(new Uint8Array([9, 8, 7]));
      // Concurrent covers are serialized: both windows end up inside the one mapping.
      await Promise.all([pool.cover(60 * MiB, 60 * MiB + 10), pool.cover(0, 10)]);
      expect(pool.covers(0, 10) && pool.covers(60 * MiB, 60 * MiB + 10)).toBe(true);
      expect(native.liveMappings()).toBe(mappingsBefore + 1);
    } finally {
      pool.dispose();
      native.close(exported.fd);
      ch.close();
      native.close(peer);
    }
    expect(native.liveMappings()).toBe(mappingsAtStart);
  });
});

describe("a buffer's first copy", () => {
  /** A 16 MiB pool whose 256x64 buffer sits 8 MiB in, filled with a pattern; the copy's host bytes are compared. */
  async function firstCopy(clientFd: number): Promise<{ hostSame: boolean; mappedForIt: number }> {
    const ch = await CrossDomainChannel.open({
      gpu: openEmulatedVirtGpu(env.device.socket),
      channelType: ChannelType.WAYLAND,
    });
    const peer = await env.host.next();
    const size = 16 * MiB;
    const offset = 8 * MiB + 4096;
    const [w, h, stride] = [256, 64, 1024];
    const pixels = new Uint8Array(stride * h);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 13 + 5) & 0xff;
    native.ftruncate(clientFd, size);
    expect(native.pwrite(clientFd, pixels, 0, pixels.length, offset)).toBe(pixels.length);
    const blob = await createUnmappedLinearBlob(ch, size);
    const exported = await blob.export();
    const pb = new PoolBlob(blob, size);
    const pool = new ShmPool(2, 1, native.dup(clientFd), size, pb);
    const buffer = new ShmBuffer(3, pool, pb, offset, w, h, stride, 0);
    try {
      await pb.cover(offset, offset + stride * h);
      const before = native.liveMappings();
      const res = buffer.copy([{ x: 0, y: 0, width: w, height: h }]);
      expect(res).toEqual({ ok: true, bytes: stride * h });
      const mappedForIt = native.liveMappings() - before;
      const hostSame = sameBytes(hostBytes(exported.fd, offset, pixels.length), pixels);
      // Warming touches every page of both mappings (the pool's window gets mapped for it) and changes no byte.
      expect(buffer.cold).toBe(mappedForIt === 0);
      buffer.warm();
      expect(buffer.cold).toBe(false);
      expect(sameBytes(hostBytes(exported.fd, offset, pixels.length), pixels)).toBe(true);
      return { hostSame, mappedForIt };
    } finally {
      buffer.release();
      pool.unref();
      native.close(exported.fd);
      ch.close();
      native.close(peer);
    }
  }

  function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  it("of a memfd pool is copied file to file (copy_file_range): the client's pool is never mapped for it", async () => {
    const fd = native.memfdCreate("client-pool", 0);
    try {
      expect(await firstCopy(fd)).toEqual({ hostSame: true, mappedForIt: 0 });
    } finally {
      native.close(fd);
    }
  });

  it("of a pool file on another filesystem (no copy_file_range to the blob) is copied through mappings", async () => {
    // A regular file beside the checkout: copy_file_range refuses to cross into the memfd's filesystem (EXDEV).
    const path = join(process.cwd(), `.pool-blob-window-${process.pid}`);
    const fd = openSync(path, "w+");
    unlinkSync(path);
    try {
      const r = await firstCopy(fd);
      expect(r.hostSame).toBe(true);
      expect(r.mappedForIt).toBe(1); // the client pool's window
    } finally {
      closeSync(fd);
    }
  });
});
