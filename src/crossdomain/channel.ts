// A cross-domain channel over a VirtGpu: rings, INIT, the single outstanding POLL, SENDs (planned by send-plan.ts),
// RECEIVE/READ dispatch, and cached image requirements; its pipes and eventfds live in channel-pipes.ts. The guest
// proxies (Wayland, PipeWire) build on this.
//
//   guest proxy ──send(bytes, items)──▶ SEND (≤ 3744 B, ≤ 28 ids, ≤ 1 READ_PIPE each) ──execbuffer──▶ host
//   guest proxy ◀─onReceive(bytes, items)── RECEIVE ◀── channel ring ◀── fence event ◀── POLL (ring 1) ── host
//   client pipe ◀── READ {id, data, hang_up} (read pipes)        local pipe ──▶ WRITE {id, data, hang_up} (write pipes)
//
// Only identifiers and blob memory cross: client fds stay in this process (the read-pipe sinks, the write-pipe and
// eventfd ends handed to clients are all local pipes and eventfds).
import { CrosswayError } from "../errors.ts";
import { componentLogger, type Logger } from "../log.ts";
import { native } from "../native.ts";
import { getU32 } from "../wire/bytes.ts";
import { asChannelError, ChannelPipes } from "./channel-pipes.ts";
import {
  type CrossDomainMessage,
  decodeImageRequirements,
  decodeRingMessage,
  encodeGetImageRequirements,
  encodeInit,
  encodePoll,
  encodeSendReceive,
  type IdentifierList,
  type ImageRequirements,
  type InitForm,
  newIdentifierList,
} from "./codec.ts";
import { FastState, newFastState } from "./fast-state.ts";
import { probeIdentifierSlots, probeOnce } from "./layout-probe.ts";
import { LoopDeadline } from "./loop-deadline.ts";
import {
  CAPSET_CROSS_DOMAIN,
  CHANNEL_RING,
  ChannelType,
  CrossDomainCmd,
  type CrossDomainConfig,
  channelTypeName,
  DEFAULT_CONFIG,
  DEFAULT_IMAGE_FLAGS,
  DrmFormat,
  type IdentifierArraySize,
  IdentifierType,
  isReceivedEventfdType,
  MAX_SEND_RECV_SIZE,
  POLL_SIZE,
  QUERY_RING,
  sendReceiveHeaderSize,
} from "./protocol.ts";
import type { RecentBlobSizes } from "./recent-blob-sizes.ts";
import { type PlannedSend, planSends } from "./send-plan.ts";
import { BlobFlags, BlobMem } from "./structs.ts";
import type {
  BlobAccess,
  BlobHandle,
  BlobMapping,
  BlobWindow,
  EmulatedFastPathSupport,
  VirtGpu,
} from "./virtgpu.ts";

/** Options of {@link CrossDomainChannel.open}. */
export interface ChannelOptions {
  /** A fresh VirtGpu context: the channel owns it (one context per host connection, §1) and closes it. */
  readonly gpu: VirtGpu;
  /** ChannelType.WAYLAND, ChannelType.PIPEWIRE, ... */
  readonly channelType: number;
  readonly config?: CrossDomainConfig;
  /**
   * Ask the host its identifier-slot count (4 or 28) with an in-band probe at open (layout-probe.ts; once per
   * device per process): "adopt" uses the host's count, "verify" fails with CW_CROSSDOMAIN_LAYOUT when it is not
   * `config.maxIdentifiers` (instead of garbling every message). Default: trust the config.
   */
  readonly probeLayout?: "adopt" | "verify";
  /**
   * INIT form: "v1" (20 bytes, portable, default), "libkrun" (24 bytes, protocol_version 1, libkrun hosts only) or
   * "legacy" (16 bytes, one ring for queries and messages: a query can race a ring message, b/259268477; old hosts).
   */
  readonly initForm?: Exclude<InitForm, "uuid">;
  /**
   * How long the host may stay silent after {@link CrossDomainChannel.expectAnswer} before the channel ends with
   * CW_CROSSDOMAIN_HOST_TIMEOUT (default 30 s). Hosts without the EOF RECEIVE (rutabaga 0.1.2) never tell the
   * guest that the compositor dropped the connection: this is how such a client learns it.
   */
  readonly hostTimeoutMs?: number;
  /** How long the POLL after an answered RECEIVE waits to ride on a SEND (default POLL_RIDE_MS; tests lengthen it). */
  readonly pollRideMs?: number;
  /** Ring size; default: one guest page as the device reports it (4096; 16384 on 16 KiB-page guests). */
  readonly ringSize?: number;
  readonly logger?: Logger;
}

/**
 * Something sent along with bytes. `end`: the byte offset in the sent data just past the message that carries the
 * item (libwayland's rule: the fd reaches the peer no later than that message); omitted, the end of the data.
 */
export type SendItem =
  /** A blob of this device (a host blob from {@link CrossDomainChannel.createHostBlob}, or an imported dmabuf). */
  | { readonly kind: "blob"; readonly resourceId: number; readonly end?: number }
  /**
   * The write end of a guest client's pipe (e.g. from wl_data_offer.receive). The channel takes ownership: the host
   * gets a pipe of its own, and what its peer writes there is copied into `fd`, which is closed at hang-up.
   */
  | { readonly kind: "read-pipe"; readonly fd: number; readonly end?: number };

/** Something that arrived with bytes; fds are the receiver's to close. */
export type ReceivedItem =
  /** Host memory (memfd, dmabuf): a mappable fd, read-only where the host's is (`access`). */
  | { readonly kind: "blob"; readonly fd: number; readonly size: number; readonly access: BlobAccess }
  /** A host pipe's write end (e.g. wl_data_source.send): give `fd` to the client; the channel forwards to the host. */
  | { readonly kind: "write-pipe"; readonly id: number; readonly fd: number }
  /** A host eventfd: bind it with {@link CrossDomainChannel.eventfdFromHost} or {@link CrossDomainChannel.eventfdToHost}. */
  | { readonly kind: "eventfd"; readonly id: number }
  /** An upstream SOCKET item (type 7): not usable without a second context; release it. */
  | { readonly kind: "socket"; readonly id: number };

/** What a receive handler tells the channel: keep polling, or stop until {@link CrossDomainChannel.resume}. */
export type ReceiveResult = "continue" | "pause";

