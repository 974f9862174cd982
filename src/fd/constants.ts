// Linux x86-64/arm64 constants for the native syscalls (values from <linux/memfd.h>, <fcntl.h>, <sys/mman.h>).

/** memfd_create flags. MFD_CLOEXEC is always added by the addon. */
export const MFD_ALLOW_SEALING = 0x2;

/** File seals for F_ADD_SEALS / F_GET_SEALS. */
export const F_SEAL_SEAL = 0x1;
export const F_SEAL_SHRINK = 0x2;
export const F_SEAL_GROW = 0x4;
export const F_SEAL_WRITE = 0x8;
/** Since Linux 5.1: no new writable mappings or writes; existing writable mappings stay (crosvm honours it, §7.3). */
export const F_SEAL_FUTURE_WRITE = 0x10;

/** mmap protection and flags. */
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x1;
export const MAP_PRIVATE = 0x2;

/** open(2) access mode mask and values, as fcntl(F_GETFL) reports them. */
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;

/** flock(2) operations. */
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** st_mode file type mask and types. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFREG = 0o100000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IWUSR = 0o200;
export const S_IWGRP = 0o020;

/** shutdown(2) directions. */
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
