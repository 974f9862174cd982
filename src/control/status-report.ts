// The shape of `crossway status` answers, shared by every command that opens a control socket.
import type { ChannelReserveStatus } from "../crossdomain/channel-reserve.ts";
import type { RequirementsAheadStatus } from "../crossdomain/recent-blob-sizes.ts";

/** The guest's spare channels, and the image requirements its channels asked before their clients did. */
export interface SpareChannelsStatus extends ChannelReserveStatus {
  readonly requirementsAhead?: RequirementsAheadStatus;
}

/** One proxied connection as the running command sees it. Fields it cannot know are absent. */
export interface ConnectionStatus {
  /** The command's own tag for the connection ("c1", "c2", ...), as in its log lines. */
  readonly tag: string;
  /** xdg_toplevel app_id and title as the client set them (before any prefix), Wayland only. */
  readonly appId?: string;
  readonly title?: string;
  /** Live protocol objects (Wayland ids on both sides; PipeWire proxies). */
  readonly objects: number;
  /** Host shared memory the connection holds (Wayland shm pools' host blobs), in bytes. */
  readonly shmBytes: number;
  /** Bytes queued towards the client, not yet written to its socket. */
  readonly queuedBytes: number;
  /** Milliseconds since the connection was accepted. */
  readonly ageMs: number;
  /** Things the policy refused for this connection (hidden globals, refused messages). */
  readonly refusals: number;
  /** Which policy generation the connection runs with (1 at start, +1 per accepted reload). */
  readonly policyGeneration: number;
  /**
   * What the native fast path carried without JavaScript (guest Wayland connections on the emulated device):
   * runs taken and the messages in them, each way. Absent when the connection has none.
   */
  readonly fastPath?: {
    readonly requestRuns: number;
    readonly requestMessages: number;
    readonly eventRuns: number;
    readonly eventMessages: number;
    /** RECEIVEs the client's socket did not take whole: the rest went to the JavaScript queue. */
    readonly clientRemainders: number;
    /** SENDs the device's socket did not take whole: the rest was queued, and the client held until it drained. */
    readonly deviceRemainders: number;
  };
}

/** What a control socket answers to `status`. */
export interface StatusReport {
  /** "guest", "pipewire-filter", "wayland-filter". */
  readonly command: string;
  readonly pid: number;
  /** Seconds since the command started. */
  readonly uptimeSec: number;
  /** The policy or config file reloads read (absent: the command runs on built-in defaults or options). */
  readonly policyFile?: string;
  /** The generation new connections get. */
  readonly policyGeneration: number;
  readonly connections: readonly ConnectionStatus[];
  /**
   * The native fast paths' inline loop on the command's thread (native/src/inline_loop.h), since it started: times a
   * connection kept the thread after a wake-up handled without JavaScript, wake-ups handled during those stays, and
   * entries the back-off skipped, and expiries of a fast path's own deadline (the riding POLL's) served in stays. All 0
   * where no fast path runs.
   */
  readonly inlineLoop: {
    readonly enabled: boolean;
    readonly stays: number;
    readonly wakeups: number;
    readonly skipped: number;
    readonly timers: number;
  };
  /** `crossway guest`'s channels opened ahead of clients (src/crossdomain/channel-reserve.ts); absent elsewhere. */
  readonly spareChannels?: SpareChannelsStatus;
  /** The command's own memory when it answered (process.memoryUsage()), after a full GC if one was asked for. */
  readonly memory: MemoryStatus;
}

/** Process memory in bytes; `gcForced` says whether a full garbage collection ran just before the reading. */
export interface MemoryStatus {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
  readonly gcForced: boolean;
}
