// One Wayland connection's protocol state: framers, fd queues, object map, and validated message decoding.
import { ArgValues } from "./arg-values.ts";
import { argumentError, decodeArgs } from "./decoder.ts";
import { DisplayErrorCode, WireProtocolError } from "./errors.ts";
import { FdQueue } from "./fd-queue.ts";
import { MessageFramer, type MessageView, NEED_MORE, type NeedMore } from "./framer.ts";
import { ObjectMap, ObjectState, Side } from "./object-map.ts";
import {
  type PassThroughRun,
  type PassThroughSink,
  type PassThroughTable,
  passThroughLength,
} from "./pass-through.ts";
import {
  ArgKind,
  type InterfaceDesc,
  MAX_ARGS,
  type MessageDesc,
  type ProtocolRegistry,
  Special,
} from "./protocol-registry.ts";

/** Direction of a message: requests go client → server, events server → client. */
export const Direction = { REQUEST: 0, EVENT: 1 } as const;
/** One of {@link Direction}'s values. */
export type Direction = (typeof Direction)[keyof typeof Direction];

/** Why an event was not decoded (libwayland client.c queue_event discards these). */
export const Discard = {
  NONE: 0,
  /** To a destroyed object: its signature's fds were still taken from the queue. */
  ZOMBIE: 1,
  /** To an id never created (or already deleted): no fds taken. */
  UNKNOWN: 2,
  /**
   * To an object whose interface no loaded XML defines, with `unknownInterfaces: "skip"` (tracing only): not
   * decoded, no fds taken, so later fds may be misattributed. A proxy uses the default "error".
   */
  UNKNOWN_INTERFACE: 3,
} as const;
/** One of {@link Discard}'s values. */
export type Discard = (typeof Discard)[keyof typeof Discard];

/**
 * The last message {@link WireConnection.next} returned; one reused instance per direction, valid until the next
 * call for that direction. When `discard` is NONE, `iface`/`desc` are set, `args` holds the decoded arguments and
 * `argIfaces[i]` the interface of object argument i (null for nil, or for a zombie, which libwayland's client also
 * sees as NULL). The fds (`fdCount` of them, in `args` for a decoded message, in `fds` for a discarded one) now
 * belong to the caller: forward them or close them.
 */
export class DecodedMessage {
  direction: Direction;
  view!: MessageView;
  objectId = 0;
  opcode = 0;
  size = 0;
  iface: InterfaceDesc | null = null;
  desc: MessageDesc | null = null;
  discard: Discard = Discard.NONE;
  fdCount = 0;
  readonly args = new ArgValues();
  readonly argIfaces: (InterfaceDesc | null)[] = new Array<InterfaceDesc | null>(MAX_ARGS).fill(null);
  /** The fds of a discarded message (first `fdCount` entries). */
  readonly fds = new Int32Array(MAX_ARGS);
  constructor(direction: Direction) {
    this.direction = direction;
  }
}

/** Options of a {@link WireConnection}. */
export interface WireConnectionOptions {
  /** Largest message accepted in either direction (default 4096, at most 65532). */
  readonly maxMessageSize?: number;
  /** A name for errors and logs, e.g. "client 3". */
  readonly name?: string;
  /** Messages to objects of an interface not in the tables: "error" (default, fail closed) or "skip" (tracers). */
  readonly unknownInterfaces?: "error" | "skip";
  /**
   * Also reject events newer than their object's version (libwayland's client does not check this; a proxy that
   * caps versions should, so a client never sees an event it did not bind for). Default false.
   */
  readonly checkEventSince?: boolean;
  /** See {@link ObjectMap.clientIdsReusable}: judge client ids as the server does (host-side filters). */
  readonly clientIdsReusable?: boolean;
}