/** After a watched ring's command byte turns non-zero, how long the body gets to land (the host writes it right after). */
const SPURIOUS_SETTLE_MS = 5;

/**
 * How long the POLL after a RECEIVE that answered the client's round trip may wait to ride on the guest's next SEND
 * (one EXECBUFFER for both) before it goes alone. A client whose wl_display.sync was answered usually speaks next:
 * riding saves one guest-to-host message and one wake-up of the host per round trip. A host event that comes while
 * the POLL waits waits for it, at most this long; unsolicited events (input, frame callbacks, configures) are never
 * followed by a riding POLL, so their stream is not slowed.
 */
export const POLL_RIDE_MS = 1;

/** How early a riding POLL may go alone rather than wait for another timer (see armRideTimer). */
const RIDE_SLACK_MS = 0.25;

/** Result of {@link CrossDomainChannel.send}: "buffered" means wait for onDrain before sending more. */
export type SendResult = "sent" | "buffered";

/** Why a channel closed. */
export type CloseReason =
  | { readonly kind: "host-hangup" }
  | { readonly kind: "local" }
  | { readonly kind: "error"; readonly error: CrosswayError };

/** The cross-domain capability blob (GET_CAPS capset 5, §2). */
export interface CrossDomainCaps {
  /** Always 1 on current hosts; does not tell crosvm from libkrun. */
  readonly version: number;
  /** Bit `1 << channel_type` per configured host socket. */
  readonly supportedChannels: number;
  /** The host gralloc allocates real dmabufs (0 for the memfd "system" gralloc and the emulated device). */
  readonly supportsDmabuf: boolean;
  readonly supportsExternalGpuMemory: boolean;
}

/** A guest dmabuf imported into the channel's context, usable as a blob item until released. */
export interface ImportedBlob {
  readonly resourceId: number;
  /** Drops this reference to the GEM handle (handles are refcounted: PRIME import dedups them, P18). */
  release(): void;
}

/** A host-visible blob created from image requirements. */
export interface HostBlob {
  readonly handle: BlobHandle;
  readonly resourceId: number;
  readonly size: number;
  /** Maps the blob, or at least `window` of it (see VirtGpu.mapBlob). */
  map(window?: BlobWindow): Promise<BlobMapping>;
  /** An fd of the blob's memory for file syscalls, valid until close(); null when the backend has none. */
  readonly fileFd: number | null;
  /** An fd for a client (dmabuf, or memfd when emulated); the caller owns it. */
  export(): Promise<{ fd: number; access: BlobAccess }>;
  /** GEM_CLOSE; exported fds keep the memory alive. */
  close(): void;
}

/** The items of a RECEIVE without identifiers: shared, never written (onReceive handlers only read them). */
const NO_ITEMS: readonly ReceivedItem[] = Object.freeze([]);

/**
 * SENDs per EXECBUFFER: enough for what a client writes between two reads of its socket (libwayland flushes at 4 KiB,
 * the guest reads up to 8 KiB at once), small enough that one submission stays below 17 KiB.
 */
const SENDS_PER_EXECBUFFER = 4;

/** EXECBUFFER options of the POLL and of a SEND it rides on: one shared object, not one per submission. */
const ON_CHANNEL_RING = Object.freeze({ ring: CHANNEL_RING });

/** rutabaga's receive buffer (CROSS_DOMAIN_DEFAULT_BUFFER_SIZE): a RECEIVE's header and data share it. */
const RECEIVE_BUFFER_BYTES = 4096;

/** Host silence tolerated after a request that needs an answer; compositors answer a sync in milliseconds. */
const DEFAULT_HOST_TIMEOUT_MS = 30_000;

/** The image-requirements cache's key: one entry per (width, height, format, flags), as hosts answer them. */
function requirementsKey(width: number, height: number, drmFormat: number, flags: number): string {
  return `${width}x${height}:${drmFormat}:${flags}`;
}

/** One cross-domain channel: one virtio-gpu context connected to one host socket. */
export class CrossDomainChannel {
  /** Bytes and items from the host. `data` is valid only during the call (it lives in the ring): copy what you keep. */
  onReceive: (data: Uint8Array, items: readonly ReceivedItem[]) => ReceiveResult = () => "continue";
  /** Called once when the channel ends. */
  onClose: (reason: CloseReason) => void = () => {};
  /** Called when sending may go on after a "buffered" result. */
  onDrain: () => void = () => {};

