// fd classification from fstat, F_GETFL and /proc/self/fd: memfd, shm, eventfd, pipe ends, socket, dmabuf, other.
import { closeSync, openSync, rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { classifyFacts, classifyFd } from "../../../src/fd/classify.ts";
import { O_RDONLY, O_RDWR, S_IFCHR, S_IFIFO, S_IFREG } from "../../../src/fd/constants.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("classifyFd on real fds", () => {
  it("memfd, with its size", () => {
    const fd = native.memfdCreate("crossway-classify", 0);
    try {
      native.ftruncate(fd, 4096);
      expect(classifyFd(fd)).toMatchObject({ kind: "memfd", size: 4096 });
    } finally {
      native.close(fd);
    }
  });

  it("eventfd", () => {
    const fd = native.eventfd(0, 0);
    try {
      expect(classifyFd(fd).kind).toBe("eventfd");
    } finally {
      native.close(fd);
    }
  });

  it("both pipe ends", () => {
    const [r, w] = native.pipe2();
    try {
      expect(classifyFd(r).kind).toBe("pipe-read");
      expect(classifyFd(w).kind).toBe("pipe-write");
    } finally {
      native.close(r);
      native.close(w);
    }
  });

  it("socket", () => {
    const [a, b] = native.socketpair();
    try {
      expect(classifyFd(a).kind).toBe("socket");
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it("a /dev/shm file is shm; a regular file elsewhere and a character device are other", () => {
    const shmPath = `/dev/shm/crossway-classify-${process.pid}`;
    const shm = openSync(shmPath, "w+");
    const null_ = openSync("/dev/null", "r");
    const reg = openSync("/proc/self/exe", "r");
    try {
      expect(classifyFd(shm).kind).toBe("shm");
      expect(classifyFd(null_).kind).toBe("other");
      expect(classifyFd(reg).kind).toBe("other");
    } finally {
      closeSync(shm);
      closeSync(null_);
      closeSync(reg);
      rmSync(shmPath);
    }
  });

  it("throws EBADF for a closed fd", () => {
    const fd = native.eventfd(0, 0);
    native.close(fd);
    expect(() => classifyFd(fd)).toThrow(expect.objectContaining({ code: "EBADF" }));
  });
});

// No dmabuf source exists on these hosts (environment.md §3: no DRM, udmabuf or dma-heaps), so the dmabuf rules are
// checked on the facts a dmabuf fd presents: an anon inode (mode 0) whose link is "/dmabuf:" (Linux >= 5.3) or
// "anon_inode:dmabuf" (older kernels), as seen on a vgem dmabuf in a QEMU guest (environment.md §3).
describe("classifyFacts", () => {
  it.each([
    [{ mode: 0o600, flags: O_RDWR, path: "/dmabuf:" }, "dmabuf"],
    [{ mode: 0o600, flags: O_RDWR, path: "anon_inode:dmabuf" }, "dmabuf"],
    [{ mode: 0o600, flags: O_RDWR, path: "anon_inode:[eventfd]" }, "eventfd"],
    [{ mode: 0o600, flags: O_RDWR, path: "anon_inode:[timerfd]" }, "other"],
    [{ mode: S_IFIFO | 0o600, flags: O_RDWR, path: "/tmp/fifo" }, "other"],
    [{ mode: S_IFIFO | 0o600, flags: O_RDONLY, path: "pipe:[1]" }, "pipe-read"],
    [{ mode: S_IFREG | 0o600, flags: O_RDWR, path: "/memfd:wayland-shm (deleted)" }, "memfd"],
    [{ mode: S_IFCHR | 0o600, flags: O_RDWR, path: "/memfd:impostor" }, "other"],
  ] as const)("%j is %s", (facts, kind) => {
    expect(classifyFacts(facts)).toBe(kind);
  });
});
