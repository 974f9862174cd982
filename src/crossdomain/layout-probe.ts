// Learns a host's SEND/RECEIVE identifier-slot count (4 or 28, pitfall P1) in-band, before any byte can reach the
// host's peer, since neither the caps nor the INIT reply say it.
//
// The trick: a SEND of exactly 64 bytes with no identifiers and no data is a complete, harmless command for a
// 4-slot host (rutabaga 0.1.2, libkrun protocol 0: it sends an empty message, which a stream socket drops), and a
// truncated one for a 28-slot host (352-byte header: InvalidCommandBuffer), which then skips the rest of that
// EXECBUFFER. Put a GET_IMAGE_REQUIREMENTS behind it and count the host's template ids: the query either ran or
// did not. A failed EXECBUFFER may never signal its fence (QEMU answers it with an error and no fence), so the
// count is read from a later, ordinary query on the same ring, whose fence signals the earlier one too.
import { CrosswayError } from "../errors.ts";
import { encodeSendReceive, newIdentifierList } from "./codec.ts";
import { CrossDomainCmd, type IdentifierArraySize, sendReceiveHeaderSize } from "./protocol.ts";

/** What the probe needs from a channel being opened: queries on its query ring. */
export interface LayoutProbePort {
  /**
   * Submits GET_IMAGE_REQUIREMENTS {width × 1, R8}, behind `prefix` in the same EXECBUFFER when given. With `wait`,
   * resolves with the reply's template id (0 when the host wrote nothing); without, resolves once submitted.
   */
  query(width: number, prefix: Uint8Array | null, wait: boolean): Promise<number>;
}

/** The probe command: a SEND with a 4-slot header (64 bytes), no identifiers, no data. */
export function layoutProbeCommand(): Uint8Array {
  const buf = new Uint8Array(sendReceiveHeaderSize(4));
  encodeSendReceive(buf, 0, CrossDomainCmd.SEND, newIdentifierList(4), new Uint8Array(0), 4);
  return buf;
}

/**
 * Asks the host which layout it parses: two plain queries give the template-id step, then the probe SEND with a
 * query behind it, then a plain query. One step more than the plain queries alone means the probe's query ran (a
 * 4-slot host); none means the host rejected the 64-byte SEND (28 slots). Anything else is reported, not guessed.
 */
export async function probeIdentifierSlots(
  port: LayoutProbePort,
  what: string,
): Promise<IdentifierArraySize> {
  const a = await port.query(1, null, true);
  const b = await port.query(2, null, true);
  await port.query(3, layoutProbeCommand(), false);
  const d = await port.query(4, null, true);
  const step = b - a;
  if (a === 0 || b === 0 || d === 0 || step <= 0) {
    throw new CrosswayError(
      "CW_CROSSDOMAIN_LAYOUT",
      `${what}: cannot learn the host's identifier layout: the query ring gave template ids ${a}, ${b}, ${d}; set --identifiers 4 or 28`,
    );
  }
  if (d - b === 2 * step) return 4;
  if (d - b === step) return 28;
  throw new CrosswayError(
    "CW_CROSSDOMAIN_LAYOUT",
    `${what}: cannot learn the host's identifier layout: template ids ${a}, ${b}, ${d} fit neither 4 nor 28 slots; set --identifiers 4 or 28`,
  );
}

const probed = new Map<string, Promise<IdentifierArraySize>>();

/**
 * One probe per device per process: every context of a device talks to the same host. A failed probe is not
 * remembered, so the next client tries again.
 */
export function probeOnce(
  device: string,
  run: () => Promise<IdentifierArraySize>,
): Promise<IdentifierArraySize> {
  const known = probed.get(device);
  if (known !== undefined) return known;
  const p = run();
  probed.set(device, p);
  p.catch(() => probed.delete(device));
  return p;
}
