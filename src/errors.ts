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
  // --- Wayland wire engine (src/wire/wayland) ---
  CW_WIRE_XML: { disposition: "process", summary: "a Wayland protocol XML file is malformed or incomplete" },
  CW_WIRE_BAD_HEADER: {
    disposition: "protocol",
    summary: "a Wayland message header has a bad size (< 8, not a multiple of 4, or above the limit)",
  },
  CW_WIRE_INVALID_OBJECT: {
    disposition: "protocol",
    summary: "a Wayland message targets an unknown object id",
  },
  CW_WIRE_INVALID_METHOD: {
    disposition: "protocol",
    summary: "a Wayland opcode does not exist on the object's interface or version",
  },
  CW_WIRE_INVALID_ARGUMENTS: {
    disposition: "protocol",
    summary: "a Wayland message's arguments do not match its signature (length, null, id, interface, fd)",
  },
  CW_WIRE_UNKNOWN_INTERFACE: {
    disposition: "protocol",
    summary: "a Wayland object's interface is not in the loaded protocol tables",
  },
  CW_WIRE_FD_OVERFLOW: {
    disposition: "protocol",
    summary: "a Wayland peer sent more fds than its messages consume (over the per-connection queue limit)",
  },
  CW_WIRE_ENCODE: {
    disposition: "connection",
    summary: "a Wayland message could not be encoded (value out of range, too large, missing fd)",
  },
  // foundation: fd helpers (src/fd/)
  CW_WAYLAND_SOCKET: {
    disposition: "process",
    summary: "cannot listen on a Wayland display socket (name locked, or no XDG_RUNTIME_DIR)",
  },
  CW_LISTEN_FDS: { disposition: "process", summary: "systemd LISTEN_FDS/LISTEN_PID are malformed" },
  // --- cross-domain transport (src/crossdomain/, crossway device) ---
  CW_CROSSDOMAIN_MALFORMED: {
    disposition: "connection",
    summary: "a cross-domain command or ring message is malformed (size, type or field out of range)",
  },
  CW_CROSSDOMAIN_LIMIT: {
    disposition: "connection",
    summary: "a cross-domain limit was exceeded (identifiers, read pipes per SEND, command size)",
  },
  CW_CROSSDOMAIN_INIT_FAILED: {
    disposition: "connection",
    summary: "the host did not accept the cross-domain INIT (channel not offered or host socket absent)",
  },
  CW_CROSSDOMAIN_QUERY_FAILED: {
    disposition: "connection",
    summary: "GET_IMAGE_REQUIREMENTS got no valid reply (unsupported format or dead context)",
  },
  CW_CROSSDOMAIN_CLOSED: { disposition: "connection", summary: "the cross-domain channel is closed" },
  CW_CROSSDOMAIN_HOST_ERROR: {
    disposition: "connection",
    summary: "the cross-domain host rejected a command or its worker stopped",
  },
  CW_CROSSDOMAIN_LAYOUT: {
    disposition: "connection",
    summary:
      "the host's SEND/RECEIVE identifier layout (4 or 28 slots) cannot be learned or disagrees with the guest",
  },
  CW_CROSSDOMAIN_HOST_TIMEOUT: {
    disposition: "connection",
    summary:
      "the cross-domain host stopped answering (query ring not written, a virtgpu ioctl or mmap not returning, or no reply to a round trip in time)",
  },
  CW_VIRTGPU_NO_DEVICE: { disposition: "process", summary: "no virtio_gpu DRM device was found" },
  CW_VIRTGPU_UNSUPPORTED: {
    disposition: "process",
    summary: "the virtio-gpu device lacks a feature cross-domain needs (3D, blobs, context init, capset 5)",
  },
  CW_VIRTGPU_IOCTL: { disposition: "connection", summary: "a virtgpu DRM ioctl failed" },
  CW_DEVICE_PROTOCOL: {
    disposition: "connection",
    summary: "the emulated device socket carried a malformed or unexpected message",
  },
  CW_DEVICE_UNAVAILABLE: { disposition: "process", summary: "the emulated device socket cannot be reached" },
  // --- guest Wayland proxy (src/proxy/wayland) ---
  CW_GUEST_CLIENT_PROTOCOL: {
    disposition: "protocol",
    summary: "a guest client broke the Wayland protocol (bad bind, bad shm pool or buffer, unmappable fd)",
  },
  CW_GUEST_CLIENT_IO: {
    disposition: "connection",
    summary: "a guest client's socket failed, or the client stopped reading or flooded fds",
  },
  CW_GUEST_FAST_PATH: {
    disposition: "connection",
    summary:
      "the guest's native fast path found a socket in a state it cannot explain (a bug; CROSSWAY_FAST_PATH=0 runs without it)",
  },
  CW_GUEST_HOST_PROTOCOL: {
    disposition: "connection",
    summary: "the host sent something a Wayland channel cannot carry (eventfd item, oversized keymap)",
  },
  // --- host-side Wayland filter (src/proxy/wayland-filter) ---
  CW_WLFILTER_REFUSED: {
    disposition: "protocol",
    summary: "a VM's Wayland client broke the filter's policy (hidden global, quota, rate) or the protocol",
  },
  CW_WLFILTER_IO: {
    disposition: "connection",
    summary: "a filtered connection failed: client or compositor socket error, or a client not reading",
  },
  // --- PipeWire filter (src/wire/pipewire, src/proxy/pipewire) ---
  CW_PW_FRAMING: { disposition: "protocol", summary: "a PipeWire message header or fd count is malformed" },
  CW_PW_POD: { disposition: "protocol", summary: "a SPA POD fails the strict validator (pipewire.md §2.4)" },
  CW_PW_SCHEMA: {
    disposition: "protocol",
    summary: "a PipeWire message's arguments do not match its schema",
  },
  CW_PW_UPSTREAM: { disposition: "connection", summary: "the upstream PipeWire daemon failed or misbehaved" },
  // --- control sockets and `crossway status` (src/control) ---
  CW_CONTROL: {
    disposition: "process",
    summary: "a control socket cannot be reached or gave no valid answer (crossway status)",
  },
  // --- guest PipeWire proxy (src/proxy/pipewire-guest) ---
  CW_PWG_SOCKET: {
    disposition: "process",
    summary: "cannot listen on the guest PipeWire socket (name locked, or no XDG_RUNTIME_DIR)",
  },
  CW_PWG_CLIENT_FD: {
    disposition: "protocol",
    summary: "a guest PipeWire client sent fds the guest cannot carry to the host (kind or message refused)",
  },
  CW_PWG_HOST_FD: {
    disposition: "connection",
    summary: "the host sent a PipeWire fd the guest cannot map (unexpected message, item kind or access)",
  },
  // --- Benchmarks (bench/): the suite's own failures; missing tools reuse CW_HARNESS_MISSING_PACKAGE ---
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

/**
 * Whether `err` is neither a crossway refusal (CrosswayError) nor a failing syscall (an errno code such as EPIPE):
 * a bug. Sessions still end on it (fail closed), but log it at error level with its stack, so a reader, a test or
 * a fuzzer can tell it from an expected ending.
 */
export function isUnplanned(err: unknown): boolean {
  if (err instanceof CrosswayError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  return !(typeof code === "string" && /^E[A-Z0-9]+$/.test(code));
}
