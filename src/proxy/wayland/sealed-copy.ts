// Turns host memory (a keymap, a dmabuf-feedback format table) into a private, sealed guest memfd for a client.

import {
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
} from "../../fd/constants.ts";
import { native } from "../../native.ts";

/**
 * Copies `bytes` into a new memfd and seals it against any change. The client gets its own copy instead of the
 * host blob: a guest client can then map it (MAP_PRIVATE for wl_keyboard v7+, MAP_SHARED before) but can
 * neither write into host memory nor shrink the file under another reader. Returns the fd (caller owns it).
 */
export function sealedCopy(name: string, bytes: Uint8Array): number {
  const fd = native.memfdCreate(name, MFD_ALLOW_SEALING);
  try {
    native.ftruncate(fd, bytes.byteLength);
    let done = 0;
    while (done < bytes.byteLength) {
      const n = native.pwrite(fd, bytes, done, bytes.byteLength - done, done);
      if (n <= 0)
        throw new Error(`pwrite into the ${name} memfd stopped at ${done} of ${bytes.byteLength} bytes`);
      done += n;
    }
    native.addSeals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    return fd;
  } catch (err) {
    native.close(fd);
    throw err;
  }
}