  private log: Logger;
  private hdrSize: number;
  private sendBuf: Uint8Array;
  private ids: IdentifierList;
  private readonly pollCmd = new Uint8Array(16);
  /** {@link singleSend}'s plan: one SEND of all the bytes, no items. */
  private readonly onePlan: { start: number; end: number; firstItem: number; lastItem: number }[] = [
    { start: 0, end: 0, firstItem: 0, lastItem: 0 },
  ];
  /** Read pipes, write pipes and eventfds (channel-pipes.ts). */
  private readonly pipes: ChannelPipes;
  private readonly reqCache = new Map<string, Promise<ImageRequirements>>();
  /** Requirements asked ahead ({@link askLinearAhead}) that no client used yet, and who counts their use. */
  private readonly aheadKeys = new Set<string>();
  private aheadSizes: RecentBlobSizes | null = null;
  private queryChain: Promise<unknown> = Promise.resolve();
  private queryInFlight = 0;
  /**
   * The POLL state, the answer wait and whether the channel is open, kept where the connection's native fast path
   * reads and updates them (fast-state.ts): the emulated backend's array, or one of the channel's own.
   */
  readonly fast: Float64Array;
  private get pollOutstanding(): boolean {
    return this.fast[FastState.POLL_OUTSTANDING] === 1;
  }
  private set pollOutstanding(v: boolean) {
    this.fast[FastState.POLL_OUTSTANDING] = v ? 1 : 0;
  }
  /** The POLL after a RECEIVE that answered the client waits to ride on the next SEND (see POLL_RIDE_MS). */
  private get pollRiding(): boolean {
    return this.fast[FastState.POLL_RIDING] === 1;
  }
  private set pollRiding(v: boolean) {
    this.fast[FastState.POLL_RIDING] = v ? 1 : 0;
  }
  /**
   * Sends a riding POLL alone once POLL_RIDE_MS passed without a SEND. Armed when a ride starts and none is armed,
   * never refreshed: a refresh per round trip re-inserted it into Node's timer list every time (1.4% of the guest's
   * CPU in a round-trip loop). When it fires early for a later ride, it re-arms for that ride's remainder. A
   * LoopDeadline rather than a Timeout: pending through every round trip, a libuv timer gave each of the loop's
   * sleeps a timeout under a millisecond, which the kernel arms and cancels around every sleep.
   */
  private readonly rideTimer = new LoopDeadline(() => this.rideTimerExpired());
  /** RIDE_SINCE of the ride the timer was armed for (a later ride waits what is left of its own time). */
  private rideArmedFor = 0;
  private set rideTimerArmed(v: boolean) {
    this.fast[FastState.RIDE_TIMER_ARMED] = v ? 1 : 0;
  }
  /** performance.now() when the current ride started; the timer tells its own ride from a later one by it. */
  private get rideSince(): number {
    return this.fast[FastState.RIDE_SINCE] as number;
  }
  private set rideSince(v: number) {
    this.fast[FastState.RIDE_SINCE] = v;
  }
  /** Watching the ring after a POLL completed without a message (QEMU's cross-context fence completion). */
  private spuriousTimer: NodeJS.Timeout | null = null;
  private get paused(): boolean {
    return this.fast[FastState.CHANNEL_PAUSED] === 1;
  }
  private set paused(v: boolean) {
    this.fast[FastState.CHANNEL_PAUSED] = v ? 1 : 0;
  }
  private get dispatching(): boolean {
    return this.fast[FastState.CHANNEL_DISPATCHING] === 1;
  }
  private set dispatching(v: boolean) {
    this.fast[FastState.CHANNEL_DISPATCHING] = v ? 1 : 0;
  }
  private closed = false;
  private lastHostError = "";
  private answerTimerHandle: ReturnType<typeof setTimeout> | null = null;
  private get answerTimer(): ReturnType<typeof setTimeout> | null {
    return this.answerTimerHandle;
  }
  private set answerTimer(t: ReturnType<typeof setTimeout> | null) {
    this.answerTimerHandle = t;
    this.fast[FastState.ANSWER_TIMER_ARMED] = t === null ? 0 : 1;
  }
  /** performance.now() of the oldest request still waiting for any host message; 0 when none waits. */
  private get awaitingSince(): number {
    return this.fast[FastState.AWAITING_SINCE] as number;
  }
  private set awaitingSince(v: number) {
    this.fast[FastState.AWAITING_SINCE] = v;
  }
  private hostTimeoutMs = DEFAULT_HOST_TIMEOUT_MS;
  private pollRideMs = POLL_RIDE_MS;

  private readonly gemRefs = new Map<number, { blob: BlobHandle; refs: number }>();

  private constructor(
    private readonly gpu: VirtGpu,
    readonly channelType: number,
    /** The wire configuration in use (its identifier count may come from the host, see probeLayout). */
    public config: CrossDomainConfig,
    /** The host's capabilities as read at open. */
    readonly caps: CrossDomainCaps,
    private readonly queryRing: { blob: BlobHandle; map: BlobMapping },
    private readonly channelRing: { blob: BlobHandle; map: BlobMapping },
    logger: Logger,
  ) {
    this.log = logger;
    this.fast = gpu.fastState ?? newFastState();
    this.fast[FastState.CHANNEL_OPEN] = 1;
    this.fast[FastState.CHANNEL_RING] = CHANNEL_RING;
    this.hdrSize = sendReceiveHeaderSize(config.maxIdentifiers);
    this.fast[FastState.HDR_SIZE] = this.hdrSize;
    // Room for a batch of the largest SENDs and a riding POLL behind them.
    this.sendBuf = new Uint8Array(SENDS_PER_EXECBUFFER * (this.hdrSize + MAX_SEND_RECV_SIZE) + POLL_SIZE);
    this.ids = newIdentifierList(config.maxIdentifiers);
    encodePoll(this.pollCmd, 0);
    const ch = this;
    this.pipes = new ChannelPipes({
      get closed() {
        return ch.closed;
      },
      backlogChanged: (backlogged) => {
        ch.fast[FastState.BACKLOGGED] = backlogged ? 1 : 0;
      },
      execbuffer: (cmd) => gpu.execbuffer(cmd),
      fail: (error) => this.fail(error),
      poll: () => this.poll(),
      onDrain: () => this.onDrain(),
      assertOpen: (what) => this.assertOpen(what),
    });
  }

