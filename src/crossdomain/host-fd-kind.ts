// Classifies an fd the host received from its peer socket into a cross-domain item type, as rutabaga/libkrun do.
// Written here because src/fd/classify.ts (foundation) was not on main yet; the rules are crossdomain.md §3.3:
// [RG] worker.rs process_receive + descriptor.rs determine_type, [KR] mod.rs process_receive.
import { native } from "../native.ts";
import { eventfdIdentifierType, type HostFlavor, IdentifierType } from "./protocol.ts";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const O_ACCMODE = 3;
const O_WRONLY = 1;

/** What a received host fd becomes: an identifier type and size, or the reason the host worker halts. */
export type HostFdKind =
  | {
      readonly ok: true;
      readonly kind: "blob" | "eventfd" | "write-pipe" | "socket";
      readonly type: number;
      readonly size: number;
    }
  | { readonly ok: false; readonly reason: string };

/**
 * Classifies `fd` (§3.3 table). Seekable files (lseek(SEEK_END) works: regular files, and char/block devices, by
 * inference) are blobs of their size: memfd, shm, dmabuf alike. Eventfds are type 5 (crosvm) or 6 (libkrun). Pipe
 * write ends are WRITE_PIPE. Sockets are type 7 on crosvm only. Anything else (read ends of pipes, sync_files,
 * sockets on libkrun) is InvalidCrossDomainItemType, which halts a real host's worker (P6).
 */
export function classifyHostFd(fd: number, flavor: HostFlavor): HostFdKind {
  const st = native.fstat(fd);
  const fmt = st.mode & S_IFMT;
  if (fmt === S_IFREG || fmt === S_IFCHR || fmt === S_IFBLK) {
    if (st.size > 0xffffffff)
      return { ok: false, reason: `fd ${fd}: file of ${st.size} bytes exceeds 4 GiB` };
    return { ok: true, kind: "blob", type: IdentifierType.VIRTGPU_BLOB, size: st.size };
  }
  let path = "";
  try {
    path = native.fdPath(fd);
  } catch {
    // Unreadable link: classified by fstat alone.
  }
  if (path === "anon_inode:[eventfd]") {
    return { ok: true, kind: "eventfd", type: eventfdIdentifierType(flavor), size: 0 };
  }
  if (fmt === S_IFIFO) {
    if ((native.getFl(fd) & O_ACCMODE) === O_WRONLY) {
      return { ok: true, kind: "write-pipe", type: IdentifierType.WRITE_PIPE, size: 0 };
    }
    return { ok: false, reason: `fd ${fd} (${path}): the read end of a pipe cannot be sent to the guest` };
  }
  if (fmt === S_IFSOCK && flavor === "crosvm") {
    return { ok: true, kind: "socket", type: IdentifierType.SOCKET, size: 0 };
  }
  return {
    ok: false,
    reason: `fd ${fd} (${path || `mode 0o${fmt.toString(8)}`}): InvalidCrossDomainItemType`,
  };
}
