// SEND planning, pure: cuts a batch of guest bytes and their items into cross-domain SENDs that the host can forward.
//
// The host does one sendmsg per SEND, so the fds of a SEND are attached to its first byte. libwayland's rule
// (connection.c: fds are queued with, or before, the bytes of the message that carries them) then means: an item
// must ride on a SEND that starts before its message's last byte, or the peer holds a complete message whose fd has
// not arrived ("file descriptor expected"). Limits per SEND: ≤ 3744 bytes, ≤ maxIdentifiers items, ≤ 1 read pipe
// ([RG] context.rs send: "expected just one pipe pair").
//
//   bytes  |----- msg A -----|---- msg B ----|------------ other requests ------------|
//   items        pipe A (end=A)   pipe B (end=B)
//   SENDs  [0 ............ B-1) [B-1 ........................................ len)
//            carries pipe A       carries pipe B: starts inside msg B, never after it
import { CrosswayError } from "../errors.ts";

/** What the planner needs to know of an item. */
export interface PlanItem {
  /** A READ_PIPE item (at most one per SEND). */
  readonly pipe: boolean;
  /** Byte offset just past the message that carries the item (1 ≤ end ≤ data length; non-decreasing). */
  readonly end: number;
}

/** One SEND: bytes [start, end) of the batch with items [firstItem, lastItem). */
export interface PlannedSend {
  readonly start: number;
  readonly end: number;
  readonly firstItem: number;
  readonly lastItem: number;
}

/** Per-SEND limits. */
export interface PlanLimits {
  readonly maxBytes: number;
  readonly maxIdentifiers: number;
}

/**
 * Plans the SENDs for `dataLength` bytes and `items` (in message order). Items are grouped (each group as large as
 * the limits allow), each group gets the latest
 * byte its SEND may start at (before its first item's message ends, before the next group's start), and SENDs are
 * cut forwards, as long as possible within those starts and 3744 bytes. Throws CW_CROSSDOMAIN_LIMIT, before anything
 * is sent, when no plan exists (more SENDs needed than bytes to start them on).
 */
export function planSends(dataLength: number, items: readonly PlanItem[], limits: PlanLimits): PlannedSend[] {
  let prevEnd = 1;
  for (let k = 0; k < items.length; k++) {
    const e = items[k]!.end;
    if (!Number.isInteger(e) || e < prevEnd || e > dataLength) {
      throw new CrosswayError(
        "CW_CROSSDOMAIN_LIMIT",
        `send: item ${k} ends its message at byte ${e}, outside [${prevEnd}, ${dataLength}] (items need bytes to ride on, in order)`,
        { value: e },
      );
    }
    prevEnd = e;
  }
  // Groups packed from the front, as large as the limits allow (libwayland's order: the first 28 fds on the first
  // sendmsg); fewer groups never hurt, and a group's items only need a start before its first item's message ends.
  const firsts = groupFirsts(items, limits);
  const latest = latestStarts(items, firsts);
  if (firsts.length > 0 && latest[0]! < 0) {
    throw new CrosswayError(
      "CW_CROSSDOMAIN_LIMIT",
      `send: ${items.length} items need ${firsts.length} SENDs (≤ ${limits.maxIdentifiers} identifiers and 1 read pipe each), each starting before its first item's message ends, but ${dataLength} bytes cannot start them all`,
      { value: items.length },
    );
  }
  const out: PlannedSend[] = [];
  let off = 0;
  let g = 0;
  while (off < dataLength) {
    let cut = Math.min(dataLength, off + limits.maxBytes);
    let firstItem = items.length;
    let lastItem = items.length;
    if (g < firsts.length) {
      firstItem = firsts[g]!;
      lastItem = g + 1 < firsts.length ? firsts[g + 1]! : items.length;
      g++;
      if (g < firsts.length) cut = Math.min(cut, latest[g]!);
    }
    out.push({ start: off, end: cut, firstItem, lastItem });
    off = cut;
  }
  return out;
}

/** The first item index of each group, groups as large as the limits allow, packed from the front. */
function groupFirsts(items: readonly PlanItem[], limits: PlanLimits): number[] {
  const firsts: number[] = [];
  for (let i = 0; i < items.length; ) {
    firsts.push(i);
    let j = i;
    let pipes = 0;
    while (j < items.length && j - i < limits.maxIdentifiers) {
      if (items[j]!.pipe) {
        if (pipes === 1) break;
        pipes++;
      }
      j++;
    }
    i = j;
  }
  return firsts;
}

/** The last byte each group's SEND may start at: before its first item's message ends, before the next group. */
function latestStarts(items: readonly PlanItem[], firsts: readonly number[]): number[] {
  const latest = new Array<number>(firsts.length);
  for (let g = firsts.length - 1; g >= 0; g--) {
    const own = items[firsts[g]!]!.end - 1;
    latest[g] = g + 1 < firsts.length ? Math.min(own, latest[g + 1]! - 1) : own;
  }
  return latest;
}
