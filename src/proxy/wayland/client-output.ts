// The client-bound half of a guest connection: Wayland bytes plus fds on the client's socket (src/fd/fd-output-queue.ts).
import { FdOutputQueue } from "../../fd/fd-output-queue.ts";

export type { FlushResult } from "../../fd/fd-output-queue.ts";

/** Buffers events for one client socket and writes them with SCM_RIGHTS; owns every fd until it is sent. */
export class ClientOutput extends FdOutputQueue {
  constructor(fd: number) {
    super(fd, "socket");
  }
}
