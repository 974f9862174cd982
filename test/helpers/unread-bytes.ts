// How many bytes wait unread in a socket's or pipe's receive queue (FIONREAD): what a peer sent that nobody read yet.
import { native } from "../../src/native.ts";

/** ioctl: bytes in the receive queue (TIOCINQ). */
const FIONREAD = 0x541b;
const result = new Uint8Array(4);

/** Bytes waiting to be read from `fd` (a socket or a pipe's read end). */
export function unreadBytes(fd: number): number {
  native.ioctl(fd, FIONREAD, result);
  return new DataView(result.buffer).getInt32(0, true);
}
