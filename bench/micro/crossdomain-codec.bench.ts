// Cross-domain codec: SEND encode and RECEIVE decode at the payload limit, with and without identifiers.
import { decodeRingMessage, encodeSendReceive, newIdentifierList } from "../../src/crossdomain/codec.ts";
import { CrossDomainCmd, MAX_SEND_RECV_SIZE, sendReceiveHeaderSize } from "../../src/crossdomain/protocol.ts";
import { defineMicro } from "./define.ts";

const payload = new Uint8Array(MAX_SEND_RECV_SIZE).fill(7);
const small = new Uint8Array(32).fill(3);
const buf = new Uint8Array(sendReceiveHeaderSize(28) + MAX_SEND_RECV_SIZE);
const none = newIdentifierList(28);
const full = newIdentifierList(28);
full.count = 28;
for (let i = 0; i < 28; i++) {
  full.ids[i] = 100 + i;
  full.types[i] = 1;
  full.sizes[i] = 4096;
}
const ring = new Uint8Array(4096);
encodeSendReceive(
  ring,
  0,
  CrossDomainCmd.RECEIVE,
  full,
  payload.subarray(0, 4096 - sendReceiveHeaderSize(28)),
  28,
  "zero",
);
const ringSmall = new Uint8Array(4096);
encodeSendReceive(ringSmall, 0, CrossDomainCmd.RECEIVE, none, small, 28, "zero");

export default defineMicro({
  name: "cross-domain codec",
  cases: {
    "encode SEND, 3744 bytes, no identifiers": () =>
      encodeSendReceive(buf, 0, CrossDomainCmd.SEND, none, payload, 28),
    "encode SEND, 32 bytes (one small Wayland message)": () =>
      encodeSendReceive(buf, 0, CrossDomainCmd.SEND, none, small, 28),
    "encode SEND, 3744 bytes, 28 identifiers": () =>
      encodeSendReceive(buf, 0, CrossDomainCmd.SEND, full, payload, 28),
    "decode RECEIVE from the ring, 28 identifiers": () => decodeRingMessage(ring, 28),
    "decode RECEIVE from the ring, 32 bytes": () => decodeRingMessage(ringSmall, 28),
  },
});
