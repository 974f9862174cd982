// Channels opened before the clients that will use them: a new client starts on a ready channel (issue 15, start-up).
import { CrosswayError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type CrossDomainChannel, closeItems } from "./channel.ts";

/**
 * How long after a channel was handed out the reserve waits before opening the next one. Opening takes several
 * device round trips of guest work; the client that just took a channel sends its first requests right then, and
 * they would queue behind that work on the guest's one thread.
 */
const REFILL_DELAY_MS = 20;
/** Backoff after an open failed or a reserved channel died: doubling from here up to MAX_RETRY_MS. */
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 30_000;
/** A reserved channel that lived this long before its host hung up ends the backoff: the host was up meanwhile. */
const STABLE_MS = 5_000;

/** Options of {@link ChannelReserve}. */
export interface ChannelReserveOptions {
  /** Channels kept open and unused (0: none, every take opens its own). */
  readonly size: number;
  /** Opens a new channel (its own virtio-gpu context) that logs with `logger`, or rejects. */
  readonly open: (logger: Logger) => Promise<CrossDomainChannel>;
  readonly log: Logger;
}

/** What `crossway status` says about the reserve. */
export interface ChannelReserveStatus {
  /** Channels the reserve keeps ready (the --spare-channels setting). */
  readonly size: number;
  readonly ready: number;
  readonly opening: number;
  /** Channels handed to clients ready, and takes that had to open their own (or wait for one being opened). */
  readonly handedReady: number;
  readonly openedOnDemand: number;
  /** Reserved channels the host ended before a client took them (e.g. the compositor restarted). */
  readonly diedUnused: number;
  /** Consecutive failed opens or early deaths (0 when healthy); the next try waits FIRST_RETRY_MS doubled per one. */
  readonly failures: number;
}

interface Ready {
  readonly channel: CrossDomainChannel;
  readonly since: number;
}

interface Opening {
  readonly promise: Promise<CrossDomainChannel>;
  /** A take that found no ready channel waits for this one instead of opening another. */
  claimed: boolean;
}

/**
 * Keeps `size` cross-domain channels open ahead of demand. Opening one costs the device round trips of §6.1 (params
 * and caps, CONTEXT_INIT, two ring blobs, INIT and a probe query) before a client's first byte can go to the host;
 * on the emulated device that was most of foot's extra time to first window. A reserved channel is a complete
 * context whose host already connected its socket (INIT), idle until a client takes it: compositors send nothing
 * before a client's first request, so a message on one is a host fault and closes it.
 */
export class ChannelReserve {
  private readonly ready: Ready[] = [];
  private readonly opening = new Set<Opening>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private closed = false;
  private handedReady = 0;
  private openedOnDemand = 0;
  private diedUnused = 0;
  /** What a spare logs with until a client takes it (the client's logger then: useLogger). */
  private readonly spareLog: Logger;

  constructor(private readonly opts: ChannelReserveOptions) {
    if (!Number.isInteger(opts.size) || opts.size < 0 || opts.size > 16) {
      throw new CrosswayError("CW_USAGE", `spare channels must be 0-16, not ${opts.size}`, {
        value: opts.size,
      });
    }
    this.spareLog = opts.log.child({ spare: true });
    this.refill();
  }

  /**
   * A channel for a new client, owned by the caller and logging with `logger`: a ready one if there is one, else the
   * one being opened for the reserve, else a new one. Rejects only when opening a channel for this client failed.
   */
  take(logger: Logger): Promise<CrossDomainChannel> {
    if (this.closed)
      return Promise.reject(new CrosswayError("CW_CROSSDOMAIN_CLOSED", "the channel reserve is closed"));
    this.scheduleRefill(REFILL_DELAY_MS);
    const r = this.ready.shift();
    if (r !== undefined) {
      this.release(r.channel);
      r.channel.useLogger(logger);
      this.handedReady++;
      this.failures = 0;
      return Promise.resolve(r.channel);
    }
    this.openedOnDemand++;
    for (const o of this.opening) {
      if (o.claimed) continue;
      o.claimed = true;
      // The reserve's open failing (it is retried with backoff) leaves this client an open of its own.
      return o.promise.then(
        (channel) => {
          channel.useLogger(logger);
          return channel;
        },
        () => this.opts.open(logger),
      );
    }
    return this.opts.open(logger);
  }

