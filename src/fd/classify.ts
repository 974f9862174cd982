// Classifies an fd the way rutabaga's cross-domain does before sending it to a guest (memfd, dmabuf, pipe ends...).
import { native } from "../native.ts";
import { O_ACCMODE, O_RDONLY, O_WRONLY, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK } from "./constants.ts";

/**
 * What an fd is, for deciding how it can cross to a guest: shared memory (memfd or a /dev/shm file) and dmabufs
 * become blob resources, pipe ends become cross-domain pipes, eventfds are signalled, sockets and the rest are refused.
 */
export type FdKind = "memfd" | "shm" | "dmabuf" | "eventfd" | "pipe-read" | "pipe-write" | "socket" | "other";

/** The facts classification is made from (all cheap syscalls: fstat, fcntl(F_GETFL), readlink /proc/self/fd). */
export interface FdFacts {
  /** st_mode from fstat. */
  mode: number;
  /** fcntl(F_GETFL) flags. */
  flags: number;
  /** readlink("/proc/self/fd/N"). */
  path: string;
}

/** An fd's kind with the facts it was derived from, plus st_size (the shm/dmabuf size to share). */
export interface FdInfo extends FdFacts {
  kind: FdKind;
  size: number;
}

/**
 * Pure classification from facts. The order matters: the /proc link names anonymous inodes that fstat cannot tell
 * apart (eventfd and dmabuf both look like anon inodes). Sources: the kernel names anon inodes "anon_inode:[eventfd]"
 * (fs/eventfd.c) and dmabufs "/dmabuf:<name>" (or "anon_inode:dmabuf" before Linux 5.3, drivers/dma-buf/dma-buf.c);
 * memfds link to "/memfd:<name> (deleted)" (mm/memfd.c). Pipes are told apart by their access mode, as
 * rutabaga's cross_domain does for its read/write pipe identifiers.
 */
export function classifyFacts(f: FdFacts): FdKind {
  const type = f.mode & S_IFMT;
  if (type === S_IFSOCK) return "socket";
  if (type === S_IFIFO) {
    const acc = f.flags & O_ACCMODE;
    if (acc === O_RDONLY) return "pipe-read";
    if (acc === O_WRONLY) return "pipe-write";
    // A FIFO opened O_RDWR has no single direction: it cannot be one end of a cross-domain pipe.
    return "other";
  }
  if (f.path.startsWith("/dmabuf:") || f.path === "anon_inode:dmabuf") return "dmabuf";
  if (f.path === "anon_inode:[eventfd]") return "eventfd";
  if (type === S_IFREG && f.path.startsWith("/memfd:")) return "memfd";
  if (type === S_IFREG && f.path.startsWith("/dev/shm/")) return "shm";
  return "other";
}

/** Classifies a live fd (three syscalls). Throws a SystemError-shaped error for a closed fd. */
export function classifyFd(fd: number): FdInfo {
  const st = native.fstat(fd);
  const facts: FdFacts = { mode: st.mode, flags: native.getFl(fd), path: native.fdPath(fd) };
  return { ...facts, kind: classifyFacts(facts), size: st.size };
}
