// wl_shm through the guest proxy with a hand-driven client: pool growth past the host blob, early buffer
// release, and a client that shrinks its pool under a buffer (a protocol error for it alone, no proxy crash).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { native } from "../../src/native.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

/** A client with wl_compositor, wl_shm and a surface; `pool(size)` makes a memfd-backed pool. */
async function shmClient(socketPath: string) {
  const c = WaylandTestClient.connect(socketPath);
  const reg = await c.getRegistry();
  const compositor = c.bind(reg, "wl_compositor", 4);
  const shm = c.bind(reg, "wl_shm", 1);
  const surface = c.newId();
  c.request(compositor, "wl_compositor", "create_surface", (w) => w.uint(surface));
  const memfds: number[] = [];
  return {
    c,
    surface,
    memfds,
    pool(size: number): { id: number; fd: number; shm: number } {
      const fd = native.memfdCreate("test-pool", 0);
      memfds.push(fd);
      native.ftruncate(fd, size);
      const id = c.newId();
      c.request(shm, "wl_shm", "create_pool", (w) => w.uint(id).fd(fd).int(size), [fd]);
      return { id, fd, shm };
    },
    buffer(pool: number, offset: number, width: number, height: number): number {
      const id = c.newId();
      c.request(pool, "wl_shm_pool", "create_buffer", (w) =>
        w
          .uint(id)
          .int(offset)
          .int(width)
          .int(height)
          .int(width * 4)
          .uint(1),
      );
      return id;
    },
    commit(buffer: number): void {
      c.request(surface, "wl_surface", "attach", (w) => w.uint(buffer).int(0).int(0));
      c.request(surface, "wl_surface", "damage_buffer", (w) => w.int(0).int(0).int(64).int(64));
      c.request(surface, "wl_surface", "commit", () => {});
    },
    close(): void {
      c.close();
      for (const fd of memfds) native.close(fd);
    },
  };
}

