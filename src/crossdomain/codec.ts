// Pure encoder/decoder for every cross-domain command and ring message (crossdomain.md §3); no I/O.
// All fields are little-endian (§0); commands may sit unaligned in a buffer (hosts use read_from_prefix).
import { CrosswayError } from "../errors.ts";
import {
  copyBytes,
  getI32,
  getU32,
  getU64,
  getU64Number,
  setU32,
  setU64,
  setU64Number,
} from "../wire/bytes.ts";
import {
  CrossDomainCmd,
  type CrossDomainConfig,
  FUTEX_NEW_SIZE,
  GET_IMAGE_REQUIREMENTS_SIZE,
  HEADER_SIZE,
  type IdentifierArraySize,
  IMAGE_REQUIREMENTS_SIZE,
  INIT_LEGACY_SIZE,
  INIT_LIBKRUN_SIZE,
  INIT_UUID_SIZE,
  INIT_V1_SIZE,
  MAX_CMD_SIZE,
  POLL_SIZE,
  READ_WRITE_HEADER_SIZE,
  SMALL_CMD_SIZE,
  sendReceiveHeaderSize,
} from "./protocol.ts";

function malformed(message: string, value?: unknown): CrosswayError {
  return new CrosswayError("CW_CROSSDOMAIN_MALFORMED", message, value === undefined ? {} : { value });
}

function room(buf: Uint8Array, off: number, size: number, what: string): void {
  if (off < 0 || off + size > buf.length) {
    throw new CrosswayError(
      "CW_CROSSDOMAIN_LIMIT",
      `${what}: ${size} bytes do not fit at offset ${off} of ${buf.length}`,
    );
  }
}

