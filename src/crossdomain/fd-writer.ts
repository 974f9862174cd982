// The emulated device's ordered, non-blocking writer to one host fd (a socket with SCM_RIGHTS, a pipe, an eventfd).
import { createSharedWatcher } from "../fd/shared-watcher.ts";
import { AGAIN, type NativeWatcher, native, POLL_WRITABLE } from "../native.ts";

/**
 * Ordered non-blocking writes to a host fd (socket with SCM_RIGHTS, pipe or eventfd). Real hosts write blocking on
 * the device thread (P26); queueing instead keeps one stuck peer from stalling every context of the device.
 */
export class FdWriter {
  private readonly queue: Array<{ bytes: Uint8Array; off: number; fds: number[] | null }> = [];
  private head = 0;
  private watcher: NativeWatcher | null = null;
  private closeWhenDone = false;
  closed = false;

  constructor(
    readonly fd: number,
    private readonly socket: boolean,
    private readonly onError: (err: Error) => void,
  ) {}

  write(bytes: Uint8Array, fds: number[] | null): void {
    if (this.closed) {
      if (fds !== null) for (const fd of fds) native.close(fd);
      return;
    }
    this.queue.push({ bytes, off: 0, fds });
    if (this.queue.length - this.head === 1) this.flush();
  }

  /** Closes the fd once everything queued is written (a WRITE with hang_up). */
  endAfterFlush(): void {
    this.closeWhenDone = true;
    if (this.head === this.queue.length) this.close();
  }

  private flush(): void {
    while (this.head < this.queue.length) {
      const p = this.queue[this.head]!;
      let n: number;
      try {
        n = this.socket
          ? native.sendmsg(this.fd, p.bytes, p.off, p.bytes.length - p.off, p.fds)
          : native.write(this.fd, p.bytes, p.off, p.bytes.length - p.off);
      } catch (err) {
        this.close();
        this.onError(err as Error);
        return;
      }
      if (n === AGAIN) {
        if (this.watcher === null) {
          // Shared: the device may also be reading this fd (a host socket), and libuv allows one poll per fd.
          this.watcher = createSharedWatcher(this.fd, () => this.flush());
        }
        this.watcher.start(POLL_WRITABLE);
        return;
      }
      if (p.fds !== null) {
        for (const fd of p.fds) native.close(fd);
        p.fds = null;
      }
      p.off += n;
      if (p.off < p.bytes.length) continue;
      this.head++;
    }
    this.queue.length = 0;
    this.head = 0;
    this.watcher?.stop();
    if (this.closeWhenDone) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watcher !== null) {
      this.watcher.stop();
      this.watcher.close();
    }
    for (let i = this.head; i < this.queue.length; i++) {
      const fds = this.queue[i]!.fds;
      if (fds !== null) for (const fd of fds) native.close(fd);
    }
    this.queue.length = 0;
    native.close(this.fd);
  }
}
