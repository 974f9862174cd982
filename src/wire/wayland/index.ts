// Public API of the Wayland wire engine (pure: no I/O); see docs/wayland-wire.md for how the pieces fit.
export { ArgValues } from "./arg-values.ts";
export { formatDebugLine, formatFixed, formatTimestamp } from "./debug-format.ts";
export { argumentError, decodeArgs } from "./decoder.ts";
export {
  type DisplayError,
  DisplayErrorCode,
  MalformedMessageError,
  WireEncodeError,
  WireProtocolError,
  WireXmlError,
} from "./errors.ts";
export { FdQueue } from "./fd-queue.ts";
export {
  DEFAULT_MAX_MESSAGE_SIZE,
  type FramerOptions,
  HEADER_SIZE,
  MAX_MESSAGE_SIZE_LIMIT,
  MessageFramer,
  type MessageView,
  NEED_MORE,
  type NeedMore,
} from "./framer.ts";
export { MessageWriter, utf8Length } from "./message-writer.ts";
export { MAX_ID, ObjectMap, ObjectState, SERVER_ID_START, Side } from "./object-map.ts";
export { type PassThroughSink, PassThroughTable, passThroughLength } from "./pass-through.ts";
export type { ArgIr, EnumIr, InterfaceIr, MessageIr, ProtocolIr } from "./protocol-ir.ts";
export { protocolFromXml } from "./protocol-ir.ts";
export {
  ArgKind,
  type InterfaceDesc,
  MAX_ARGS,
  type MessageDesc,
  ProtocolRegistry,
  Special,
} from "./protocol-registry.ts";
export {
  DecodedMessage,
  Direction,
  Discard,
  WireConnection,
  type WireConnectionOptions,
} from "./wire-connection.ts";
