// native.IoctlQueue: ioctls and mmaps on a thread of the queue's own, in submission order, settled on the event loop;
// a call asleep in the kernel holds up its own queue only (issue 11: no ioctl that can block on the event loop).
import { describe, expect, it } from "vitest";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../../src/fd/constants.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";
import { kernelStall } from "../../helpers/kernel-stall.ts";

useFdLeakCheck();

/** FIONREAD and FIONBIO (asm-generic/ioctls.h): both read or write an int through the argument pointer. */
const FIONREAD = 0x541b;
const FIONBIO = 0x5421;

/** A pipe read end holding `n` unread bytes, and a queue owning a dup of it. */
function pipeQueue(n: number) {
  const [r, w] = native.pipe2();
  native.write(w, new Uint8Array(n), 0, n);
  const fd = native.dup(r);
  native.close(r);
  return { queue: new native.IoctlQueue(fd), fd, closeWriter: () => native.close(w) };
}

describe("native.IoctlQueue", () => {
  it("settles each ioctl with its result or its errno, and closes its fd after the calls before", async () => {
    const { queue, fd, closeWriter } = pipeQueue(7);
    const count = new Uint8Array(4);
    const a = queue.ioctl(FIONREAD, count, [], []);
    // DRM_IOCTL_VIRTGPU_GET_CAPS on a pipe: ENOTTY, as a SystemError-shaped rejection.
    const b = queue.ioctl(0xc0186449, new Uint8Array(24), [8], [new Uint8Array(16)]);
    const closed = queue.close();
    expect(() => queue.ioctl(FIONREAD, count, [], [])).toThrow("IoctlQueue: closed");
    expect(await a).toBe(0);
    expect(new DataView(count.buffer).getInt32(0, true)).toBe(7);
    await expect(b).rejects.toMatchObject({ code: "ENOTTY", syscall: "ioctl", errno: -25 });
    await closed;
    expect(() => native.fstat(fd)).toThrow(/EBADF/);
    closeWriter();
  });

  it("maps through the queue: the ArrayBuffer is a live mapping that munmap releases", async () => {
    const memfd = native.memfdCreate("queue-mmap", 0);
    native.ftruncate(memfd, 8192);
    native.pwrite(memfd, new Uint8Array([1, 2, 3]), 0, 3, 4096);
    const queue = new native.IoctlQueue(memfd);
    const before = native.liveMappings();
    const ab = await queue.mmap(8192, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(native.liveMappings()).toBe(before + 1);
    expect([...new Uint8Array(ab, 4096, 3)]).toEqual([1, 2, 3]);
    await expect(queue.mmap(4096, PROT_READ, MAP_SHARED, 1)).rejects.toMatchObject({
      code: "EINVAL",
      syscall: "mmap",
    });
    native.munmap(ab);
    expect(native.liveMappings()).toBe(before);
    await queue.close();
  });

  it("a call asleep in the kernel holds up only its own queue: the event loop and other queues go on", async () => {
    const stall = kernelStall();
    const stuck = pipeQueue(3);
    const free = pipeQueue(5);
    try {
      // FIONBIO reads its int through the pointer: the kernel faults on the unfilled page and sleeps there.
      const asleep = stuck.queue.ioctl(FIONBIO, stall.arg, [], []);
      const behind = new Uint8Array(4);
      const queuedBehind = stuck.queue.ioctl(FIONREAD, behind, [], []);
      let settled = 0;
      void asleep.then(() => settled++);
      void queuedBehind.then(() => settled++);
      await stall.faulted;

      // Meanwhile: timers fire and another queue's calls complete, many times over.
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const count = new Uint8Array(4);
      for (let i = 0; i < 50; i++) expect(await free.queue.ioctl(FIONREAD, count, [], [])).toBe(0);
      await new Promise((r) => setTimeout(r, 50));
      clearInterval(timer);
      expect(new DataView(count.buffer).getInt32(0, true)).toBe(5);
      expect(ticks).toBeGreaterThan(0);
      expect(settled, "the stalled call and the one queued behind it are still waiting").toBe(0);

      stall.release();
      expect(await asleep).toBe(0);
      expect(await queuedBehind).toBe(0);
      expect(new DataView(behind.buffer).getInt32(0, true)).toBe(3);
    } finally {
      stall.dispose();
      await stuck.queue.close();
      await free.queue.close();
      stuck.closeWriter();
      free.closeWriter();
    }
  });
});