/** Writes the 8-byte CrossDomainHeader: cmd, ring_idx 0 (ignored by hosts), cmd_size, pad. */
export function encodeHeader(buf: Uint8Array, off: number, cmd: number, cmdSize: number): void {
  if (cmdSize > MAX_CMD_SIZE) {
    throw new CrosswayError(
      "CW_CROSSDOMAIN_LIMIT",
      `cross-domain command ${cmd}: cmd_size ${cmdSize} exceeds 65535`,
      {
        value: cmdSize,
      },
    );
  }
  buf[off] = cmd;
  buf[off + 1] = 0;
  buf[off + 2] = cmdSize & 0xff;
  buf[off + 3] = cmdSize >>> 8;
  setU32(buf, off + 4, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Guest → host commands

/** INIT variants, told apart by size (§3.3): 16 legacy, 20 "V1", 24 libkrun protocol-versioned, 36 upstream uuid. */
export type InitForm = "legacy" | "v1" | "libkrun" | "uuid";

/** A decoded or to-be-encoded INIT. `channelRingId` equals `queryRingId` for the legacy single-ring form. */
export interface InitCommand {
  readonly form: InitForm;
  readonly queryRingId: number;
  readonly channelRingId: number;
  readonly channelType: number;
  /** libkrun 24-byte form only. */
  readonly protocolVersion?: number;
  /** upstream 36-byte form only: 16 bytes. */
  readonly uuid?: Uint8Array;
}

const INIT_SIZES: Record<InitForm, number> = {
  legacy: INIT_LEGACY_SIZE,
  v1: INIT_V1_SIZE,
  libkrun: INIT_LIBKRUN_SIZE,
  uuid: INIT_UUID_SIZE,
};

/** Encodes INIT in the given form; returns its size. Send it alone in its own execbuffer (P2). */
export function encodeInit(buf: Uint8Array, off: number, init: InitCommand): number {
  const size = INIT_SIZES[init.form];
  room(buf, off, size, "INIT");
  encodeHeader(buf, off, CrossDomainCmd.INIT, size);
  setU32(buf, off + 8, init.queryRingId);
  if (init.form === "legacy") {
    setU32(buf, off + 12, init.channelType);
    return size;
  }
  setU32(buf, off + 12, init.channelRingId);
  setU32(buf, off + 16, init.channelType);
  if (init.form === "libkrun") setU32(buf, off + 20, init.protocolVersion ?? 0);
  if (init.form === "uuid") {
    const uuid = init.uuid ?? new Uint8Array(16);
    if (uuid.length !== 16) throw malformed(`INIT: uuid must be 16 bytes, not ${uuid.length}`);
    buf.set(uuid, off + 20);
  }
  return size;
}

/** GET_IMAGE_REQUIREMENTS arguments. */
export interface ImageQuery {
  readonly width: number;
  readonly height: number;
  readonly drmFormat: number;
  readonly flags: number;
}

/** Encodes GET_IMAGE_REQUIREMENTS (24 bytes); returns its size. */
export function encodeGetImageRequirements(buf: Uint8Array, off: number, q: ImageQuery): number {
  room(buf, off, GET_IMAGE_REQUIREMENTS_SIZE, "GET_IMAGE_REQUIREMENTS");
  encodeHeader(buf, off, CrossDomainCmd.GET_IMAGE_REQUIREMENTS, GET_IMAGE_REQUIREMENTS_SIZE);
  setU32(buf, off + 8, q.width);
  setU32(buf, off + 12, q.height);
  setU32(buf, off + 16, q.drmFormat);
  setU32(buf, off + 20, q.flags);
  return GET_IMAGE_REQUIREMENTS_SIZE;
}

/** Encodes POLL (16 bytes: header + u64 pad); returns its size. Submit it on ring 1 with RING_IDX (P4). */
export function encodePoll(buf: Uint8Array, off: number): number {
  room(buf, off, POLL_SIZE, "POLL");
  encodeHeader(buf, off, CrossDomainCmd.POLL, POLL_SIZE);
  buf.fill(0, off + 8, off + POLL_SIZE);
  return POLL_SIZE;
}

/** Identifier triples for SEND/RECEIVE; only the first `count` entries are meaningful. */
export interface IdentifierList {
  count: number;
  readonly ids: Uint32Array;
  readonly types: Uint32Array;
  readonly sizes: Uint32Array;
}

/** A reusable identifier list with room for `capacity` (28) entries. */
export function newIdentifierList(capacity = 28): IdentifierList {
  return {
    count: 0,
    ids: new Uint32Array(capacity),
    types: new Uint32Array(capacity),
    sizes: new Uint32Array(capacity),
  };
}

/**
 * Encodes SEND (cmd 4) or RECEIVE (cmd 5): header with cmd_size = header + data (0 for ring messages, where hosts
 * leave it unset, §3.1), the three identifier arrays (unused slots zeroed), then `data[from, to)` (all of it by
 * default; a range spares the caller a view per SEND). Returns the size.
 */
export function encodeSendReceive(
  buf: Uint8Array,
  off: number,
  cmd: typeof CrossDomainCmd.SEND | typeof CrossDomainCmd.RECEIVE,
  ids: IdentifierList,
  data: Uint8Array,
  maxIdentifiers: IdentifierArraySize,
  cmdSizeField: "exact" | "zero" = "exact",
  from = 0,
  to = data.length,
): number {
  const n = maxIdentifiers;
  if (ids.count > n) {
    throw new CrosswayError(
      "CW_CROSSDOMAIN_LIMIT",
      `SEND/RECEIVE: ${ids.count} identifiers exceed the limit of ${n}`,
      {
        value: ids.count,
      },
    );
  }
  const hdr = sendReceiveHeaderSize(n);
  const length = to - from;
  const size = hdr + length;
  room(buf, off, size, "SEND/RECEIVE");
  encodeHeader(buf, off, cmd, cmdSizeField === "exact" ? size : 0);
  setU32(buf, off + 8, ids.count);
  setU32(buf, off + 12, length);
  const idsOff = off + 16;
  const typesOff = idsOff + 4 * n;
  const sizesOff = typesOff + 4 * n;
  buf.fill(0, idsOff, off + hdr);
  for (let i = 0; i < ids.count; i++) {
    setU32(buf, idsOff + 4 * i, ids.ids[i]!);
    setU32(buf, typesOff + 4 * i, ids.types[i]!);
    setU32(buf, sizesOff + 4 * i, ids.sizes[i]!);
  }
  copyBytes(buf, off + hdr, data, from, length);
  return size;
}

/** Encodes READ (cmd 6, host→guest ring message) or WRITE (cmd 7); returns the size. */
export function encodeReadWrite(
  buf: Uint8Array,
  off: number,
  cmd: typeof CrossDomainCmd.READ | typeof CrossDomainCmd.WRITE,
  identifier: number,
  hangUp: boolean,
  data: Uint8Array,
  cmdSizeField: "exact" | "zero" = "exact",
): number {
  const size = READ_WRITE_HEADER_SIZE + data.length;
  room(buf, off, size, cmd === CrossDomainCmd.READ ? "READ" : "WRITE");
  encodeHeader(buf, off, cmd, cmdSizeField === "exact" ? size : 0);
  setU32(buf, off + 8, identifier);
  setU32(buf, off + 12, hangUp ? 1 : 0);
  setU32(buf, off + 16, data.length);
  setU32(buf, off + 20, 0);
  buf.set(data, off + READ_WRITE_HEADER_SIZE);
  return size;
}

/** Encodes a 16-byte `{hdr, id, pad}` command: FUTEX_SIGNAL (9), FUTEX_DESTROY (10) or READ_EVENTFD_NEW (11). */
export function encodeIdCommand(buf: Uint8Array, off: number, cmd: 9 | 10 | 11, id: number): number {
  room(buf, off, SMALL_CMD_SIZE, "id command");
  encodeHeader(buf, off, cmd, SMALL_CMD_SIZE);
  setU32(buf, off + 8, id);
  setU32(buf, off + 12, 0);
  return SMALL_CMD_SIZE;
}

// ---------------------------------------------------------------------------------------------------------------
// Query-ring reply

/** The 64-byte CrossDomainImageRequirements written at offset 0 of the query ring. */
export interface ImageRequirements {
  readonly strides: readonly [number, number, number, number];
  readonly offsets: readonly [number, number, number, number];
  readonly modifier: bigint;
  /** Rounded up to the host page size. A blob created from `blobId` must have exactly this size (P14). */
  readonly size: number;
  /** Host item id of the reusable allocation template. */
  readonly blobId: number;
  /** Host cache type: 1 cached, 2 uncached, 3 write-combined. */
  readonly mapInfo: number;
  readonly memoryIdx: number;
  readonly physicalDeviceIdx: number;
}

/** Encodes the image-requirements reply (64 bytes); the host side of GET_IMAGE_REQUIREMENTS. */
export function encodeImageRequirements(buf: Uint8Array, off: number, r: ImageRequirements): number {
  room(buf, off, IMAGE_REQUIREMENTS_SIZE, "image requirements");
  for (let i = 0; i < 4; i++) {
    setU32(buf, off + 4 * i, r.strides[i]!);
    setU32(buf, off + 16 + 4 * i, r.offsets[i]!);
  }
  setU64(buf, off + 32, r.modifier);
  setU64Number(buf, off + 40, r.size);
  setU32(buf, off + 48, r.blobId);
  setU32(buf, off + 52, r.mapInfo);
  setU32(buf, off + 56, r.memoryIdx >>> 0);
  setU32(buf, off + 60, r.physicalDeviceIdx >>> 0);
  return IMAGE_REQUIREMENTS_SIZE;
}

/** Decodes the 64-byte image-requirements reply. */
export function decodeImageRequirements(buf: Uint8Array, off = 0): ImageRequirements {
  if (off + IMAGE_REQUIREMENTS_SIZE > buf.length) throw malformed("image requirements: need 64 bytes");
  return {
    strides: [getU32(buf, off), getU32(buf, off + 4), getU32(buf, off + 8), getU32(buf, off + 12)],
    offsets: [getU32(buf, off + 16), getU32(buf, off + 20), getU32(buf, off + 24), getU32(buf, off + 28)],
    modifier: getU64(buf, off + 32),
    size: getU64Number(buf, off + 40),
    blobId: getU32(buf, off + 48),
    mapInfo: getU32(buf, off + 52),
    memoryIdx: getI32(buf, off + 56),
    physicalDeviceIdx: getI32(buf, off + 60),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/** A decoded command or ring message. Byte fields are views into the input buffer (copy before it is reused). */
export type CrossDomainMessage =
  | ({ readonly kind: "init"; readonly size: number } & InitCommand)
  | ({ readonly kind: "get-image-requirements"; readonly size: number } & ImageQuery)
  | { readonly kind: "poll"; readonly size: number }
  | {
      readonly kind: "send" | "receive";
      readonly size: number;
      readonly ids: IdentifierList;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: "read" | "write";
      readonly size: number;
      readonly identifier: number;
      readonly hangUp: boolean;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: "futex-signal" | "futex-destroy" | "read-eventfd-new";
      readonly size: number;
      readonly id: number;
    }
  | {
      readonly kind: "futex-new" | "import-virtiofs-handle";
      readonly size: number;
      readonly fsId: bigint;
      readonly handle: bigint;
      readonly id: number;
    }
  | {
      readonly kind: "assign-socket-uuid";
      readonly size: number;
      readonly uuid: Uint8Array;
      readonly id: number;
    };

/** The 8-byte header fields. */
export interface CommandHeader {
  readonly cmd: number;
  readonly ringIdx: number;
  readonly cmdSize: number;
}

/** Decodes the header at `off`; throws when fewer than 8 bytes remain. */
export function decodeHeader(buf: Uint8Array, off: number, end = buf.length): CommandHeader {
  if (off + HEADER_SIZE > end) throw malformed(`cross-domain header: ${end - off} bytes left, need 8`);
  return { cmd: buf[off]!, ringIdx: buf[off + 1]!, cmdSize: buf[off + 2]! | (buf[off + 3]! << 8) };
}

/**
 * Shared, frozen lists for the common case of no identifiers (most Wayland traffic): decoding then allocates no
 * typed arrays. Decoded lists are read-only for their consumers, so sharing is safe.
 */
const NO_IDS: Readonly<Record<IdentifierArraySize, IdentifierList>> = {
  28: Object.freeze(newIdentifierList(28)),
  4: Object.freeze(newIdentifierList(4)),
};

function decodeIds(buf: Uint8Array, off: number, count: number, n: IdentifierArraySize): IdentifierList {
  if (count === 0) return NO_IDS[n];
  const ids = newIdentifierList(n);
  ids.count = count;
  for (let i = 0; i < count; i++) {
    ids.ids[i] = getU32(buf, off + 16 + 4 * i);
    ids.types[i] = getU32(buf, off + 16 + 4 * n + 4 * i);
    ids.sizes[i] = getU32(buf, off + 16 + 8 * n + 4 * i);
  }
  return ids;
}

function decodeSendReceive(
  buf: Uint8Array,
  off: number,
  end: number,
  kind: "send" | "receive",
  n: IdentifierArraySize,
  cmdSize = -1,
): CrossDomainMessage {
  const hdr = sendReceiveHeaderSize(n);
  if (off + hdr > end) throw malformed(`${kind.toUpperCase()}: ${end - off} bytes left, header needs ${hdr}`);
  const count = getU32(buf, off + 8);
  const dataSize = getU32(buf, off + 12);
  if (count > n) throw malformed(`${kind.toUpperCase()}: num_identifiers ${count} exceeds ${n}`, count);
  // The host checks that opaque_data_size bytes follow the header (InvalidCommandSize, §3.3).
  if (off + hdr + dataSize > end) {
    throw malformed(
      `${kind.toUpperCase()}: opaque_data_size ${dataSize} exceeds the ${end - off - hdr} bytes present`,
    );
  }
  return {
    kind,
    // A command's size is its cmd_size (a host walks the buffer by it); a ring message's, what it holds.
    size: cmdSize >= 0 ? cmdSize : hdr + dataSize,
    ids: decodeIds(buf, off, count, n),
    data: buf.subarray(off + hdr, off + hdr + dataSize),
  };
}

function decodeReadWrite(
  buf: Uint8Array,
  off: number,
  end: number,
  kind: "read" | "write",
  cmdSize = -1,
): CrossDomainMessage {
  if (off + READ_WRITE_HEADER_SIZE > end) throw malformed(`${kind.toUpperCase()}: truncated header`);
  const dataSize = getU32(buf, off + 16);
  if (off + READ_WRITE_HEADER_SIZE + dataSize > end) {
    throw malformed(
      `${kind.toUpperCase()}: opaque_data_size ${dataSize} exceeds the bytes present`,
      dataSize,
    );
  }
  return {
    kind,
    size: cmdSize >= 0 ? cmdSize : READ_WRITE_HEADER_SIZE + dataSize,
    identifier: getU32(buf, off + 8),
    hangUp: getU32(buf, off + 12) !== 0,
    data: buf.subarray(off + READ_WRITE_HEADER_SIZE, off + READ_WRITE_HEADER_SIZE + dataSize),
  };
}

function decodeInit(
  buf: Uint8Array,
  off: number,
  end: number,
  cmdSize: number,
  config: CrossDomainConfig,
): CrossDomainMessage {
  let form: InitForm;
  if (config.flavor === "crosvm") {
    // rutabaga context.rs submit_cmd matches hdr.cmd_size exactly: 16, 20 or 36; 24 is "invalid command".
    if (cmdSize === INIT_LEGACY_SIZE) form = "legacy";
    else if (cmdSize === INIT_V1_SIZE) form = "v1";
    else if (cmdSize === INIT_UUID_SIZE) form = "uuid";
    else throw malformed(`INIT: cmd_size ${cmdSize} is not 16, 20 or 36 (crosvm flavour)`, cmdSize);
  } else {
    // libkrun mod.rs submit_cmd ignores cmd_size and parses the longest struct that fits the rest of the buffer,
    // so an INIT batched with other commands is misread (pitfall P2). Reproduced on purpose.
    const left = end - off;
    if (left >= INIT_LIBKRUN_SIZE) form = "libkrun";
    else if (left >= INIT_V1_SIZE) form = "v1";
    else if (left >= INIT_LEGACY_SIZE) form = "legacy";
    else throw malformed(`INIT: ${left} bytes left, need at least 16 (libkrun flavour)`);
  }
  const need = INIT_SIZES[form];
  if (off + need > end) throw malformed(`INIT: ${end - off} bytes left, the ${form} form needs ${need}`);
  const queryRingId = getU32(buf, off + 8);
  const size = config.flavor === "crosvm" ? need : cmdSize;
  if (form === "legacy") {
    // CrossDomainInitLegacy::upgrade: the query ring doubles as the channel ring.
    return {
      kind: "init",
      size,
      form,
      queryRingId,
      channelRingId: queryRingId,
      channelType: getU32(buf, off + 12),
    };
  }
  const base = { queryRingId, channelRingId: getU32(buf, off + 12), channelType: getU32(buf, off + 16) };
  if (form === "libkrun")
    return { kind: "init", size, form, ...base, protocolVersion: getU32(buf, off + 20) };
  if (form === "uuid") return { kind: "init", size, form, ...base, uuid: buf.subarray(off + 20, off + 36) };
  return { kind: "init", size, form, ...base };
}

/**
 * Decodes one guest→host command at `off` (host side). The message's `size` is how far the host advances: the
 * header's cmd_size, which must be non-zero (a zero would make a host loop forever, P3) and cover the fields read.
 */
export function decodeCommand(
  buf: Uint8Array,
  off: number,
  end: number,
  config: CrossDomainConfig,
): CrossDomainMessage {
  const { cmd, cmdSize } = decodeHeader(buf, off, end);
  if (cmdSize < HEADER_SIZE) throw malformed(`cross-domain command ${cmd}: cmd_size ${cmdSize} < 8`, cmdSize);
  if (off + cmdSize > end && !(cmd === CrossDomainCmd.INIT && config.flavor === "libkrun")) {
    throw malformed(
      `cross-domain command ${cmd}: cmd_size ${cmdSize} exceeds the ${end - off} bytes left`,
      cmdSize,
    );
  }
  const cmdEnd = Math.min(end, off + cmdSize);
  let m: CrossDomainMessage;
  switch (cmd) {
    case CrossDomainCmd.INIT:
      return decodeInit(buf, off, end, cmdSize, config);
    case CrossDomainCmd.GET_IMAGE_REQUIREMENTS:
      need(cmdEnd - off, GET_IMAGE_REQUIREMENTS_SIZE, "GET_IMAGE_REQUIREMENTS");
      m = {
        kind: "get-image-requirements",
        size: cmdSize,
        width: getU32(buf, off + 8),
        height: getU32(buf, off + 12),
        drmFormat: getU32(buf, off + 16),
        flags: getU32(buf, off + 20),
      };
      return m;
    case CrossDomainCmd.POLL:
      return { kind: "poll", size: cmdSize };
    case CrossDomainCmd.SEND:
      // Built with its cmd_size at once: no second object per SEND.
      return decodeSendReceive(buf, off, cmdEnd, "send", config.maxIdentifiers, cmdSize);
    case CrossDomainCmd.WRITE:
      return decodeReadWrite(buf, off, cmdEnd, "write", cmdSize);
    case CrossDomainCmd.FUTEX_SIGNAL:
    case CrossDomainCmd.FUTEX_DESTROY:
    case CrossDomainCmd.READ_EVENTFD_NEW:
      need(cmdEnd - off, SMALL_CMD_SIZE, `command ${cmd}`);
      return {
        kind:
          cmd === CrossDomainCmd.FUTEX_SIGNAL
            ? "futex-signal"
            : cmd === CrossDomainCmd.FUTEX_DESTROY
              ? "futex-destroy"
              : "read-eventfd-new",
        size: cmdSize,
        id: getU32(buf, off + 8),
      };
    case CrossDomainCmd.FUTEX_NEW:
    case CrossDomainCmd.CMD_12:
      if (cmd === CrossDomainCmd.CMD_12 && config.flavor === "libkrun") {
        // libkrun defines READ_EVENTFD_DESTROY = 12 but submit_cmd does not dispatch it.
        throw malformed("command 12 (READ_EVENTFD_DESTROY) is not dispatched by libkrun", cmd);
      }
      need(cmdEnd - off, FUTEX_NEW_SIZE, `command ${cmd}`);
      return {
        kind: cmd === CrossDomainCmd.FUTEX_NEW ? "futex-new" : "import-virtiofs-handle",
        size: cmdSize,
        fsId: getU64(buf, off + 8),
        handle: getU64(buf, off + 16),
        id: getU32(buf, off + 24),
      };
    case CrossDomainCmd.ASSIGN_SOCKET_UUID:
      if (config.flavor === "libkrun")
        throw malformed("command 13 (ASSIGN_SOCKET_UUID) is upstream-only", cmd);
      need(cmdEnd - off, 32, "ASSIGN_SOCKET_UUID");
      return {
        kind: "assign-socket-uuid",
        size: cmdSize,
        uuid: buf.subarray(off + 8, off + 24),
        id: getU32(buf, off + 24),
      };
    default:
      throw malformed(`invalid cross domain command ${cmd}`, cmd);
  }
}

function need(have: number, want: number, what: string): void {
  if (have < want) throw malformed(`${what}: cmd_size covers ${have} bytes, need ${want}`, have);
}

/**
 * Decodes the message the host wrote at offset 0 of the channel ring (guest side, §3.6). Hosts leave cmd_size at
 * 0 there, so sizes come from the per-message fields only. RECEIVE, READ and FUTEX_SIGNAL are valid; anything else
 * is a protocol error (Sommelier returns -EINVAL).
 */
export function decodeRingMessage(ring: Uint8Array, maxIdentifiers: IdentifierArraySize): CrossDomainMessage {
  const cmd = ring[0];
  switch (cmd) {
    case CrossDomainCmd.RECEIVE:
      return decodeSendReceive(ring, 0, ring.length, "receive", maxIdentifiers);
    case CrossDomainCmd.READ:
      return decodeReadWrite(ring, 0, ring.length, "read");
    case CrossDomainCmd.FUTEX_SIGNAL:
      if (ring.length < SMALL_CMD_SIZE) throw malformed("FUTEX_SIGNAL: truncated");
      return { kind: "futex-signal", size: SMALL_CMD_SIZE, id: getU32(ring, 8) };
    default:
      throw malformed(`channel ring: unexpected message type ${cmd}`, cmd);
  }
}