describe("wl_shm through crossway guest (headless weston)", () => {
  let weston: Compositor;
  let stack: CrosswayStack;

  beforeAll(async () => {
    weston = await startWeston();
    stack = await startCrosswayStack(weston);
  });

  afterAll(async () => {
    await stack?.stop();
    await weston?.stop();
  });

  it("releases a buffer as soon as its commit is copied", async () => {
    const t = await shmClient(stack.socketPath);
    try {
      const p = t.pool(64 * 64 * 4);
      const b = t.buffer(p.id, 0, 64, 64);
      t.commit(b);
      await t.c.waitFor((e) => e.objectId === b && e.name === "release");
      await t.c.roundtrip();
      expect(t.c.error).toBeNull();
    } finally {
      t.close();
    }
  });

  it("a client's next pool of the same size bucket reuses its idle host blob; another size gets a new one", async () => {
    const debugStack = await startCrosswayStack(weston, { logLevel: "debug" });
    const MiB = 1024 * 1024;
    /** Host blobs made so far for pools (the rings and probe blobs are smaller than a MiB). */
    const poolBlobs = (): number =>
      debugStack.guestLogRecords().filter((r) => r.msg === "blob created" && (r.size as number) >= MiB)
        .length;
    /**
     * The count once a pool blob of at least `size` bytes was logged: the guest logs asynchronously and its stderr
     * reaches this process later still, so a line can land after the round trip that followed it. The log is
     * ordered, so once the latest pool's line is in, every earlier one is too.
     */
    const poolBlobsThrough = async (size: number): Promise<number> => {
      const seen = () =>
        debugStack.guestLogRecords().some((r) => r.msg === "blob created" && (r.size as number) >= size);
      const deadline = Date.now() + 10_000;
      while (!seen() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return poolBlobs();
    };
    const t = await shmClient(debugStack.socketPath);
    try {
      const cycle = async (size: number): Promise<void> => {
        const p = t.pool(size);
        const b = t.buffer(p.id, 0, 64, 64);
        t.commit(b);
        await t.c.waitFor((e) => e.objectId === b && e.name === "release");
        t.c.request(b, "wl_buffer", "destroy", () => {});
        t.c.request(p.id, "wl_shm_pool", "destroy", () => {});
        await t.c.roundtrip();
      };
      await cycle(MiB);
      expect(await poolBlobsThrough(MiB)).toBe(1);
      // foot's pattern on every resize: destroy the pool, create one of the same size. Same bucket: same blob.
      await cycle(MiB);
      await cycle(MiB - 4096);
      // Another bucket: a new blob. Its line comes after any the two cycles above made, so exactly 2 means they
      // made none.
      await cycle(4 * MiB);
      expect(await poolBlobsThrough(4 * MiB)).toBe(2);
      expect(t.c.error).toBeNull();
    } finally {
      t.close();
      await debugStack.stop();
    }
  });

  it("grows a pool past its host blob: buffers in the new space work, the host's delete_id stays hidden", async () => {
    const t = await shmClient(stack.socketPath);
    try {
      const p = t.pool(64 * 64 * 4);
      const first = t.buffer(p.id, 0, 64, 64);
      // 8 MiB is far beyond the 64 KiB bucket the first blob came from: the proxy must recreate the host pool.
      const big = 8 * 1024 * 1024;
      native.ftruncate(p.fd, big);
      t.c.request(p.id, "wl_shm_pool", "resize", (w) => w.int(big));
      const second = t.buffer(p.id, big - 64 * 64 * 4, 64, 64);
      t.commit(second);
      await t.c.waitFor((e) => e.objectId === second && e.name === "release");
      t.commit(first);
      await t.c.waitFor((e) => e.objectId === first && e.name === "release");
      await t.c.roundtrip();
      expect(t.c.error).toBeNull();
      expect(t.c.events.some((e) => e.name === "delete_id" && e.args[0] === p.id)).toBe(false);
    } finally {
      t.close();
    }
  });

  it("answers a pool shrunk under a buffer with wl_shm's error, and keeps serving other clients", async () => {
    const bystander = await shmClient(stack.socketPath);
    const t = await shmClient(stack.socketPath);
    try {
      const p = t.pool(64 * 64 * 4);
      const b = t.buffer(p.id, 0, 64, 64);
      native.ftruncate(p.fd, 100);
      t.commit(b);
      const err = await t.c.waitFor((e) => e.iface === "wl_display" && e.name === "error");
      expect(err.args).toEqual([b, 2, "error accessing SHM buffer"]);
      await bystander.c.roundtrip();
      expect(bystander.c.error).toBeNull();
      expect(stack.guestRunning()).toBe(true);
      await stack.waitForGuestLog("error accessing SHM buffer");
    } finally {
      t.close();
      bystander.close();
    }
  });

  it("refuses a buffer outside its pool with libwayland's wording", async () => {
    const t = await shmClient(stack.socketPath);
    try {
      const p = t.pool(4096);
      t.buffer(p.id, 0, 64, 64);
      const err = await t.c.waitFor((e) => e.iface === "wl_display" && e.name === "error");
      expect(err.args).toEqual([p.id, 1, "invalid width, height or stride (64x64, 256)"]);
    } finally {
      t.close();
    }
  });

  describe("with a per-client host shm limit of 1 MiB", () => {
    let limited: CrosswayStack;
    let dir: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "crossway-shm-limit-"));
      writeFileSync(join(dir, "guest.json"), JSON.stringify({ maxShmBytes: 1024 * 1024 }));
      limited = await startCrosswayStack(weston, { guestArgs: ["--config", join(dir, "guest.json")] });
    });

    afterAll(async () => {
      await limited?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("refuses a pool past the limit with no_memory, and counts freed pools back", async () => {
      const ok = await shmClient(limited.socketPath);
      try {
        // 768 KiB, destroyed, then 768 KiB again: the first one's host memory came back.
        const a = ok.pool(768 * 1024);
        ok.c.request(a.id, "wl_shm_pool", "destroy", () => {});
        await ok.c.roundtrip();
        ok.pool(768 * 1024);
        await ok.c.roundtrip();
        expect(ok.c.error).toBeNull();
      } finally {
        ok.close();
      }
      const t = await shmClient(limited.socketPath);
      try {
        t.pool(512 * 1024);
        const second = t.pool(768 * 1024);
        const err = await t.c.waitFor((e) => e.iface === "wl_display" && e.name === "error");
        expect(err.args[0]).toBe(1);
        expect(err.args[1]).toBe(2); // wl_display.error.no_memory
        expect(err.args[2]).toBe(
          `no memory: wl_shm@${second.shm}.create_pool(size 786432) would bring this client's host shm to 1310720 bytes (limit 1048576)`,
        );
      } finally {
        t.close();
      }
      expect(limited.guestRunning()).toBe(true);
    });
  });
});
