// Pure framing of the socket between the emulated VirtGpu backend (guest side) and `crossway device` (the VMM stand-in).
//
// Each frame: 16-byte header {type u32, serial u32, payload_len u32, nfds u32} (little-endian), then the payload.
// `nfds` fds travel by SCM_RIGHTS with some byte at or before the frame; the receiver keeps them in one FIFO and each
// frame takes its `nfds` from its head (libwayland's approach; fds are never matched to a recvmsg by position).
//
// Only two kinds of fd ever cross this socket: guest-memory blobs the backend itself created (memfds standing in
// for guest RAM that the VMM can see), and host blob memory the device hands back for mapping (host-visible memory).
// No fd belonging to a guest client ever does: the command stream carries identifiers, as with a real VMM.
import { getU32, getU64Number, setU32, setU64Number } from "../wire/bytes.ts";

/** Frame header size. */
export const FRAME_HEADER_SIZE = 16;
/** Largest payload accepted (a SUBMIT carries at most one 64 KiB command buffer plus its fixed fields). */
export const MAX_FRAME_PAYLOAD = 1 << 20;

/** Frame types. Requests carry a serial; the device answers each request with REPLY of the same serial. */
export const FrameType = {
  /** → REPLY {features3d, resourceBlob, hostVisible, contextInit, capsetMask} (5 × u32). */
  GET_PARAMS: 1,
  /** {capsetId, version, size} → REPLY bytes. */
  GET_CAPS: 2,
  /** {capsetId, numRings, pollRingsMask} → REPLY. */
  CONTEXT_INIT: 3,
  /** {blobMem, blobFlags, size u64, blobId u64} (+1 fd, the guest memory, for GUEST) → REPLY {resId, size u64, writable} (+1 fd for HOST3D). */
  CREATE_BLOB: 4,
  /** {resId}; no reply. */
  CLOSE_RESOURCE: 5,
  /** {flags, ringIdx, fenceId, then the command buffer}; no reply; FENCE {fenceId} later when fenceId != 0. */
  SUBMIT: 6,
  /** Device → guest: {status u32 (0 = ok, else an errno), then the reply payload or a UTF-8 message}. */
  REPLY: 100,
  /** Device → guest: {fenceId}. */
  FENCE: 101,
  /** Device → guest: a UTF-8 line, what a real guest kernel would log as "response 0x1200 (command 0x207)". */
  HOST_ERROR: 102,
} as const;

/** A decoded frame header. */
export interface FrameHeader {
  readonly type: number;
  readonly serial: number;
  readonly payloadLength: number;
  readonly nfds: number;
}

/** Writes a frame header at `off`. */
function encodeFrameHeader(
  buf: Uint8Array,
  off: number,
  type: number,
  serial: number,
  payloadLength: number,
  nfds: number,
): void {
  setU32(buf, off, type);
  setU32(buf, off + 4, serial);
  setU32(buf, off + 8, payloadLength);
  setU32(buf, off + 12, nfds);
}

/** Reads the frame header at `off`, or null when fewer than 16 bytes are buffered. */
export function decodeFrameHeader(buf: Uint8Array, off: number, end: number): FrameHeader | null {
  if (end - off < FRAME_HEADER_SIZE) return null;
  return {
    type: getU32(buf, off),
    serial: getU32(buf, off + 4),
    payloadLength: getU32(buf, off + 8),
    nfds: getU32(buf, off + 12),
  };
}

/** Builds a whole frame from u32 fields (u64 fields are given as two entries via {@link u64Fields}) and a tail. */
export function buildFrame(
  type: number,
  serial: number,
  fields: readonly number[],
  tail: Uint8Array | null,
  nfds: number,
): Uint8Array {
  const out = new Uint8Array(frameSize(fields, tail));
  encodeFrame(out, type, serial, fields, tail, nfds);
  return out;
}

/** Bytes of the frame {@link encodeFrame} writes. */
export function frameSize(fields: readonly number[], tail: Uint8Array | null): number {
  return FRAME_HEADER_SIZE + fields.length * 4 + (tail?.length ?? 0);
}

/** Writes a whole frame at the start of `out` (at least {@link frameSize} bytes) and returns its size. */
export function encodeFrame(
  out: Uint8Array,
  type: number,
  serial: number,
  fields: readonly number[],
  tail: Uint8Array | null,
  nfds: number,
): number {
  const size = frameSize(fields, tail);
  encodeFrameHeader(out, 0, type, serial, size - FRAME_HEADER_SIZE, nfds);
  for (let i = 0; i < fields.length; i++) setU32(out, FRAME_HEADER_SIZE + 4 * i, fields[i]!);
  if (tail !== null) out.set(tail, FRAME_HEADER_SIZE + fields.length * 4);
  return size;
}

/** Splits a u64 (< 2^53) into the two u32 fields {@link buildFrame} expects (low, high). */
export function u64Fields(v: number): [number, number] {
  const b = new Uint8Array(8);
  setU64Number(b, 0, v);
  return [getU32(b, 0), getU32(b, 4)];
}

/** Reads field `i` (u32) of a payload. */
export function field(payload: Uint8Array, i: number): number {
  return getU32(payload, 4 * i);
}

/** Reads the u64 made of fields `i` and `i + 1`. */
export function field64(payload: Uint8Array, i: number): number {
  return getU64Number(payload, 4 * i);
}
