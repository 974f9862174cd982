// A syscall argument the kernel cannot read until the test lets it: 8 bytes on a page registered with userfaultfd
// that nobody has filled, so a syscall given a pointer into it sleeps in the kernel, as a virtgpu ioctl or mmap does
// until the host answers. Needs root (vm.unprivileged_userfaultfd is 0 on Debian), as the test command runs.
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../src/fd/constants.ts";
import { native, POLL_READABLE } from "../../src/native.ts";

/** _IOWR(0xAA, 0x3F, struct uffdio_api) and _IOWR(0xAA, 0x00, struct uffdio_register) (linux/userfaultfd.h). */
const UFFDIO_API = 0xc018aa3f;
const UFFDIO_REGISTER = 0xc020aa00;
/** _IOWR(0xAA, 0x03, struct uffdio_copy {dst, src, len, mode, copy}): fills missing pages and wakes the faulter. */
const UFFDIO_COPY = 0xc028aa03;
const UFFD_API = 0xaa;
const UFFDIO_REGISTER_MODE_MISSING = 1;
/** uffd_msg.event of a page fault; sizeof(struct uffd_msg) is 32. */
const UFFD_EVENT_PAGEFAULT = 0x12;
const PAGE = 4096;

export interface KernelStall {
  /** 8 bytes at the start of the unfilled page: the kernel sleeps on its first read of them. */
  readonly arg: Uint8Array;
  /** The first `n` bytes of the page (≤ 4096), for a syscall argument larger than 8 bytes. */
  view(n: number): Uint8Array;
  /** Fills the page with `bytes` (the rest zero), which wakes the sleeping syscall: it then reads these bytes. */
  fill(bytes: Uint8Array): void;
  /** Resolves once a thread sleeps in the kernel on the page (the fault has reached the userfaultfd). */
  readonly faulted: Promise<void>;
  /** Lets the sleeping syscall go on: closing the userfaultfd retries the fault as an ordinary one (a zero page). */
  release(): void;
  /** Unmaps the page; only once the stalled syscall has returned. */
  dispose(): void;
}

export function kernelStall(): KernelStall {
  const uffd = native.userfaultfd(0);
  const api = new Uint8Array(24);
  new DataView(api.buffer).setBigUint64(0, BigInt(UFFD_API), true);
  native.ioctl(uffd, UFFDIO_API, api);
  const memfd = native.memfdCreate("kernel-stall", 0);
  let page: ArrayBuffer;
  try {
    native.ftruncate(memfd, PAGE);
    page = native.mmap(memfd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
  } finally {
    native.close(memfd);
  }
  const reg = new Uint8Array(32);
  const v = new DataView(reg.buffer);
  v.setBigUint64(8, BigInt(PAGE), true);
  v.setBigUint64(16, BigInt(UFFDIO_REGISTER_MODE_MISSING), true);
  // range.start is the page's address, which only the addon knows: patched in at offset 0.
  native.ioctlPointers(uffd, UFFDIO_REGISTER, reg, [0], [new Uint8Array(page)]);

  let released = false;
  let watching = true;
  const w = native.createWatcher(uffd, () => onMessage());
  const stopWatch = () => {
    if (!watching) return;
    watching = false;
    w.stop();
    w.close();
  };
  let onMessage = () => {};
  const faulted = new Promise<void>((resolve, reject) => {
    onMessage = () => {
      const msg = new Uint8Array(32);
      const n = native.read(uffd, msg, 0, msg.length);
      stopWatch();
      if (n === 32 && msg[0] === UFFD_EVENT_PAGEFAULT) resolve();
      else reject(new Error(`kernelStall: unexpected userfaultfd message (${n} bytes, event ${msg[0]})`));
    };
  });
  w.start(POLL_READABLE);
  return {
    arg: new Uint8Array(page, 0, 8),
    view: (n) => new Uint8Array(page, 0, n),
    fill(bytes) {
      const src = new Uint8Array(PAGE);
      src.set(bytes);
      const copy = new Uint8Array(40);
      new DataView(copy.buffer).setBigUint64(16, BigInt(PAGE), true);
      native.ioctlPointers(uffd, UFFDIO_COPY, copy, [0, 8], [new Uint8Array(page), src]);
    },
    faulted,
    release() {
      if (released) return;
      released = true;
      stopWatch();
      native.close(uffd);
    },
    dispose() {
      this.release();
      native.munmap(page);
    },
  };
}
