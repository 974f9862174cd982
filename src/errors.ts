// The error catalogue: one base class with a stable string code for everything crossway throws.

/** Which party an error concerns, and therefore what happens after it (see docs/errors.md). */
export type Disposition =
  /** A peer broke its protocol: report it to that peer in the protocol's own terms, then disconnect it. */
  | "protocol"
  /** One connection cannot go on; other connections are unaffected. */
  | "connection"
  /** The process cannot go on (bad configuration, missing native addon). */
  | "process"
  /** Logged, and a fallback is used. */
  | "degradable";

/** Where in a protocol an error happened, for precise messages. */
export interface ErrorContext {
  readonly iface?: string;
  readonly objectId?: number;
  readonly opcode?: number;
  readonly message?: string;
  readonly arg?: string;
  readonly value?: unknown;
  readonly connection?: string;
}

/** Stable error codes. A test keeps this table, the classes and docs/errors.md in sync. */
export const ERROR_CODES = {
  CW_NATIVE_MISSING: { disposition: "process", summary: "the native addon is not built or cannot load" },
  CW_USAGE: { disposition: "process", summary: "bad command line: unknown option or missing argument" },
  CW_CONFIG: { disposition: "process", summary: "configuration file is invalid" },
  CW_HARNESS_MISSING_PACKAGE: {
    disposition: "process",
    summary: "a test peer's Debian package is not installed",
  },
  CW_HARNESS_START: { disposition: "process", summary: "a test peer did not start" },
  // Benchmarks (bench/): the suite's own failures; missing tools reuse CW_HARNESS_MISSING_PACKAGE.
  CW_BENCH_FAILED: {
    disposition: "process",
    summary: "a benchmark client, proxy or compositor failed during a run",
  },
} as const satisfies Record<string, { disposition: Disposition; summary: string }>;

/** A registered error code. Modules add their codes to ERROR_CODES. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Base of every error crossway throws: a stable code, a disposition and protocol context. */
export class CrosswayError extends Error {
  readonly code: ErrorCode;
  readonly disposition: Disposition;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CrosswayError";
    this.code = code;
    this.disposition = ERROR_CODES[code].disposition;
    this.context = context;
  }
}