  /**
   * Sets up a channel (§6.1): checks params and caps, CONTEXT_INIT {capset 5, 2 rings, poll ring 1}, two one-page
   * guest blobs as rings, INIT alone in its execbuffer, then a probe query, and the first POLL. A host that refuses
   * INIT (socket absent, channel not configured) answers nothing (P5); the probe query sees an empty query ring
   * because the host has no state to write it with, so this fails with CW_CROSSDOMAIN_INIT_FAILED instead of hanging.
   * On failure the gpu is closed.
   */
  static async open(options: ChannelOptions): Promise<CrossDomainChannel> {
    const gpu = options.gpu;
    const config = options.config ?? DEFAULT_CONFIG;
    const log =
      options.logger ?? componentLogger("channel", { channel: channelTypeName(options.channelType) });
    const hostErrors: string[] = [];
    gpu.onHostError = (m) => hostErrors.push(m);
    const rings: Array<{ blob: BlobHandle; map: BlobMapping }> = [];
    try {
      // Params and caps are asked together, and both rings made and mapped together: a new client waits for one
      // device round trip per step instead of one per request (start-up, issue 15).
      const [paramsAnswer, capsAnswer] = await Promise.allSettled([
        gpu.getParams(),
        gpu.getCaps(CAPSET_CROSS_DOMAIN, 0, 16),
      ]);
      if (paramsAnswer.status === "rejected") throw paramsAnswer.reason;
      const p = paramsAnswer.value;
      const missing = [
        p.features3d ? "" : "3D_FEATURES",
        p.resourceBlob ? "" : "RESOURCE_BLOB",
        p.hostVisible ? "" : "HOST_VISIBLE",
        p.contextInit ? "" : "CONTEXT_INIT",
        (p.capsetMask >>> CAPSET_CROSS_DOMAIN) & 1 ? "" : "capset 5 (cross-domain)",
      ].filter((x) => x !== "");
      if (missing.length > 0) {
        throw new CrosswayError(
          "CW_VIRTGPU_UNSUPPORTED",
          `${gpu.description}: virtio-gpu lacks ${missing.join(", ")} (needed for cross-domain)`,
        );
      }
      // One guest page per ring: the host fills a READ up to the ring's size, and the kernel rounds blobs to pages.
      const ringSize = options.ringSize ?? p.pageSize;
      if (capsAnswer.status === "rejected") throw capsAnswer.reason;
      const capBytes = capsAnswer.value;
      const word = (i: number) => (capBytes.length >= 4 * i + 4 ? getU32(capBytes, 4 * i) : 0);
      const caps: CrossDomainCaps = {
        version: word(0),
        supportedChannels: word(1),
        supportsDmabuf: word(2) !== 0,
        supportsExternalGpuMemory: word(3) !== 0,
      };
      const channels = caps.supportedChannels;
      const type = options.channelType;
      if (type !== ChannelType.NONE && (type >= 32 || ((channels >>> type) & 1) === 0)) {
        throw new CrosswayError(
          "CW_CROSSDOMAIN_INIT_FAILED",
          `${gpu.description}: the host offers no ${channelTypeName(type)} channel (supported_channels 0x${channels.toString(16)})`,
          { value: type },
        );
      }
      await gpu.initContext({ capsetId: CAPSET_CROSS_DOMAIN, numRings: 2, pollRingsMask: 1 << CHANNEL_RING });
      const form = options.initForm ?? "v1";
      // The legacy single-ring protocol has the host write everything into the query ring (Init*Legacy::upgrade).
      const made = await Promise.allSettled(
        Array.from({ length: form === "legacy" ? 1 : 2 }, async () => {
          const blob = await gpu.createBlob({
            blobMem: BlobMem.GUEST,
            blobFlags: BlobFlags.USE_MAPPABLE,
            size: ringSize,
            blobId: 0,
          });
          return { blob, map: await gpu.mapBlob(blob) };
        }),
      );
      // Keep what was made (the catch below unmaps it), then report the first failure.
      for (const r of made) if (r.status === "fulfilled") rings.push(r.value);
      const failed = made.find((r) => r.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      const query = rings[0]!;
      const channel = rings[1] ?? query;
      const init = new Uint8Array(36);
      const n = encodeInit(init, 0, {
        form,
        queryRingId: query.blob.resourceId,
        channelRingId: form === "legacy" ? query.blob.resourceId : channel.blob.resourceId,
        channelType: type,
        ...(form === "libkrun" ? { protocolVersion: 1 } : {}),
      });
      // INIT alone, exact cmd_size (P2, P3).
      gpu.execbuffer(init.subarray(0, n));
      const ch = new CrossDomainChannel(gpu, type, config, caps, query, channel, log);
      try {
        await ch.imageRequirements(1, 1, DrmFormat.R8);
      } catch (err) {
        // A kernel guest sees no host error (only "response 0x1200 (command 0x207)" in its kernel log, P5).
        const why =
          hostErrors.length > 0
            ? hostErrors.join("; ")
            : `${(err as Error).message}; the host socket is absent or the channel is not configured (see the kernel log for "response 0x1200")`;
        throw new CrosswayError(
          "CW_CROSSDOMAIN_INIT_FAILED",
          `${gpu.description}: the host did not accept INIT for channel ${channelTypeName(type)}: ${why}`,
          { value: type },
          { cause: err },
        );
      }
      if (options.probeLayout !== undefined) {
        // The probe's rejected SEND is a host error by design on 28-slot hosts: not this channel's failure.
        const before = hostErrors.length;
        const slots = await probeOnce(gpu.description, () =>
          probeIdentifierSlots({ query: (w, prefix, wait) => ch.rawQuery(w, prefix, wait) }, gpu.description),
        );
        hostErrors.splice(before);
        if (options.probeLayout === "verify" && slots !== config.maxIdentifiers) {
          throw new CrosswayError(
            "CW_CROSSDOMAIN_LAYOUT",
            `${gpu.description}: the host parses ${slots} identifier slots per SEND/RECEIVE, the guest is set to ${config.maxIdentifiers} (--identifiers): every message would be garbled`,
            { value: config.maxIdentifiers },
          );
        }
        ch.adoptLayout(slots);
      }
      ch.hostTimeoutMs = options.hostTimeoutMs ?? DEFAULT_HOST_TIMEOUT_MS;
      ch.pollRideMs = options.pollRideMs ?? POLL_RIDE_MS;
      gpu.onHostError = (m) => ch.hostError(m);
      gpu.onFence = () => ch.onFenceEvent();
      gpu.onDrain = () => ch.pipes.drained();
      for (const m of hostErrors) ch.hostError(m);
      if (!ch.closed) ch.poll();
      // The ride timer's fd for the channel's whole life (finish closes it), not from its first ride on.
      ch.rideTimer.prepare();
      log.debug({ query: query.blob.resourceId, channel: channel.blob.resourceId }, "channel open");
      return ch;
    } catch (err) {
      for (const r of rings) r.map.unmap();
      gpu.close();
      throw err;
    }
  }

  /** Logs from now on with `logger` (a channel opened ahead of its client learns the client's name when taken). */
  useLogger(logger: Logger): void {
    this.log = logger;
  }

  /** Bytes of the channel ring (one guest page unless set at open). */
  get ringSize(): number {
    return this.channelRing.map.bytes.length;
  }

  /** True once the channel has ended. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Switches the SEND/RECEIVE layout to the host's (before the first SEND and POLL only). */
  private adoptLayout(slots: IdentifierArraySize): void {
    if (slots === this.config.maxIdentifiers) return;
    this.config = { ...this.config, maxIdentifiers: slots };
    this.hdrSize = sendReceiveHeaderSize(slots);
    this.fast[FastState.HDR_SIZE] = this.hdrSize;
    this.sendBuf = new Uint8Array(SENDS_PER_EXECBUFFER * (this.hdrSize + MAX_SEND_RECV_SIZE) + POLL_SIZE);
    this.ids = newIdentifierList(slots);
    this.log.debug({ identifiers: slots }, "host identifier layout");
  }

  /**
   * One uncached GET_IMAGE_REQUIREMENTS (width × 1, R8) on the query ring, behind `prefix` in the same EXECBUFFER
   * when given (the layout probe). With `wait`, resolves with the reply's template id (0: nothing written).
   */
  private rawQuery(width: number, prefix: Uint8Array | null, wait: boolean): Promise<number> {
    const run = async (): Promise<number> => {
      this.assertOpen("GET_IMAGE_REQUIREMENTS");
      const ring = this.queryRing.map.bytes;
      if (wait) ring.fill(0, 0, 64);
      const pre = prefix?.length ?? 0;
      const cmd = new Uint8Array(pre + 24);
      if (prefix !== null) cmd.set(prefix, 0);
      encodeGetImageRequirements(cmd, pre, {
        width,
        height: 1,
        drmFormat: DrmFormat.R8,
        flags: DEFAULT_IMAGE_FLAGS,
      });
      this.gpu.execbuffer(cmd, { ring: QUERY_RING, boHandles: [this.queryRing.blob.bo] });
      if (!wait) return 0;
      this.queryInFlight++;
      try {
        await this.gpu.wait(this.queryRing.blob);
      } finally {
        this.queryInFlight--;
      }
      this.assertOpen("GET_IMAGE_REQUIREMENTS");
      return decodeImageRequirements(ring, 0).blobId;
    };
    const p = this.queryChain.then(run, run);
    this.queryChain = p.catch(() => {});
    return p;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Guest → host

  /**
   * Sends `data` with `items`. Splits into SENDs of at most 3744 bytes, 28 identifiers and one READ_PIPE each, with
   * every item on a SEND that starts before the end of its message (`item.end`, default: the end of `data`), so a
   * peer sees each fd no later than its message (planSends). Read-pipe fds become the channel's once this returns;
   * when it throws (CW_CROSSDOMAIN_LIMIT: items without bytes to ride on), nothing was sent and they stay the caller's.
   */
  send(data: Uint8Array, items: readonly SendItem[] = []): SendResult {
    this.assertOpen("send");
    if (data.length === 0 && items.length === 0) return "sent";
    // The common case, a few requests without fds, is one SEND: no plan to compute and allocate.
    const plan =
      items.length === 0 && data.length <= MAX_SEND_RECV_SIZE
        ? this.singleSend(data.length)
        : planSends(
            data.length,
            items.map((it) => ({ pipe: it.kind === "read-pipe", end: it.end ?? data.length })),
            { maxBytes: MAX_SEND_RECV_SIZE, maxIdentifiers: this.config.maxIdentifiers },
          );
    // The SENDs go in batches, one EXECBUFFER each: hosts walk a command buffer by cmd_size (crossdomain.md §3), so a
    // burst of 8 KiB costs the guest one submission and the host one wake-up instead of three.
    let ok = true;
    let at = 0;
    let inBatch = 0;
    for (let k = 0; k < plan.length; k++) {
      const p = plan[k]!;
      const ids = this.ids;
      ids.count = 0;
      for (let i = p.firstItem; i < p.lastItem; i++) {
        const it = items[i]!;
        const n = ids.count++;
        if (it.kind === "blob") {
          ids.ids[n] = it.resourceId;
          ids.types[n] = IdentifierType.VIRTGPU_BLOB;
        } else {
          ids.ids[n] = this.pipes.addReadPipe(it.fd);
          ids.types[n] = IdentifierType.READ_PIPE;
        }
        ids.sizes[n] = 0;
      }
      at += encodeSendReceive(
        this.sendBuf,
        at,
        CrossDomainCmd.SEND,
        ids,
        data,
        this.config.maxIdentifiers,
        "exact",
        p.start,
        p.end,
      );
      inBatch++;
      if (k === plan.length - 1 && this.pollRiding && this.canPoll()) {
        // The waiting POLL rides behind the last SEND: one EXECBUFFER, its fence on the channel ring (rutabaga runs
        // the commands in order, then makes the fence; the POLL itself only asks for it).
        this.sendBuf.set(this.pollCmd, at);
        this.pollRiding = false;
        this.pollOutstanding = true;
        ok = this.gpu.execbuffer(this.sendBuf.subarray(0, at + POLL_SIZE), ON_CHANNEL_RING) && ok;
        return this.sent(ok);
      }
      if (inBatch === SENDS_PER_EXECBUFFER || k === plan.length - 1) {
        ok = this.gpu.execbuffer(this.sendBuf.subarray(0, at)) && ok;
        at = 0;
        inBatch = 0;
      }
    }
    return this.sent(ok);
  }

  private sent(ok: boolean): SendResult {
    if (!ok) this.pipes.setCongested();
    return ok ? "sent" : "buffered";
  }

  /** The plan of a SEND of `length` bytes without items, in one reused array (see send). */
  private singleSend(length: number): PlannedSend[] {
    const p = this.onePlan[0]!;
    p.end = length;
    return this.onePlan;
  }

  /**
   * The guest just sent something the host's peer must answer (a Wayland wl_display.sync or get_registry): if the
   * host then sends nothing for hostTimeoutMs while a POLL is outstanding, the channel ends with
   * CW_CROSSDOMAIN_HOST_TIMEOUT instead of leaving the client waiting forever. Any ring message from the host
   * disarms it.
   */
  expectAnswer(): void {
    if (this.closed || this.awaitingSince !== 0) return;
    this.awaitingSince = performance.now();
    if (this.answerTimer === null) this.armAnswerTimer(this.hostTimeoutMs);
  }

  /**
   * One timer per channel, created only when none is running: a round trip costs a timestamp, not a Timeout object
   * plus a clearTimeout (every wl_display.sync would otherwise allocate one). When it fires it looks at the
   * oldest unanswered request and either ends the channel or waits the remainder.
   */
  private armAnswerTimer(ms: number): void {
    this.answerTimer = setTimeout(() => {
      this.answerTimer = null;
      if (this.closed || this.awaitingSince === 0) return;
      // Not polling (the client is slow to read, or a sink is full): the silence is ours, not the host's.
      if (!this.pollOutstanding) {
        if (
          !this.paused &&
          !this.pipes.backlogged &&
          performance.now() - this.awaitingSince >= this.hostTimeoutMs
        ) {
          // Neither of those, yet no POLL for a whole timeout after a request that needs an answer: nothing will
          // ever wake this client. Said with the state that holds the POLL, since no test has caught it happening.
          this.log.warn(
            {
              dispatching: this.dispatching,
              riding: this.pollRiding,
              rideTimer: this.rideTimer.armed,
              waitedMs: Math.round(performance.now() - this.awaitingSince),
            },
            "no POLL outstanding after a request that needs an answer",
          );
        }
        this.awaitingSince = performance.now();
        this.armAnswerTimer(this.hostTimeoutMs);
        return;
      }
      const waited = performance.now() - this.awaitingSince;
      if (waited < this.hostTimeoutMs) {
        this.armAnswerTimer(Math.ceil(this.hostTimeoutMs - waited));
        return;
      }
      this.fail(
        new CrosswayError(
          "CW_CROSSDOMAIN_HOST_TIMEOUT",
          `${this.gpu.description}: the host sent nothing for ${this.hostTimeoutMs} ms after a request that needs an answer; it stopped answering (or dropped the connection without telling, as rutabaga 0.1.2 does)`,
          { value: this.hostTimeoutMs },
        ),
      );
    }, ms);
    this.answerTimer.unref();
  }

  private hostAnswered(): void {
    this.awaitingSince = 0;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Image requirements and host blobs

  /**
   * GET_IMAGE_REQUIREMENTS, cached per (width, height, format, flags): hosts never free the template item (P14).
   * Queries are serialised on the query ring, which is zeroed first so a failed query is seen as such (§4.3).
   */
  imageRequirements(
    width: number,
    height: number,
    drmFormat: number,
    flags: number = DEFAULT_IMAGE_FLAGS,
  ): Promise<ImageRequirements> {
    const key = requirementsKey(width, height, drmFormat, flags);
    const cached = this.reqCache.get(key);
    if (cached !== undefined) {
      if (this.aheadKeys.delete(key)) this.aheadSizes?.countUsed();
      return cached;
    }
    const run = async (): Promise<ImageRequirements> => {
      this.assertOpen("GET_IMAGE_REQUIREMENTS");
      const ring = this.queryRing.map.bytes;
      ring.fill(0, 0, 64);
      const cmd = new Uint8Array(24);
      encodeGetImageRequirements(cmd, 0, { width, height, drmFormat, flags });
      this.queryInFlight++;
      try {
        this.gpu.execbuffer(cmd, { ring: QUERY_RING, boHandles: [this.queryRing.blob.bo] });
        await this.gpu.wait(this.queryRing.blob);
      } finally {
        this.queryInFlight--;
      }
      // The channel may have ended while waiting; its rings are unmapped then.
      this.assertOpen("GET_IMAGE_REQUIREMENTS");
      const reqs = decodeImageRequirements(ring, 0);
      if (reqs.size === 0 || reqs.blobId === 0) {
        throw new CrosswayError(
          "CW_CROSSDOMAIN_QUERY_FAILED",
          `GET_IMAGE_REQUIREMENTS ${width}x${height} format 0x${drmFormat.toString(16)}: no reply from the host${
            this.lastHostError ? ` (${this.lastHostError})` : ""
          }`,
        );
      }
      return reqs;
    };
    const p = this.queryChain.then(run, run);
    this.queryChain = p.catch(() => {});
    this.reqCache.set(key, p);
    p.catch(() => this.reqCache.delete(key));
    return p;
  }

  /**
   * Asks the host the requirements of linear blobs (R8 × 1) of the widths `sizes` remembers, before any client needs
   * them: a channel waiting for its client spends that time on what the client's first pool will ask
   * (recent-blob-sizes.ts). The answers wait in the cache; a failed one leaves it, and the client asks again.
   */
  askLinearAhead(sizes: RecentBlobSizes): void {
    this.aheadSizes = sizes;
    for (const width of sizes.widths()) {
      const key = requirementsKey(width, 1, DrmFormat.R8, DEFAULT_IMAGE_FLAGS);
      if (this.reqCache.has(key)) continue;
      this.aheadKeys.add(key);
      sizes.countAsked();
      this.imageRequirements(width, 1, DrmFormat.R8).catch((err: unknown) => {
        this.aheadKeys.delete(key);
        this.log.debug({ width, err: (err as Error).message }, "image requirements asked ahead failed");
      });
    }
  }

  /** Creates a host-visible blob from image requirements (size must be exactly reqs.size, §5.4). */
  async createHostBlob(reqs: ImageRequirements): Promise<HostBlob> {
    this.assertOpen("createHostBlob");
    const gpu = this.gpu;
    const handle = await gpu.createBlob({
      blobMem: BlobMem.HOST3D,
      blobFlags: BlobFlags.USE_MAPPABLE | BlobFlags.USE_SHAREABLE,
      size: reqs.size,
      blobId: reqs.blobId,
    });
    return {
      handle,
      resourceId: handle.resourceId,
      size: handle.size,
      map: (window) => gpu.mapBlob(handle, window),
      fileFd: gpu.fileFd(handle),
      export: () => gpu.exportBlob(handle),
      close: () => gpu.closeBlob(handle),
    };
  }

  /**
   * PRIME-imports a guest dmabuf (e.g. a client's linux-dmabuf plane; kernel backend) so that its resource id can be
   * sent as a blob item. Fails for plain memfds (copy those into a host blob instead, §6.5). Call release() after
   * the SEND that carries it (closing the GEM handle right after the EXECBUFFER is fine, §5.9).
   */
  async importDmabuf(fd: number): Promise<ImportedBlob> {
    this.assertOpen("importDmabuf");
    const blob = await this.gpu.importBlob(fd);
    const entry = this.gemRefs.get(blob.bo) ?? { blob, refs: 0 };
    entry.refs++;
    this.gemRefs.set(blob.bo, entry);
    let released = false;
    return {
      resourceId: blob.resourceId,
      release: () => {
        if (released) return;
        released = true;
        if (--entry.refs > 0) return;
        this.gemRefs.delete(blob.bo);
        if (!this.closed) this.gpu.closeBlob(blob);
      },
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Eventfds and host items

  /**
   * Binds a received eventfd item so host signals reach the guest: READ_EVENTFD_NEW, then each host READ adds its
   * 8-byte value to a local eventfd. Returns an fd of that local eventfd for the client (the caller owns it).
   */
  eventfdFromHost(id: number, beforeWake?: () => boolean): number {
    return this.pipes.eventfdFromHost(id, beforeWake);
  }

  /**
   * Binds a received eventfd item so guest signals reach the host: a local eventfd is watched and each value read is
   * sent as WRITE {id, 8 bytes little-endian}. Returns an fd of the local eventfd for the client.
   */
  eventfdToHost(id: number, beforeSend?: () => boolean): number {
    return this.pipes.eventfdToHost(id, beforeSend);
  }

  /** Frees a host write-pipe or eventfd item with WRITE {hang_up = 1}, so it does not live until the context dies (P19). */
  releaseItem(id: number): void {
    this.pipes.releaseItem(id);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Host → guest

  /**
   * What the native fast path asks of the channel after its own work (fast_path.cc Notice): a timer it cannot arm,
   * or a pause because the client did not take all of a RECEIVE's events.
   */
  fastPathArmAnswerTimer(): void {
    if (!this.closed && this.awaitingSince !== 0 && this.answerTimer === null)
      this.armAnswerTimer(this.hostTimeoutMs);
  }

  /** The native ride timer (fast_path.cc) expired when it could not send the POLL itself. */
  fastPathRideExpired(): void {
    if (!this.closed && this.pollRiding) this.poll();
  }

  /** How long a riding POLL waits for a SEND (POLL_RIDE_MS unless the options changed it). */
  get rideMs(): number {
    return this.pollRideMs;
  }

  fastPathPause(): void {
    this.paused = true;
  }

  /** The pipes are congested after a native fast path's SEND was queued over the socket's high-water mark. */
  fastPathCongested(): void {
    this.pipes.setCongested();
  }

  /** What a native fast path needs of the backend, or null (closed, or a backend without one). */
  fastPathSupport(): EmulatedFastPathSupport | null {
    return this.closed ? null : (this.gpu.fastPathSupport?.() ?? null);
  }

  /** The channel ring's bytes, for the native fast path (valid while the channel is open). */
  get channelRingBytes(): Uint8Array {
    return this.channelRing.map.bytes;
  }

  /** Resumes polling after a receive handler returned "pause". */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.poll();
  }

  /**
   * Submits the POLL. Called from promise continuations and watcher callbacks, where a throw would end the whole
   * process (unhandled rejection, or the addon's fatal exception): a failed EXECBUFFER ends this channel only.
   */
  private poll(): void {
    if (!this.canPoll()) return;
    this.pollRiding = false;
    this.pollOutstanding = true;
    try {
      this.gpu.execbuffer(this.pollCmd, ON_CHANNEL_RING);
    } catch (err) {
      this.fail(asChannelError(err, "POLL"));
    }
  }

  private canPoll(): boolean {
    return !(this.closed || this.pollOutstanding || this.paused || this.pipes.backlogged || this.dispatching);
  }

  /**
   * The POLL after a RECEIVE: riding on the next SEND for at most POLL_RIDE_MS when the RECEIVE answered a request
   * the client waits on (see expectAnswer) and drained the host's socket; at once when the host may have more (the
   * RECEIVE filled the host's buffer, or carried identifiers, where a host stops reading early) or spoke unasked.
   */
  private pollAfterReceive(m: CrossDomainMessage, answered: boolean): void {
    const drained =
      m.kind === "receive" && m.ids.count === 0 && m.data.length < RECEIVE_BUFFER_BYTES - this.hdrSize;
    if (!answered || !drained || !this.canPoll()) {
      this.poll();
      return;
    }
    this.pollRiding = true;
    this.rideSince = performance.now();
    if (!this.rideTimer.armed) this.armRideTimer(this.pollRideMs);
  }

  private armRideTimer(ms: number): void {
    this.rideArmedFor = this.rideSince;
    this.rideTimerArmed = true;
    this.rideTimer.start(ms);
  }

  private rideTimerExpired(): void {
    this.rideTimerArmed = false;
    if (!this.pollRiding || this.closed) return;
    // The ride it was armed for: its time is up. A later ride: it waits what is left of its own time, unless that is
    // only a little.
    const left = this.pollRideMs - (performance.now() - this.rideSince);
    if (this.rideSince !== this.rideArmedFor && left > RIDE_SLACK_MS) this.armRideTimer(left);
    else this.poll();
  }

  private onFenceEvent(): void {
    if (this.closed) return;
    const ring = this.channelRing.map.bytes;
    if (ring[0] === 0 && this.channelRing !== this.queryRing) {
      // The POLL completed but the host wrote nothing: QEMU's rutabaga device completes every pending fence of the
      // same ring index up to the one signalled, whichever context it belongs to, so another client's message can
      // complete this one's POLL. The host's job for it is still pending and its real signal will find nothing to
      // complete: keep the POLL counted as outstanding and watch the ring for the host's write instead.
      this.awaitHostWrite();
      return;
    }
    this.consumeRingMessage();
  }

  /** Polls the ring's command byte after a completion without a message (see onFenceEvent). */
  private awaitHostWrite(): void {
    if (this.spuriousTimer !== null) return;
    this.log.debug("POLL completed without a message (another context's fence): watching the ring");
    let delay = 1;
    let seen = false;
    const check = () => {
      this.spuriousTimer = null;
      if (this.closed) return;
      if (this.channelRing.map.bytes[0] !== 0) {
        // The host writes the header before the body: one more tick for the body to land.
        if (seen) {
          this.consumeRingMessage();
          return;
        }
        seen = true;
      }
      delay = Math.min(2 * delay, 20);
      this.spuriousTimer = setTimeout(check, seen ? SPURIOUS_SETTLE_MS : delay);
    };
    this.spuriousTimer = setTimeout(check, delay);
  }

  private consumeRingMessage(): void {
    this.pollOutstanding = false;
    // Whether this message answers a request the client waits on (its POLL may then ride, see pollAfterReceive).
    const answered = this.awaitingSince !== 0;
    this.hostAnswered();
    let m: CrossDomainMessage;
    try {
      m = decodeRingMessage(this.channelRing.map.bytes, this.config.maxIdentifiers);
    } catch (err) {
      this.fail(err as CrosswayError);
      return;
    }
    this.dispatching = true;
    if (m.kind === "receive" && m.ids.count > 0) {
      // Identifiers become items first (host blobs are created and exported: awaited).
      this.deliverWithItems(m.data, m.ids).then(
        () => this.dispatched(m, answered),
        (err: unknown) => {
          this.dispatching = false;
          this.fail(asChannelError(err, "channel dispatch"));
        },
      );
      return;
    }
    // Everything else needs nothing awaited: handled now, in the fence's callback, without a promise and a microtask
    // per message (a round trip's RECEIVE; PipeWire's READ per graph cycle). `dispatching` holds the POLL back while
    // the ring's bytes are still being read.
    try {
      if (m.kind === "receive") this.deliver(m.data, NO_ITEMS);
      else if (m.kind === "read") this.pipes.onRead(m.identifier, m.hangUp, m.data);
      else this.log.debug({ kind: m.kind }, "ignored channel-ring message");
    } catch (err) {
      this.dispatching = false;
      this.fail(asChannelError(err, "channel dispatch"));
      return;
    }
    this.dispatched(m, answered);
  }

  /**
   * After any ring message was handled: the ring is free again, and the next POLL goes (or waits to ride). The
   * command byte is cleared for every kind, READs too: a POLL completed early by another context's fence (QEMU)
   * must find 0 there, not the last message again.
   */
  private dispatched(m: CrossDomainMessage, answered: boolean): void {
    this.dispatching = false;
    // Consumed: a zero command byte tells the next completion whether the host wrote anything for it.
    if (!this.closed) this.channelRing.map.bytes[0] = 0;
    this.pollAfterReceive(m, answered);
  }

  /** Hands a RECEIVE's bytes and items to the proxy; an empty one is the host's orderly shutdown (§3.3). */
  private deliver(data: Uint8Array, items: readonly ReceivedItem[]): void {
    if (data.length === 0 && items.length === 0) {
      // Orderly host shutdown (§3.3 host-initiated EOF): no further POLL (§6.9).
      this.finish({ kind: "host-hangup" });
      return;
    }
    // The ring is not rewritten before the next POLL, so handing out a view of it is safe for this call.
    if (this.onReceive(data, items) === "pause") this.paused = true;
  }

  /** A RECEIVE with identifiers: blobs are created and exported (awaited) before the bytes go to the proxy. */
  private async deliverWithItems(data: Uint8Array, ids: IdentifierList): Promise<void> {
    const items = await this.convertItems(ids);
    if (this.closed) {
      closeItems(items);
      return;
    }
    this.deliver(data, items);
  }

  private async convertItems(ids: IdentifierList): Promise<ReceivedItem[]> {
    const items: ReceivedItem[] = [];
    try {
      for (let i = 0; i < ids.count; i++) {
        const id = ids.ids[i]!;
        const type = ids.types[i]!;
        const size = ids.sizes[i]!;
        if (type === IdentifierType.VIRTGPU_BLOB) {
          items.push(await this.receiveBlob(id, size));
        } else if (type === IdentifierType.WRITE_PIPE) {
          items.push(this.pipes.receiveWritePipe(id));
        } else if (isReceivedEventfdType(type)) {
          this.pipes.receiveEventfd(id);
          items.push({ kind: "eventfd", id });
        } else if (type === IdentifierType.SOCKET) {
          items.push({ kind: "socket", id });
        } else {
          throw new CrosswayError("CW_CROSSDOMAIN_MALFORMED", `RECEIVE: identifier type ${type} (id ${id})`, {
            value: type,
          });
        }
      }
    } catch (err) {
      closeItems(items);
      throw err;
    }
    return items;
  }

  /** A host blob item → HOST3D blob (exactly once: the item is one-shot) → exported fd, GEM handle closed (§6.4). */
  private async receiveBlob(id: number, size: number): Promise<ReceivedItem> {
    if (size === 0) {
      // Nothing to map; an empty memfd stands in (the kernel rejects zero-sized blobs).
      return { kind: "blob", fd: native.memfdCreate("crossway-empty", 0), size: 0, access: "read-only" };
    }
    const blob = await this.gpu.createBlob({
      blobMem: BlobMem.HOST3D,
      blobFlags: BlobFlags.USE_MAPPABLE | BlobFlags.USE_SHAREABLE,
      size,
      blobId: id,
    });
    try {
      const exp = await this.gpu.exportBlob(blob);
      return { kind: "blob", fd: exp.fd, size, access: exp.access };
    } finally {
      this.gpu.closeBlob(blob);
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Errors and teardown

  private hostError(message: string): void {
    this.lastHostError = message;
    // A failed query is reported by the query itself; anything else means lost data or a dead worker.
    if (this.queryInFlight > 0 && !/halting|connection lost/.test(message)) return;
    this.fail(new CrosswayError("CW_CROSSDOMAIN_HOST_ERROR", `${this.gpu.description}: ${message}`));
  }

  private fail(error: CrosswayError): void {
    this.log.warn({ code: error.code, detail: error.message }, "channel failed");
    this.finish({ kind: "error", error });
  }

  private assertOpen(what: string): void {
    if (this.closed)
      throw new CrosswayError("CW_CROSSDOMAIN_CLOSED", `${what}: the cross-domain channel is closed`);
  }

  private finish(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.fast[FastState.CHANNEL_OPEN] = 0;
    this.hostAnswered();
    if (this.spuriousTimer !== null) clearTimeout(this.spuriousTimer);
    this.rideTimer.close();
    this.rideTimerArmed = false;
    if (this.answerTimer !== null) clearTimeout(this.answerTimer);
    this.answerTimer = null;
    this.pipes.closeAll();
    this.queryRing.map.unmap();
    if (this.channelRing !== this.queryRing) this.channelRing.map.unmap();
    this.gpu.onFence = () => {};
    this.gpu.onHostError = () => {};
    // Closing the context drops the host's state and socket: the host peer sees the disconnect (§6.9).
    this.gpu.close();
    this.onClose(reason);
  }

  /** Closes the channel from the guest side. Idempotent. */
  close(): void {
    this.finish({ kind: "local" });
  }
}

/** Closes the fds of received items (on error paths). */
export function closeItems(items: readonly ReceivedItem[]): void {
  for (const it of items) if (it.kind === "blob" || it.kind === "write-pipe") native.close(it.fd);
}
