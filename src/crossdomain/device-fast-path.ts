// A device context's native fast path (native/src/device_fast_path.cc): attached to the context's two sockets, and
// what it hands back to JavaScript, which takes it as if it had read or written it itself.
import { type NativeDeviceFastPath, native } from "../native.ts";
import type { CrossDomainContext } from "./crossdomain-context.ts";
import { DeviceFastState } from "./device-fast-state.ts";
import type { FramedSocket } from "./framed-socket.ts";

/** What a context's native fast path asks of JavaScript (device_fast_path.cc's Notice). */
export const DeviceFastNotice = {
  /** Bytes (and fds) it read from the guest side and does not handle: the frame socket takes them. */
  GUEST_BYTES: 1,
  /** SEND data the host socket did not take: the context's writer queues it. */
  HOST_REMAINDER: 2,
  /** FENCE bytes the guest side's socket did not take: the frame socket queues them. */
  GUEST_REMAINDER: 3,
  /** A recvmsg of the host socket it does not finish (fds, or more than the ring holds): the worker takes it. */
  HOST_RECEIVED: 4,
  /** The host socket's recvmsg failed: `arg` is the error native.recvmsg throws. */
  HOST_ERROR: 5,
  /** The guest side sent more fds than one message may carry: `arg` is native.recvmsg's error. */
  GUEST_ERROR: 6,
  /** A POLL is to be queued while the worker's sources are not watched: the context starts them (its arm()). */
  ARM_SOURCES: 7,
} as const;

/** What native fast paths carried (device-fast-state.ts counters). */
export interface DeviceFastCounters {
  submits: number;
  sendBytes: number;
  receives: number;
  fences: number;
}

/** Adds the counters of one context's state array to `sum`. */
export function addDeviceFastCounters(st: Float64Array, sum: DeviceFastCounters): void {
  sum.submits += st[DeviceFastState.SUBMITS]!;
  sum.sendBytes += st[DeviceFastState.SEND_BYTES]!;
  sum.receives += st[DeviceFastState.RECEIVES]!;
  sum.fences += st[DeviceFastState.FENCES]!;
}

/**
 * The fast path of one context, attached to its frame socket (role 0) and its host socket (role 1) once the channel
 * is connected. The context keeps DeviceFastState.CONTEXT_READY up to date; `changed` is called after a notice
 * that may have changed what it depends on (a halt, a hold on the guest).
 */
export class DeviceFastLink {
  private readonly fast: NativeDeviceFastPath;
  private attached = true;

  constructor(
    private readonly socket: FramedSocket,
    private readonly cd: CrossDomainContext,
    pollMask: number,
    private readonly changed: () => void,
  ) {
    const st = cd.fastState;
    this.fast = new native.DeviceFastPath(socket.fd, cd.hostSocket, st, (what, arg, fds) =>
      this.onNotice(what, arg, fds),
    );
    st[DeviceFastState.POLL_MASK] = pollMask;
    socket.publishIdle(st, DeviceFastState.GUEST_IDLE);
    socket.setFastPath(this.fast, 0);
    cd.setFastPath(this.fast);
    st[DeviceFastState.ENABLED] = 1;
  }

  /** Takes the fast path off both sockets and forgets its ring and callback. Idempotent. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    const st = this.cd.fastState;
    st[DeviceFastState.ENABLED] = 0;
    st[DeviceFastState.CONTEXT_READY] = 0;
    this.socket.setFastPath(null, 0);
    this.socket.publishIdle(null, DeviceFastState.GUEST_IDLE);
    this.cd.setFastPath(null);
    this.fast.detach();
  }

  private onNotice(what: number, arg: Uint8Array | Error | undefined, fds: Int32Array | undefined): void {
    switch (what) {
      case DeviceFastNotice.GUEST_BYTES:
        this.socket.received(arg as Uint8Array, fds);
        return;
      case DeviceFastNotice.HOST_REMAINDER:
        this.cd.hostRemainder(arg as Uint8Array);
        break;
      case DeviceFastNotice.GUEST_REMAINDER:
        if (this.attached) this.socket.send(arg as Uint8Array);
        return;
      case DeviceFastNotice.HOST_RECEIVED:
        this.cd.receivedByFastPath(arg as Uint8Array, fds);
        break;
      case DeviceFastNotice.HOST_ERROR:
        this.cd.hostReadFailed(arg as Error);
        break;
      case DeviceFastNotice.GUEST_ERROR:
        this.socket.readFailed(arg as Error);
        return;
      case DeviceFastNotice.ARM_SOURCES:
        this.cd.armForFastPath();
        break;
      default:
        // Not reachable with an addon of this layout (fast-path-layout.test.ts): its fds are ours to close.
        if (fds !== undefined) for (let i = 0; i < fds.length; i++) native.close(fds[i]!);
        throw new Error(`device fast path: unknown notice ${what}`);
    }
    this.changed();
  }
}
