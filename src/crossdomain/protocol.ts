// Constants of the virtio-gpu cross-domain protocol and its explicit configuration (identifier-array size, host flavour).
// Every number here is cited in /work/shared/docs/crossdomain.md (§2, §3); sources: rutabaga and libkrun
// cross_domain_protocol.rs, Sommelier virtgpu_cross_domain_protocol.h.

/** Capset id of cross-domain (RUTABAGA_CAPSET_CROSS_DOMAIN). */
export const CAPSET_CROSS_DOMAIN = 5;
/** Size of the cross-domain capability blob (GET_CAPS). */
export const CROSS_DOMAIN_CAPS_SIZE = 16;

/** Command ids (§3.2). 8–12 differ in name between hosts; 12 differs in meaning. */
export const CrossDomainCmd = {
  INIT: 1,
  GET_IMAGE_REQUIREMENTS: 2,
  POLL: 3,
  SEND: 4,
  RECEIVE: 5,
  READ: 6,
  WRITE: 7,
  /** libkrun FUTEX_NEW, upstream CREATE_ATOMIC_MEMORY_SENTINEL. */
  FUTEX_NEW: 8,
  /** libkrun FUTEX_SIGNAL, upstream SIGNAL_ATOMIC_MEMORY_SENTINEL; also travels host→guest. */
  FUTEX_SIGNAL: 9,
  /** libkrun FUTEX_DESTROY, upstream DESTROY_ATOMIC_MEMORY_SENTINEL. */
  FUTEX_DESTROY: 10,
  /** libkrun READ_EVENTFD_NEW, upstream READ_CREATE_EVENT. */
  READ_EVENTFD_NEW: 11,
  /** upstream IMPORT_VIRTIOFS_HANDLE; libkrun READ_EVENTFD_DESTROY (defined, not dispatched). */
  CMD_12: 12,
  /** upstream ASSIGN_SOCKET_UUID. */
  ASSIGN_SOCKET_UUID: 13,
} as const;

/** Identifier types (§3.4). 5 and 6 mean different things on the two hosts: see {@link HostFlavor}. */
export const IdentifierType = {
  VIRTGPU_BLOB: 1,
  VIRTGPU_SYNC: 2,
  READ_PIPE: 3,
  WRITE_PIPE: 4,
  /** upstream EVENT (eventfd, host→guest); libkrun SHM (futex memory, guest→host). */
  TYPE_5: 5,
  /** upstream VIRTIO_FS_BLOB (guest→host); libkrun EVENTFD (host→guest). */
  TYPE_6: 6,
  /** upstream SOCKET (host→guest). */
  SOCKET: 7,
} as const;

/** Channel types (§3.5). */
export const ChannelType = {
  NONE: 0,
  WAYLAND: 0x0001,
  CAMERA: 0x0002,
  PIPEWIRE: 0x0010,
  X11: 0x0011,
  DBUS_SESSION: 0x0012,
  DBUS_SYSTEM: 0x0013,
  INTERNAL_SOCKET: 0xffffffff,
} as const;

/** Ring indices: replies to GET_IMAGE_REQUIREMENTS go to the query ring, RECEIVE/READ to the channel ring. */
export const QUERY_RING = 0;
export const CHANNEL_RING = 1;

/** First read-pipe id minus one: the host pre-increments, so the first pipe is 0x80000001 (§3.5). */
export const PIPE_READ_START = 0x80000000;

/** Host receive buffer: 4096 − 352 bytes; a RECEIVE never carries more (worker.rs CROSS_DOMAIN_MAX_SEND_RECV_SIZE). */
export const MAX_SEND_RECV_SIZE = 3744;

/** Largest value of the u16 `cmd_size` field, hence of one command. */
export const MAX_CMD_SIZE = 0xffff;