/**
 * The protocol state of one client ⇄ server connection as a proxy or tracer sees it. Feed received bytes with
 * `framer(dir).reserve/commit` (or `push`) and fds with `fdQueue(dir).push`, then call {@link WireConnection.next}
 * until NEED_MORE. Each message is checked in libwayland's order (wayland-server.c wl_client_connection_data for
 * requests, client.c queue_event for events): object → opcode → since ≤ version (requests) → arguments
 * (connection.c wl_connection_demarshal) → object arguments (wl_closure_lookup_objects). Then its effects on the
 * object map are applied (new ids, destructors, delete_id). Errors are WireProtocolError with the libwayland
 * wl_display.error they correspond to; after one, the connection must be closed.
 */
export class WireConnection {
  readonly registry: ProtocolRegistry;
  readonly objects: ObjectMap;
  readonly name: string | undefined;
  readonly #skipUnknown: boolean;
  readonly #checkEventSince: boolean;
  readonly #framers: readonly [MessageFramer, MessageFramer];
  readonly #fds: readonly [FdQueue, FdQueue];
  readonly #messages: readonly [DecodedMessage, DecodedMessage];
  readonly #run: PassThroughRun = { bytes: 0, messages: 0 };

  constructor(registry: ProtocolRegistry, options: WireConnectionOptions = {}) {
    this.registry = registry;
    this.objects = new ObjectMap(registry);
    this.objects.clientIdsReusable = options.clientIdsReusable === true;
    this.name = options.name;
    this.#skipUnknown = options.unknownInterfaces === "skip";
    this.#checkEventSince = options.checkEventSince === true;
    const fo = {
      ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}),
      ...(options.name !== undefined ? { connection: options.name } : {}),
    };
    this.#framers = [new MessageFramer(fo), new MessageFramer(fo)];
    this.#fds = [new FdQueue(), new FdQueue()];
    this.#messages = [new DecodedMessage(Direction.REQUEST), new DecodedMessage(Direction.EVENT)];
  }

  /** The byte framer of one direction. */
  framer(dir: Direction): MessageFramer {
    return this.#framers[dir];
  }

  /** The received-fd queue of one direction. */
  fdQueue(dir: Direction): FdQueue {
    return this.#fds[dir];
  }

  /** Removes every queued fd of both directions (the caller closes them on teardown). */
  drainFds(): number[] {
    return [...this.#fds[0].drain(), ...this.#fds[1].drain()];
  }

  /**
   * Copies the run of pass-through messages (see {@link PassThroughTable}) at the head of `dir`'s unframed bytes,
   * at most `maxMessages` of them, into `out`, and frames it: what a proxy calls before each
   * {@link WireConnection.next}. The messages are exactly those `next` would accept with no effect on the object
   * map, no fds and no hook; the first that is not stops the run. Returns the run's message count (0: the next
   * message needs decoding, or none is complete).
   */
  forwardPassThrough(
    dir: Direction,
    table: PassThroughTable,
    out: PassThroughSink,
    maxMessages = Number.POSITIVE_INFINITY,
  ): number {
    const f = this.#framers[dir];
    const start = f.unframedOffset;
    const run = passThroughLength(
      f.words,
      start,
      start + f.pending,
      dir,
      table,
      this.objects.passIfaces,
      this.objects.clientVersions,
      dir === Direction.REQUEST || this.#checkEventSince,
      f.maxMessageSize,
      maxMessages,
      this.#run,
    );
    if (run.messages === 0) return 0;
    out.appendRange(f.bytes, start, run.bytes);
    f.skip(run.bytes);
    return run.messages;
  }

  /** The next validated message in direction `dir`, or NEED_MORE. Throws WireProtocolError (see class doc). */
  next(dir: Direction): DecodedMessage | NeedMore {
    const view = this.#framers[dir].next();
    if (view === NEED_MORE) return NEED_MORE;
    const m = this.#messages[dir];
    m.view = view;
    m.objectId = view.objectId;
    m.opcode = view.opcode;
    m.size = view.size;
    m.fdCount = 0;
    m.discard = Discard.NONE;
    m.iface = null;
    m.desc = null;
    m.args.count = 0;
    const id = view.objectId;
    const fds = this.#fds[dir];
    let iface: InterfaceDesc | null;
    let desc: MessageDesc | undefined;
    if (dir === Direction.REQUEST) {
      iface = this.objects.live(id);
      if (iface === null)
        throw new WireProtocolError(
          "CW_WIRE_INVALID_OBJECT",
          `request to unknown object ${id} (opcode ${view.opcode})`,
          { objectId: id, opcode: view.opcode },
          { objectId: 1, code: DisplayErrorCode.INVALID_OBJECT, message: `invalid object ${id}` },
        );
      if (!iface.known && this.#skipUnknown) return this.#skipped(m, iface);
      this.#requireKnown(iface, id, view.opcode);
      desc = iface.requests[view.opcode];
      if (desc === undefined)
        throw new WireProtocolError(
          "CW_WIRE_INVALID_METHOD",
          `${iface.name}@${id} has no request with opcode ${view.opcode} (it has ${iface.requests.length})`,
          { iface: iface.name, objectId: id, opcode: view.opcode },
          {
            objectId: 1,
            code: DisplayErrorCode.INVALID_METHOD,
            message: `invalid method ${view.opcode}, object ${iface.name}@${id}`,
          },
        );
      const version = this.objects.version(id);
      if (version > 0 && version < desc.since)
        throw new WireProtocolError(
          "CW_WIRE_INVALID_METHOD",
          `${iface.name}@${id}.${desc.name} needs version ${desc.since}, object has version ${version}`,
          { iface: iface.name, objectId: id, opcode: view.opcode, message: desc.name, value: version },
          {
            objectId: 1,
            code: DisplayErrorCode.INVALID_METHOD,
            message: `invalid method ${view.opcode} (since ${version} < ${desc.since}), object ${iface.name}@${id}`,
          },
        );
    } else {
      const state = this.objects.state(id);
      if (state !== ObjectState.LIVE) {
        // client.c queue_event: events to unknown or zombie proxies are eaten, with the zombie's fd count.
        const n = state === ObjectState.ZOMBIE ? this.objects.zombieFdCount(id, view.opcode) : 0;
        if (n > fds.length)
          throw new WireProtocolError(
            "CW_WIRE_INVALID_ARGUMENTS",
            `event ${view.opcode} to destroyed object ${id} needs ${n} fds, ${fds.length} queued`,
            { objectId: id, opcode: view.opcode, value: n },
            {
              objectId: 1,
              code: DisplayErrorCode.IMPLEMENTATION,
              message: `file descriptor expected, object (${id})`,
            },
          );
        for (let k = 0; k < n; k++) m.fds[k] = fds.peek(k);
        fds.consume(n);
        m.fdCount = n;
        m.discard = state === ObjectState.ZOMBIE ? Discard.ZOMBIE : Discard.UNKNOWN;
        m.iface = this.objects.iface(id);
        return m;
      }
      iface = this.objects.live(id) as InterfaceDesc;
      if (!iface.known && this.#skipUnknown) return this.#skipped(m, iface);
      this.#requireKnown(iface, id, view.opcode);
      desc = iface.events[view.opcode];
      if (desc === undefined)
        throw new WireProtocolError(
          "CW_WIRE_INVALID_METHOD",
          `interface '${iface.name}' has no event ${view.opcode} (object ${id})`,
          { iface: iface.name, objectId: id, opcode: view.opcode },
          {
            objectId: 1,
            code: DisplayErrorCode.IMPLEMENTATION,
            message: `interface '${iface.name}' has no event ${view.opcode}`,
          },
        );
      if (this.#checkEventSince) {
        const version = this.objects.version(id);
        if (version > 0 && version < desc.since)
          throw new WireProtocolError(
            "CW_WIRE_INVALID_METHOD",
            `event ${iface.name}@${id}.${desc.name} needs version ${desc.since}, object has version ${version}`,
            { iface: iface.name, objectId: id, opcode: view.opcode, message: desc.name, value: version },
            {
              objectId: 1,
              code: DisplayErrorCode.IMPLEMENTATION,
              message: `event ${desc.name} (since ${desc.since}) sent to ${iface.name}@${id} of version ${version}`,
            },
          );
      }
    }
    m.iface = iface;
    m.desc = desc;
    const scalars = desc.scalarArgs;
    if (scalars >= 0 && view.size === 8 + 4 * scalars) {
      // Only int/uint/fixed arguments and the exact size: decodeArgs would find nothing wrong, and there are no
      // objects, fds or effects. Most of a burst (wl_surface.damage, wl_region.add, motion events) goes this way;
      // any other size takes the full decode below, which words the error.
      const args = m.args;
      const words = view.words;
      const p = (view.offset >>> 2) + 2;
      args.bytes = view.bytes;
      args.count = scalars;
      for (let i = 0; i < scalars; i++) args.word[i] = words[p + i] as number;
      return m;
    }
    const creator = dir === Direction.REQUEST ? Side.CLIENT : Side.SERVER;
    decodeArgs(view, desc, m.args, fds, this.objects, creator);
    if (desc.hasObjectArgs) this.#lookupObjects(m, desc, dir);
    fds.consume(desc.fdCount);
    m.fdCount = desc.fdCount;
    this.#apply(m, desc);
    return m;
  }

  #skipped(m: DecodedMessage, iface: InterfaceDesc): DecodedMessage {
    m.iface = iface;
    m.discard = Discard.UNKNOWN_INTERFACE;
    return m;
  }

  #requireKnown(iface: InterfaceDesc, id: number, opcode: number): void {
    if (!iface.known)
      throw new WireProtocolError(
        "CW_WIRE_UNKNOWN_INTERFACE",
        `${iface.name}@${id}: interface ${iface.name} is not in the loaded protocol tables (opcode ${opcode})`,
        { iface: iface.name, objectId: id, opcode },
        {
          objectId: 1,
          code: DisplayErrorCode.INVALID_METHOD,
          message: `invalid method ${opcode}, object ${iface.name}@${id}`,
        },
      );
  }

  /** wl_closure_lookup_objects: object args must exist and have the declared interface. */
  #lookupObjects(m: DecodedMessage, desc: MessageDesc, dir: Direction): void {
    const kinds = desc.kinds;
    for (let i = 0; i < kinds.length; i++) {
      if (kinds[i] !== ArgKind.OBJECT) continue;
      const oid = m.args.word[i] as number;
      m.argIfaces[i] = null;
      if (oid === 0) continue;
      const state = this.objects.state(oid);
      if (state === ObjectState.ZOMBIE && dir === Direction.EVENT) continue; // client.c: a zombie reads as NULL
      const found = state === ObjectState.LIVE ? this.objects.live(oid) : null;
      if (found === null) throw argumentError(m.view, desc, i, `unknown object (${oid})`, oid);
      const want = desc.argIfaces[i];
      if (want !== null && want !== undefined && found.name !== want)
        throw argumentError(m.view, desc, i, `invalid object (${oid}), type (${found.name})`, oid);
      m.argIfaces[i] = found;
    }
  }

  /** Object-map effects: new ids, destructors, delete_id. */
  #apply(m: DecodedMessage, desc: MessageDesc): void {
    const ni = desc.newIdIndex;
    if (ni >= 0) {
      const nid = m.args.word[ni] as number;
      if (nid !== 0) {
        let created: InterfaceDesc;
        let version: number;
        if (desc.untypedNewId) {
          // wl_registry.bind: interface name and version travel just before the id ("sun").
          created = this.registry.getOrPlaceholder(m.args.string(ni - 2) ?? "");
          version = m.args.word[ni - 1] as number;
        } else {
          created = this.registry.getOrPlaceholder(desc.argIfaces[ni] as string);
          // A typed new object inherits its factory's version (client.c wl_proxy_marshal_array_flags).
          version = this.objects.version(m.objectId);
        }
        this.objects.insert(nid, created, version);
      }
    }
    if (desc.destructor) this.objects.destroy(m.objectId);
    if (desc.special === Special.DELETE_ID) this.objects.deleteId(m.args.word[0] as number);
  }
}
