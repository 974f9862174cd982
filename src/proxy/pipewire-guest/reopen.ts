// Read-only reopen of a host memory fd, so a client cannot map writable what the daemon shares read-only.
import { constants, openSync } from "node:fs";
import { CrosswayError } from "../../errors.ts";

/**
 * Opens `/proc/self/fd/N` read-only (libuv adds O_CLOEXEC): a memfd or shm file gets a new open file description without write access
 * (PROT_WRITE mappings then fail with EACCES). A dmabuf cannot be reopened this way (the kernel backend): that
 * is reported, never silently handed out writable.
 */
export function reopenReadOnly(fd: number): number {
  try {
    return openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY);
  } catch (err) {
    throw new CrosswayError(
      "CW_PWG_HOST_FD",
      `cannot reopen host memory fd ${fd} read-only: ${(err as Error).message}`,
      { value: fd },
      { cause: err },
    );
  }
}
