// Typed errors of the Wayland wire engine, each convertible into the wl_display.error libwayland would send.
import { CrosswayError, type ErrorCode, type ErrorContext } from "../../errors.ts";

/** wl_display.error codes (wayland.xml, enum wl_display.error). */
export const DisplayErrorCode = {
  INVALID_OBJECT: 0,
  INVALID_METHOD: 1,
  NO_MEMORY: 2,
  IMPLEMENTATION: 3,
} as const;

/** The arguments of a wl_display.error event: the object the error is about, a code and a message. */
export interface DisplayError {
  readonly objectId: number;
  readonly code: number;
  readonly message: string;
}

/** A protocol XML file could not be turned into tables; `line` is 1-based (0 when unknown). */
export class WireXmlError extends CrosswayError {
  readonly source: string;
  readonly line: number;
  constructor(message: string, where: { source: string; line: number }) {
    super("CW_WIRE_XML", message);
    this.name = "WireXmlError";
    this.source = where.source;
    this.line = where.line;
  }
}

/**
 * A peer sent something the protocol forbids. `message` is our precise description (libwayland's wl_log wording
 * where it has one); {@link WireProtocolError.displayError} is what libwayland's server would post to the client
 * (wayland-server.c, wl_client_connection_data), so a proxy can answer exactly like a compositor would.
 */
export class WireProtocolError extends CrosswayError {
  readonly displayError: DisplayError;
  constructor(code: ErrorCode, message: string, context: ErrorContext, displayError: DisplayError) {
    super(code, message, context);
    this.name = "WireProtocolError";
    this.displayError = displayError;
  }
}

/**
 * The byte stream cannot be framed: a header's size is < 8, not a multiple of 4, or above the limit. libwayland
 * has no wl_display.error for this (it just drops the client); we report it against wl_display@1 as
 * `implementation` so a proxy can still tell the client why.
 */
export class MalformedMessageError extends WireProtocolError {
  readonly size: number;
  constructor(message: string, context: ErrorContext, size: number) {
    super("CW_WIRE_BAD_HEADER", message, context, {
      objectId: 1,
      code: DisplayErrorCode.IMPLEMENTATION,
      message,
    });
    this.name = "MalformedMessageError";
    this.size = size;
  }
}

/** A message could not be encoded: a local programming or state error, fatal to the connection. */
export class WireEncodeError extends CrosswayError {
  constructor(message: string, context: ErrorContext = {}) {
    super("CW_WIRE_ENCODE", message, context);
    this.name = "WireEncodeError";
  }
}