  status(): ChannelReserveStatus {
    return {
      size: this.opts.size,
      ready: this.ready.length,
      opening: [...this.opening].filter((o) => !o.claimed).length,
      handedReady: this.handedReady,
      openedOnDemand: this.openedOnDemand,
      diedUnused: this.diedUnused,
      failures: this.failures,
    };
  }

  /** Closes the ready channels; channels still opening close when they arrive. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const r of this.ready.splice(0)) {
      this.release(r.channel);
      r.channel.close();
    }
  }

  /** Opens channels until ready + unclaimed opening reach the size (unless a retry is pending). */
  private refill(): void {
    if (this.closed || this.retryTimer !== null) return;
    let unclaimed = 0;
    for (const o of this.opening) if (!o.claimed) unclaimed++;
    for (let n = this.ready.length + unclaimed; n < this.opts.size; n++) this.openOne();
  }

  private scheduleRefill(ms: number): void {
    if (this.closed || this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.refill();
    }, ms);
    this.retryTimer.unref();
  }

  private openOne(): void {
    const o: Opening = { promise: this.opts.open(this.spareLog), claimed: false };
    this.opening.add(o);
    o.promise.then(
      (channel) => {
        this.opening.delete(o);
        if (o.claimed) return; // the take that claimed it owns it
        if (this.closed) {
          channel.close();
          return;
        }
        this.keep(channel);
      },
      (err: unknown) => {
        this.opening.delete(o);
        if (this.closed) return;
        this.failed(`cannot open a spare channel: ${(err as Error).message}`);
      },
    );
  }

  /** Watches a ready channel until a client takes it: a host that speaks or hangs up first loses it. */
  private keep(channel: CrossDomainChannel): void {
    const r: Ready = { channel, since: Date.now() };
    this.ready.push(r);
    channel.onReceive = (_data, items) => {
      closeItems(items);
      this.drop(r, "the host sent a message on a spare channel before any client used it");
      channel.close();
      return "pause";
    };
    channel.onClose = (reason) => {
      const why =
        reason.kind === "error"
          ? reason.error.message
          : reason.kind === "host-hangup"
            ? "host hung up"
            : "closed";
      this.drop(r, `a spare channel ended before any client used it: ${why}`);
    };
  }

  private drop(r: Ready, why: string): void {
    const i = this.ready.indexOf(r);
    if (i < 0) return;
    this.ready.splice(i, 1);
    this.release(r.channel);
    this.diedUnused++;
    if (Date.now() - r.since >= STABLE_MS) this.failures = 0;
    this.failed(why);
  }

  /** Backs off before the next open: FIRST_RETRY_MS doubled per consecutive failure, at most MAX_RETRY_MS. */
  private failed(why: string): void {
    this.failures++;
    const ms = Math.min(FIRST_RETRY_MS * 2 ** Math.min(this.failures - 1, 20), MAX_RETRY_MS);
    // The first failure of a streak is worth a warning; the retries of one outage are not.
    if (this.failures === 1) this.opts.log.warn({ err: why, retryMs: ms }, "spare channel lost");
    else this.opts.log.debug({ err: why, retryMs: ms, failures: this.failures }, "spare channel lost again");
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.scheduleRefill(ms);
  }

  /** Removes the reserve's handlers: the new owner installs its own. */
  private release(channel: CrossDomainChannel): void {
    channel.onReceive = () => "continue";
    channel.onClose = () => {};
  }
}
