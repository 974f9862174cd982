// The error a strict POD or message decoder raises: a stable reason code plus the byte offset it refers to.
import { CrosswayError, type ErrorCode, type ErrorContext } from "../../errors.ts";

/**
 * A malformed PipeWire message or POD. `reason` is a short stable code (e.g. `nonzero-padding`) used by the
 * audit log and the tests; `offset` is relative to the start of the buffer that was being decoded.
 */
export class PipeWireWireError extends CrosswayError {
  readonly reason: string;
  readonly offset: number;

  constructor(
    code: Extract<ErrorCode, "CW_PW_POD" | "CW_PW_FRAMING" | "CW_PW_SCHEMA">,
    reason: string,
    offset: number,
    detail: string,
    context: ErrorContext = {},
  ) {
    super(code, `${reason} at offset ${offset}: ${detail}`, context);
    this.name = "PipeWireWireError";
    this.reason = reason;
    this.offset = offset;
  }
}

/** Shorthand for a POD-level failure (pipewire.md §2.4). */
export function podError(reason: string, offset: number, detail: string): PipeWireWireError {
  return new PipeWireWireError("CW_PW_POD", reason, offset, detail);
}