/** Sizes of the fixed command layouts (§3.3). */
export const HEADER_SIZE = 8;
export const INIT_LEGACY_SIZE = 16;
export const INIT_V1_SIZE = 20;
export const INIT_LIBKRUN_SIZE = 24;
export const INIT_UUID_SIZE = 36;
export const GET_IMAGE_REQUIREMENTS_SIZE = 24;
export const IMAGE_REQUIREMENTS_SIZE = 64;
export const POLL_SIZE = 16;
export const READ_WRITE_HEADER_SIZE = 24;
export const SMALL_CMD_SIZE = 16;
export const FUTEX_NEW_SIZE = 32;
export const EVENTFD_VALUE_SIZE = 8;

/** Rutabaga gralloc flags, numerically GBM's (§3.3, libkrun rutabaga_gralloc/gralloc.rs). */
export const GrallocFlags = {
  SCANOUT: 1 << 0,
  RENDERING: 1 << 2,
  LINEAR: 1 << 4,
  TEXTURING: 1 << 5,
  SW_READ_OFTEN: 1 << 9,
  SW_WRITE_OFTEN: 1 << 11,
} as const;

/** What Sommelier and wayland-proxy-virtwl always send: LINEAR | SCANOUT. */
export const DEFAULT_IMAGE_FLAGS = GrallocFlags.LINEAR | GrallocFlags.SCANOUT;

/** DRM fourcc codes used with GET_IMAGE_REQUIREMENTS. */
export const DrmFormat = {
  R8: 0x20203852,
  XRGB8888: 0x34325258,
  ARGB8888: 0x34325241,
  XBGR8888: 0x34324258,
  ABGR8888: 0x34324241,
  RGB565: 0x36314752,
} as const;

/** Host map_info cache types in the image-requirements reply. */
export const MapInfo = { CACHED: 1, UNCACHED: 2, WC: 3 } as const;

/**
 * Which host implementation is on the other side. There is no in-band way to tell them apart (both report caps
 * version 1, §7.4), so it is configuration:
 * - "crosvm": upstream rutabaga (crosvm): INIT chosen by exact cmd_size 16/20/36; eventfd items are type 5.
 * - "libkrun": libkrun's fork: INIT chosen by the remaining buffer length (24, 20, 16); eventfd items are type 6.
 */
export type HostFlavor = "crosvm" | "libkrun";

/** The number of identifier slots in SEND/RECEIVE: 28 today, 4 on pre-Feb-2024 crosvm and libkrun < 1.16 v0 (P1). */
export type IdentifierArraySize = 28 | 4;

/** Explicit configuration of the wire format; see pitfalls P1, P2 and P20. */
export interface CrossDomainConfig {
  readonly flavor: HostFlavor;
  readonly maxIdentifiers: IdentifierArraySize;
}

/** The portable default (§7.4): 28 identifiers, crosvm flavour (which only changes eventfd typing and INIT parsing). */
export const DEFAULT_CONFIG: CrossDomainConfig = { flavor: "crosvm", maxIdentifiers: 28 };

/** Size of the SEND/RECEIVE header for a given identifier-array size: 16 + 3 × 4 × n (352 or 64). */
export function sendReceiveHeaderSize(maxIdentifiers: IdentifierArraySize): number {
  return 16 + 12 * maxIdentifiers;
}

/** The identifier type a host of this flavour uses for eventfds in RECEIVE. */
export function eventfdIdentifierType(flavor: HostFlavor): number {
  return flavor === "crosvm" ? IdentifierType.TYPE_5 : IdentifierType.TYPE_6;
}

/** True when `type` in a RECEIVE means "eventfd": 5 (upstream) or 6 (libkrun) both do (§3.4 inference). */
export function isReceivedEventfdType(type: number): boolean {
  return type === IdentifierType.TYPE_5 || type === IdentifierType.TYPE_6;
}

/** Human name of a channel type, for messages. */
export function channelTypeName(type: number): string {
  for (const [name, value] of Object.entries(ChannelType)) if (value === type) return name.toLowerCase();
  return `0x${type.toString(16)}`;
}
