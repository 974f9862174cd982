// Turns an fd the host received from its peer socket into a cross-domain item type, as rutabaga/libkrun do.
// Rules: crossdomain.md §3.3 table ([RG] worker.rs process_receive + descriptor.rs determine_type, [KR] mod.rs
// process_receive); the fd facts come from the shared classifier in src/fd/classify.ts.
import { classifyFd } from "../fd/classify.ts";
import { S_IFBLK, S_IFCHR, S_IFMT, S_IFREG } from "../fd/constants.ts";
import { eventfdIdentifierType, type HostFlavor, IdentifierType } from "./protocol.ts";

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
 * Classifies `fd` (§3.3 table). Anything lseek(SEEK_END) accepts is a blob of its size: memfd, shm, dmabuf, and
 * (inference) any regular file or device node, which rutabaga treats as shm. Eventfds are type 5 (crosvm) or 6
 * (libkrun). Pipe write ends are WRITE_PIPE. Sockets are type 7 on crosvm only. Anything else (read ends of pipes,
 * sync_files, sockets on libkrun) is InvalidCrossDomainItemType, which halts a real host's worker (P6).
 */
export function classifyHostFd(fd: number, flavor: HostFlavor): HostFdKind {
  const info = classifyFd(fd);
  const fmt = info.mode & S_IFMT;
  const seekable = info.kind === "memfd" || info.kind === "shm" || info.kind === "dmabuf" || fmt === S_IFREG;
  if (seekable || fmt === S_IFCHR || fmt === S_IFBLK) {
    if (info.size > 0xffffffff)
      return { ok: false, reason: `fd ${fd}: file of ${info.size} bytes exceeds 4 GiB` };
    return { ok: true, kind: "blob", type: IdentifierType.VIRTGPU_BLOB, size: info.size };
  }
  switch (info.kind) {
    case "eventfd":
      return { ok: true, kind: "eventfd", type: eventfdIdentifierType(flavor), size: 0 };
    case "pipe-write":
      return { ok: true, kind: "write-pipe", type: IdentifierType.WRITE_PIPE, size: 0 };
    case "pipe-read":
      return {
        ok: false,
        reason: `fd ${fd} (${info.path}): the read end of a pipe cannot be sent to the guest`,
      };
    case "socket":
      if (flavor === "crosvm") return { ok: true, kind: "socket", type: IdentifierType.SOCKET, size: 0 };
      break;
    default:
      break;
  }
  return { ok: false, reason: `fd ${fd} (${info.path}): InvalidCrossDomainItemType` };
}
