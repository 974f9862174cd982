// One filtered client connection: the state machine of pipewire.md §7.2, the allowlists of §7.4 in both
// directions, self-restriction of the upstream connection (§7.1), and violation handling (§7.8).
import { CrosswayError } from "../../errors.ts";
import { type Logger, logPayloads } from "../../log.ts";
import { native } from "../../native.ts";
import {
  type DecodedPayload,
  decodePayload,
  encodeHeader,
  encodeMessage,
  type Frame,
  SEQ_MASK,
} from "../../wire/pipewire/framing.ts";
import { PipeWireWireError } from "../../wire/pipewire/pod-error.ts";
import { DAEMON_POD_LIMITS, type PodLimits, STRICT_POD_LIMITS } from "../../wire/pipewire/pod-reader.ts";
import { isStruct, type Pod, type PodScalar, pod } from "../../wire/pipewire/pod-types.ts";
import {
  checkSignature,
  EVENTS,
  expectDict,
  expectIdArray,
  expectInt,
  expectString,
  Iface,
  METHODS,
  opcodes,
  shortIface,
} from "../../wire/pipewire/protocol.ts";
import type { AuditAction, AuditSink } from "./audit.ts";
import {
  checkClientNodePortUpdate,
  checkClientNodeUpdate,
  type UpdateContext,
} from "./client-node-update.ts";
import { Endpoint } from "./endpoint.ts";
import { fdKind, MemTracker } from "./mem-tracker.ts";
import { checkCameraControl } from "./param-schema.ts";
import {
  type FilteredProps,
  filterClientInfoProps,
  filterClientProps,
  filterCoreInfoProps,
  filterNodeProps,
  type NodePropContext,
  type Profile,
} from "./policy.ts";
import { type GlobalEntry, planRestriction } from "./self-restriction.ts";
import { Violation } from "./violation.ts";

// Opcodes by name from the protocol tables (Port's SubscribeParams and EnumParams share Node's numbers).
const CoreMethod = opcodes(METHODS, Iface.Core, [
  "Hello",
  "Sync",
  "Pong",
  "Error",
  "GetRegistry",
  "CreateObject",
  "Destroy",
]);
const CoreEvent = opcodes(EVENTS, Iface.Core, [
  "Info",
  "Done",
  "Ping",
  "Error",
  "RemoveId",
  "BoundId",
  "AddMem",
  "RemoveMem",
]);
const ClientMethod = opcodes(METHODS, Iface.Client, ["UpdateProperties", "UpdatePermissions"]);
const ClientEvent = opcodes(EVENTS, Iface.Client, ["Info"]);
const RegistryMethod = opcodes(METHODS, Iface.Registry, ["Bind"]);
const RegistryEvent = opcodes(EVENTS, Iface.Registry, ["Global"]);
const NodeMethod = opcodes(METHODS, Iface.Node, ["SubscribeParams", "EnumParams", "SetParam"]);
const ClientNodeMethod = opcodes(METHODS, Iface.ClientNode, [
  "GetNode",
  "Update",
  "PortUpdate",
  "SetActive",
  "Event",
]);
const ClientNodeEvent = opcodes(EVENTS, Iface.ClientNode, [
  "Transport",
  "SetIO",
  "PortUseBuffers",
  "PortSetIO",
  "SetActivation",
]);

const EACCES = 13;

/** Core.Sync seq values of the filter's own round trips; negative, so never equal to a client's RETURN_ASYNC seq. */
const SETUP_SYNC_ENUMERATE = -0x5a5a0001;
const SETUP_SYNC_RESTRICTED = -0x5a5a0002;
/** The id of the registry the filter itself uses during setup (the only id the daemon accepts next, map.h). */
const SETUP_REGISTRY_ID = 2;

const PAUSE_SETUP = 1;
const PAUSE_RATE = 2;
const PAUSE_BACKPRESSURE = 4;
const BACKLOG_HIGH = 1 << 20;

/** C→S messages are small (largest seen 6.9 KB, §1.2); S→C up to about 3 KB. Caps from §7.3. */
export const MAX_C2S_SIZE = 64 * 1024;
export const MAX_S2C_SIZE = 1024 * 1024;

/** The daemon's own messages may carry long property values and big param lists. */
const S2C_LIMITS: PodLimits = DAEMON_POD_LIMITS;

/** Rate and object limits per connection (§7.3 item 8). */
export interface FilterLimits {
  readonly msgsPerSecond: number;
  readonly burst: number;
  readonly maxClientNodes: number;
  readonly maxBound: number;
  readonly maxRegistries: number;
  readonly maxMemBytes: number;
}

export const DEFAULT_LIMITS: FilterLimits = {
  msgsPerSecond: 200,
  burst: 1000,
  maxClientNodes: 8,
  maxBound: 64,
  maxRegistries: 1,
  maxMemBytes: 256 * 1024 * 1024,
};

/** Static configuration shared by every connection of one filter instance. */
export interface FilterConfig {
  readonly upstreamPath: string;
  readonly profile: Profile;
  /** --target values: node names, ids or serials. Empty: the profile's default target classes. */
  readonly targets: readonly string[];
  /** Prefix for node names the client announces. */
  readonly tag: string;
  /** Allow Node.SetParam(Props) camera controls on camera targets (adds W on them). */
  readonly cameraControls: boolean;
  readonly limits: FilterLimits;
  readonly audit: AuditSink;
  readonly log: Logger;
  /** Observes every whole message before it is judged (traffic capture for fixtures; never payload logging). */
  readonly tap?: (dir: "C->S" | "S->C", frame: Frame) => void;
}

type State = "INIT" | "SETUP" | "HELLO" | "READY" | "CLOSING";

interface ObjectEntry {
  iface: string;
  version: number;
  origin: "implicit" | "create" | "bind" | "registry" | "setup" | "substitute";
  global?: number;
}

/**
 * Removes and returns a frame's fds: once handed to an endpoint they belong to it, so the frame must not keep
 * them (a later error path would otherwise close an fd number that may already name something else).
 */
function takeFds(f: Frame): number[] {
  return f.fds.splice(0, f.fds.length);
}

/** One client connection and its upstream connection. */
export class FilterSession {
  readonly name: string;
  private readonly cfg: FilterConfig;
  private readonly client: Endpoint;
  private upstream: Endpoint | null = null;
  private state: State = "INIT";
  private helloVersion = 3;
  private expectedSeq = 0;
  private upSeq = 0;
  private lastServerSeq = 0;
  private readonly objects = new Map<number, ObjectEntry>();
  private readonly globals = new Map<number, GlobalEntry>();
  private readonly allowed = new Set<number>();
  private readonly shownGlobals = new Set<number>();
  private readonly substituted = new Map<number, string>();
  private readonly pings = new Set<string>();
  private readonly monitorPorts = new Set<number>();
  /** The daemon's AddMem memory this client was lent (mem-tracker.ts). */
  private readonly mems: MemTracker;
  private ownClientGlobal = -1;
  private targetNames = new Set<string>();
  private readonly targetNodes = new Set<number>();
  private tokens: number;
  private lastRefill = Date.now();
  private rateTimer: NodeJS.Timeout | null = null;
  private readonly onClosed: (s: FilterSession) => void;

  constructor(name: string, clientFd: number, cfg: FilterConfig, onClosed: (s: FilterSession) => void) {
    this.name = name;
    this.cfg = cfg;
    this.onClosed = onClosed;
    this.tokens = cfg.limits.burst;
    this.client = new Endpoint(clientFd, MAX_C2S_SIZE, 0);
    this.mems = new MemTracker(cfg.limits.maxMemBytes);
    this.objects.set(0, { iface: Iface.Core, version: 3, origin: "implicit" });
    this.objects.set(1, { iface: Iface.Client, version: 3, origin: "implicit" });
  }

  /** Connects upstream and starts reading the client. Throws CW_PW_UPSTREAM when the daemon is unreachable. */
  start(): void {
    let fd: number;
    try {
      fd = native.unixConnect(this.cfg.upstreamPath);
    } catch (err) {
      this.client.close();
      throw new CrosswayError(
        "CW_PW_UPSTREAM",
        `cannot connect to PipeWire at ${this.cfg.upstreamPath}`,
        {},
        { cause: err },
      );
    }
    this.upstream = new Endpoint(fd, MAX_S2C_SIZE);
    this.upstream.start({
      onFrame: (f) => {
        this.cfg.tap?.("S->C", f);
        this.guard("S->C", f, () => this.onServerFrame(f));
      },
      onClose: (err) => this.shutdown(err === null ? "upstream closed" : `upstream error: ${String(err)}`),
      onDrain: () => this.client.resume(PAUSE_BACKPRESSURE),
    });
    this.client.start({
      onFrame: (f) => {
        this.cfg.tap?.("C->S", f);
        this.guard("C->S", f, () => this.onClientFrame(f));
      },
      onClose: (err) => {
        if (err instanceof PipeWireWireError) {
          // Framing errors (oversize, missing or unexpected fds) name the message when its header was read.
          const id = err.context.objectId ?? -1;
          this.auditFatal("C->S", id, err.context.opcode ?? -1, -1, err.reason, err.message);
        }
        this.shutdown(err === null ? "client closed" : `client error: ${String(err)}`);
      },
      onDrain: () => this.upstream?.resume(PAUSE_BACKPRESSURE),
    });
  }

  /** Closes both sockets (idempotent). */
  close(): void {
    this.shutdown("closed by filter");
  }

  private shutdown(why: string): void {
    if (this.state === "CLOSING") return;
    this.state = "CLOSING";
    if (this.rateTimer !== null) clearTimeout(this.rateTimer);
    this.cfg.log.debug({ conn: this.name, why }, "connection closed");
    this.client.close();
    this.upstream?.close();
    this.onClosed(this);
  }

  /** Runs a handler; a Violation or a wire error closes the connection (§7.8 "Disconnect"). */
  private guard(dir: "C->S" | "S->C", f: Frame, fn: () => void): void {
    if (this.state === "CLOSING") {
      for (const fd of f.fds) native.close(fd);
      return;
    }
    try {
      fn();
      // Whatever fds the handler did not hand on (takeFds) would leak: close them.
      for (const fd of takeFds(f)) native.close(fd);
    } catch (err) {
      for (const fd of takeFds(f)) native.close(fd);
      const reason =
        err instanceof Violation ? err.reason : err instanceof PipeWireWireError ? err.reason : "internal";
      let detail = err instanceof Error ? err.message : String(err);
      // §7.8 asks for a hexdump of the first 256 bytes; payload bytes are logged only on explicit request.
      if (logPayloads)
        detail += ` payload[0..256]=${Buffer.from(f.payload.subarray(0, 256)).toString("hex")}`;
      this.auditFatal(dir, f.id, f.opcode, f.seq, reason, detail);
      this.shutdown(`${dir} violation: ${reason}`);
    }
  }

  private names(id: number, opcode: number, dir: "C->S" | "S->C"): { iface: string; method: string } {
    const obj = this.objects.get(id);
    const iface = obj === undefined ? "unknown" : obj.iface;
    const table = dir === "C->S" ? METHODS[iface] : EVENTS[iface];
    return { iface: shortIface(iface), method: table?.[opcode]?.name ?? `op${opcode}` };
  }

  private audit(
    dir: "C->S" | "S->C",
    id: number,
    opcode: number,
    seq: number,
    reason: string,
    action: AuditAction,
    detail?: string,
  ): void {
    const n = this.names(id, opcode, dir);
    const rec = { conn: this.name, dir, iface: n.iface, method: n.method, id, seq, reason, action };
    this.cfg.audit(detail === undefined ? rec : { ...rec, detail });
  }

  private auditFatal(
    dir: "C->S" | "S->C",
    id: number,
    opcode: number,
    seq: number,
    reason: string,
    detail: string,
  ): void {
    this.audit(dir, id, opcode, seq, reason, "disconnected", detail);
  }

  // ---------------------------------------------------------------- sending

  private toServer(bytes: Uint8Array): void {
    const up = this.upstream;
    if (up === null) return;
    up.send(bytes, null);
    if (up.backlog > BACKLOG_HIGH) this.client.pause(PAUSE_BACKPRESSURE);
  }

  private toClient(bytes: Uint8Array, fds: number[] | null): void {
    this.client.send(bytes, fds);
    if (this.client.backlog > BACKLOG_HIGH) this.upstream?.pause(PAUSE_BACKPRESSURE);
  }

  /** The frame's bytes, copied out of the framer's buffer. */
  private raw(f: Frame): Uint8Array {
    const out = new Uint8Array(16 + f.size);
    out.set(encodeHeader(f.id, f.opcode, f.size, f.seq, f.nFds), 0);
    out.set(f.payload, 16);
    return out;
  }

  /** A message the filter itself sends upstream (setup only), with its own seq counter. */
  private inject(id: number, opcode: number, body: Pod): void {
    this.toServer(encodeMessage(id, opcode, this.upSeq, 0, body));
    this.upSeq = (this.upSeq + 1) & SEQ_MASK;
  }

  /** §7.8: a denied method without new_id gets Core.Error(id, seq, -EACCES) in the daemon's format. */
  private deny(f: Frame, reason: string, detail?: string): void {
    this.audit("C->S", f.id, f.opcode, f.seq, reason, "denied", detail);
    const body = pod.struct(
      pod.int(f.id),
      pod.int(f.seq),
      pod.int(-EACCES),
      pod.string(`denied by crossway pipewire-filter: ${reason}`),
    );
    this.toClient(encodeMessage(0, 3, this.lastServerSeq, 0, body), null);
  }

  /**
   * §7.8: a denied method carrying a new_id is replaced by CreateObject of a factory that cannot exist, so the
   * daemon itself consumes the id and answers Core.Error + Core.RemoveId (impl-core.c error paths), keeping
   * both id maps aligned. The daemon's ENOENT error is rewritten to EACCES on the way back.
   */
  private substitute(f: Frame, newId: number, reason: string, detail?: string): void {
    this.audit("C->S", f.id, f.opcode, f.seq, reason, "substituted", detail);
    this.objects.set(newId, { iface: "substitute", version: 0, origin: "substitute" });
    this.substituted.set(newId, reason);
    const body = pod.struct(pod.string(""), pod.string(""), pod.int(0), pod.dict([]), pod.int(newId));
    this.toServer(encodeMessage(0, 6, f.seq, 0, body));
  }

  // ---------------------------------------------------------------- client → server

  private takeToken(): void {
    const now = Date.now();
    const lim = this.cfg.limits;
    this.tokens = Math.min(lim.burst, this.tokens + ((now - this.lastRefill) * lim.msgsPerSecond) / 1000);
    this.lastRefill = now;
    this.tokens -= 1;
    if (this.tokens < 0 && this.rateTimer === null) {
      // Backpressure first (§7.8 "Rate-limit exceeded"): stop reading until the bucket has refilled.
      this.audit("C->S", -1, -1, -1, "rate-limit", "throttled");
      this.client.pause(PAUSE_RATE);
      this.rateTimer = setTimeout(
        () => {
          this.rateTimer = null;
          this.client.resume(PAUSE_RATE);
        },
        Math.ceil((-this.tokens * 1000) / lim.msgsPerSecond) + 1,
      );
    }
  }

  private onClientFrame(f: Frame): void {
    this.takeToken();
    if (f.nFds > 0) {
      // §7.7: consumer profiles take no fds on any message. Unreferenced fds would leak in the daemon (§1.3).
      throw new Violation("unexpected-fds", `${f.nFds} fds attached`);
    }
    if (f.seq !== this.expectedSeq) throw new Violation("seq", `seq ${f.seq}, expected ${this.expectedSeq}`);
    this.expectedSeq = (f.seq + 1) & SEQ_MASK;
    const msg = decodePayload(f.payload, 0, STRICT_POD_LIMITS);
    if (msg.footer !== undefined) this.checkClientFooter(msg.footer);
    if (f.id === 0 && f.opcode === CoreMethod.Hello) {
      if (this.state !== "INIT")
        throw new Violation("second-hello", "Hello after the handshake (v0 switch / client reset, §1.7)");
      checkSignature(msg.body.fields, "i", "Core.Hello", true);
      const v = expectInt(msg.body.fields[0], "Hello version");
      if (v !== 3 && v !== 4) throw new Violation("hello-version", `version ${v}`);
      this.helloVersion = v;
      this.beginSetup();
      return;
    }
    if (this.state === "INIT") throw new Violation("state", "first message is not Core.Hello");
    if (this.state === "HELLO") {
      const ok =
        (f.id === 1 && f.opcode === ClientMethod.UpdateProperties) ||
        (f.id === 0 && (f.opcode === CoreMethod.Sync || f.opcode === CoreMethod.Pong));
      if (!ok) throw new Violation("state", `id ${f.id} opcode ${f.opcode} before Client.UpdateProperties`);
    }
    const obj = this.objects.get(f.id);
    if (obj === undefined || obj.origin === "substitute" || obj.origin === "setup") {
      this.deny(f, "unknown-object", `no object ${f.id}`);
      return;
    }
    const spec = METHODS[obj.iface]?.[f.opcode];
    if (spec === undefined)
      throw new Violation("unknown-opcode", `${shortIface(obj.iface)} opcode ${f.opcode}`);
    if (spec.sig !== "*")
      checkSignature(msg.body.fields, spec.sig, `${shortIface(obj.iface)}.${spec.name}`, true);
    switch (obj.iface) {
      case Iface.Core:
        this.coreMethod(f, msg);
        return;
      case Iface.Client:
        if (f.id === 1 && f.opcode === ClientMethod.UpdateProperties) this.updateProperties(f, msg);
        else this.deny(f, "client-method-denied");
        return;
      case Iface.Registry:
        if (f.opcode === RegistryMethod.Bind) this.bind(f, msg);
        else this.deny(f, "registry-destroy-denied");
        return;
      case Iface.Node:
      case Iface.Port:
        this.nodeOrPortMethod(f, msg, obj);
        return;
      case Iface.ClientNode:
        this.clientNodeMethod(f, msg, obj);
        return;
      default:
        this.deny(f, "interface-denied");
    }
  }

  /** C→S footers: only opcode 0 "client generation" with Struct(Long) (§7.3 item 4). */
  private checkClientFooter(footer: Pod & { t: "struct" }): void {
    const fs = footer.fields;
    if (fs.length % 2 !== 0) throw new Violation("footer", "odd footer field count");
    for (let i = 0; i < fs.length; i += 2) {
      const op = fs[i];
      const args = fs[i + 1];
      if (op?.t !== "id" || op.v !== 0) throw new Violation("footer", "footer opcode is not Id 0");
      if (!isStruct(args) || args.fields.length !== 1 || args.fields[0]?.t !== "long") {
        throw new Violation("footer", "client generation footer is not Struct(Long)");
      }
    }
  }

  private checkNewId(newId: number): void {
    if (newId < 2 || newId > 0xfffff || this.objects.has(newId)) {
      throw new Violation("new-id", `new_id ${newId} is in use or out of range`);
    }
  }

  private coreMethod(f: Frame, msg: DecodedPayload): void {
    const a = msg.body.fields;
    switch (f.opcode) {
      case CoreMethod.Sync: {
        const id = expectInt(a[0], "Sync id");
        if (!this.objects.has(id)) {
          this.deny(f, "sync-unknown-object");
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      case CoreMethod.Pong: {
        const key = `${expectInt(a[0], "Pong id")}:${expectInt(a[1], "Pong seq")}`;
        if (!this.pings.delete(key)) {
          this.deny(f, "pong-without-ping");
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      case CoreMethod.Error: {
        const id = expectInt(a[0], "Error id");
        const res = expectInt(a[2], "Error res");
        const text = expectString(a[3], "Error message") ?? "";
        const own = this.objects.get(id);
        if (own === undefined || id < 2 || res >= 0 || res < -4095 || text.length > 256) {
          this.deny(f, "error-denied");
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      case CoreMethod.GetRegistry: {
        const version = expectInt(a[0], "GetRegistry version");
        const newId = expectInt(a[1], "GetRegistry new_id");
        this.checkNewId(newId);
        const regs = [...this.objects.values()].filter((o) => o.iface === Iface.Registry).length;
        if (regs >= this.cfg.limits.maxRegistries) {
          this.substitute(f, newId, "registry-limit");
          return;
        }
        if (version > 3) {
          this.substitute(f, newId, "registry-version");
          return;
        }
        this.objects.set(newId, { iface: Iface.Registry, version, origin: "registry" });
        this.toServer(this.raw(f));
        return;
      }
      case CoreMethod.CreateObject:
        this.createObject(f, msg);
        return;
      case CoreMethod.Destroy: {
        const id = expectInt(a[0], "Destroy id");
        const o = this.objects.get(id);
        if (id < 2 || o === undefined || o.origin === "implicit" || o.origin === "substitute") {
          this.deny(f, "destroy-denied", `object ${id}`);
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      default:
        throw new Violation("unknown-opcode", `Core opcode ${f.opcode}`);
    }
  }

  private nodeCtx(): NodePropContext {
    return { profile: this.cfg.profile, targets: this.targetNames, tag: this.cfg.tag };
  }

  private auditDropped(f: Frame, r: FilteredProps): void {
    for (const d of r.dropped)
      this.audit("C->S", f.id, f.opcode, f.seq, `prop-${d.reason}`, "stripped", d.key);
  }

  private createObject(f: Frame, msg: DecodedPayload): void {
    const a = msg.body.fields;
    const factory = expectString(a[0], "factory");
    const type = expectString(a[1], "type");
    const version = expectInt(a[2], "version");
    const props = expectDict(a[3], "props");
    const newId = expectInt(a[4], "new_id");
    this.checkNewId(newId);
    if (factory !== "client-node" || type !== Iface.ClientNode) {
      this.substitute(f, newId, "factory-denied", `factory '${factory}' type '${type}'`);
      return;
    }
    if (version < 3 || version > 6) {
      this.substitute(f, newId, "version-denied", `ClientNode v${version}`);
      return;
    }
    const nodes = [...this.objects.values()].filter((o) => o.iface === Iface.ClientNode).length;
    if (nodes >= this.cfg.limits.maxClientNodes) {
      this.substitute(f, newId, "client-node-limit");
      return;
    }
    const r = filterNodeProps(props, this.nodeCtx());
    if (r.refusal !== null) {
      this.substitute(f, newId, "node-props-denied", r.refusal);
      return;
    }
    this.auditDropped(f, r);
    this.objects.set(newId, { iface: Iface.ClientNode, version, origin: "create" });
    const body = pod.struct(
      a[0] as Pod,
      a[1] as Pod,
      a[2] as Pod,
      pod.dict(r.kept.map(([k, v]) => [k, v ?? ""])),
      a[4] as Pod,
    );
    this.toServer(encodeMessage(f.id, f.opcode, f.seq, 0, body, msg.footer));
  }

  private updateProperties(f: Frame, msg: DecodedPayload): void {
    const items = expectDict(msg.body.fields[0], "UpdateProperties");
    if (items.length > 128) {
      this.deny(f, "too-many-props");
      return;
    }
    const r = filterClientProps(items, this.cfg.tag);
    this.auditDropped(f, r);
    if (this.state === "HELLO") this.state = "READY";
    const body = pod.struct(pod.dict(r.kept.map(([k, v]) => [k, v ?? ""])));
    this.toServer(encodeMessage(f.id, f.opcode, f.seq, 0, body, msg.footer));
  }

  private bind(f: Frame, msg: DecodedPayload): void {
    const a = msg.body.fields;
    const gid = expectInt(a[0], "Bind global") >>> 0;
    const type = expectString(a[1], "Bind type");
    const version = expectInt(a[2], "Bind version");
    const newId = expectInt(a[3], "Bind new_id");
    this.checkNewId(newId);
    const g = this.globals.get(gid);
    if (!this.allowed.has(gid) || g === undefined) {
      this.substitute(f, newId, "bind-hidden-global", `global ${gid}`);
      return;
    }
    if (type !== g.type) {
      this.substitute(f, newId, "bind-type-mismatch", `${type} vs ${g.type}`);
      return;
    }
    const bindable =
      type === Iface.Node ||
      type === Iface.Port ||
      type === Iface.Factory ||
      (type === Iface.Client && gid === this.ownClientGlobal);
    if (!bindable) {
      this.substitute(f, newId, "bind-type-denied", type ?? "");
      return;
    }
    if (version > g.version) {
      this.substitute(f, newId, "bind-version", `v${version} > v${g.version}`);
      return;
    }
    const bound = [...this.objects.values()].filter((o) => o.origin === "bind").length;
    if (bound >= this.cfg.limits.maxBound) {
      this.substitute(f, newId, "bind-limit");
      return;
    }
    this.objects.set(newId, { iface: type, version, origin: "bind", global: gid });
    this.toServer(this.raw(f));
  }

  private nodeOrPortMethod(f: Frame, msg: DecodedPayload, obj: ObjectEntry): void {
    const a = msg.body.fields;
    const readable = new Set([1, 2, 3, 4, 15, 17]);
    switch (f.opcode) {
      case NodeMethod.SubscribeParams: {
        const ids = expectIdArray(a[0], "SubscribeParams ids");
        if (ids.length > 16 || ids.some((id) => !readable.has(id))) {
          this.deny(f, "subscribe-ids-denied", ids.join(","));
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      case NodeMethod.EnumParams: {
        const id = a[1]?.t === "id" ? a[1].v : -1;
        if (!readable.has(id)) {
          this.deny(f, "enum-param-id-denied", String(id));
          return;
        }
        // num is a result cap; libpipewire's "all" is -1 (pw-dump, trace-pwdump.log).
        const num = a[3]?.t === "int" ? a[3].v : 0;
        const index = a[2]?.t === "int" ? a[2].v : -1;
        if (index < 0 || !(num === -1 || (num >= 0 && num <= 1024))) {
          this.deny(f, "enum-range-denied", `index ${index} num ${num}`);
          return;
        }
        // A filter POD would reach the daemon's spa_pod_filter (§7.4): only None.
        if (a[4]?.t !== "none") {
          this.deny(f, "enum-filter-denied");
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      case NodeMethod.SetParam: {
        if (obj.iface !== Iface.Node || !this.cfg.cameraControls || this.cfg.profile.name !== "camera") {
          this.deny(f, "set-param-denied");
          return;
        }
        const id = a[0]?.t === "id" ? a[0].v : -1;
        const err = id === 2 ? checkCameraControl(a[2] as Pod, "SetParam") : "not Props";
        if (err !== null) {
          this.deny(f, "set-param-denied", err);
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      default:
        this.deny(f, "send-command-denied");
    }
  }

  private clientNodeMethod(f: Frame, msg: DecodedPayload, obj: ObjectEntry): void {
    if (obj.origin !== "create") {
      this.deny(f, "not-own-client-node");
      return;
    }
    const a = msg.body.fields;
    switch (f.opcode) {
      case ClientNodeMethod.GetNode: {
        checkSignature(a, "ii", "ClientNode.GetNode", true);
        const newId = expectInt(a[1], "GetNode new_id");
        this.checkNewId(newId);
        this.substitute(f, newId, "get-node-denied");
        return;
      }
      case ClientNodeMethod.Update: {
        this.clientNodeUpdate(f, msg);
        return;
      }
      case ClientNodeMethod.PortUpdate: {
        this.clientNodePortUpdate(f, msg);
        return;
      }
      case ClientNodeMethod.SetActive:
        this.toServer(this.raw(f));
        return;
      case ClientNodeMethod.Event: {
        const ev = a[0];
        // SPA_TYPE_EVENT_Node with Error, Buffering or RequestRefresh (§7.4).
        if (ev?.t !== "object" || ev.objectType !== 0x20002 || ev.objectId > 2) {
          this.deny(f, "event-denied");
          return;
        }
        this.toServer(this.raw(f));
        return;
      }
      default:
        this.deny(f, "port-buffers-denied");
    }
  }

  /** Validates a param list; returns the params to forward (unknown param ids stripped, §7.6). */
  /** What the ClientNode Update/PortUpdate validator needs of this connection (client-node-update.ts). */
  private updateCtx(f: Frame): UpdateContext {
    return {
      profile: this.cfg.profile,
      nodeProps: this.nodeCtx(),
      monitorPorts: this.monitorPorts,
      strip: (reason, detail) => this.audit("C->S", f.id, f.opcode, f.seq, reason, "stripped", detail),
    };
  }

  private clientNodeUpdate(f: Frame, msg: DecodedPayload): void {
    this.forwardUpdate(f, msg, checkClientNodeUpdate(msg.body.fields, this.updateCtx(f)));
  }

  private clientNodePortUpdate(f: Frame, msg: DecodedPayload): void {
    this.forwardUpdate(f, msg, checkClientNodePortUpdate(msg.body.fields, this.updateCtx(f)));
  }

  /** Forwards a checked update: unchanged as received, or its rewritten body. */
  private forwardUpdate(f: Frame, msg: DecodedPayload, body: Pod | null): void {
    if (body === null) this.toServer(this.raw(f));
    else this.toServer(encodeMessage(f.id, f.opcode, f.seq, 0, body, msg.footer));
  }

  // ---------------------------------------------------------------- setup (§7.1 self-restriction)

  /**
   * Hello, the filter's own registration, a registry walk and a round trip; then (in onSetupEnumerated)
   * UpdatePermissions and a second round trip. The client is not read meanwhile.
   */
  private beginSetup(): void {
    this.state = "SETUP";
    this.client.pause(PAUSE_SETUP);
    this.objects.set(SETUP_REGISTRY_ID, { iface: Iface.Registry, version: 3, origin: "setup" });
    this.inject(0, CoreMethod.Hello, pod.struct(pod.int(this.helloVersion)));
    this.inject(
      1,
      ClientMethod.UpdateProperties,
      pod.struct(
        pod.dict([
          ["application.name", "crossway-pipewire-filter"],
          ["crossway.profile", this.cfg.profile.name],
        ]),
      ),
    );
    this.inject(0, CoreMethod.GetRegistry, pod.struct(pod.int(3), pod.int(SETUP_REGISTRY_ID)));
    this.inject(0, CoreMethod.Sync, pod.struct(pod.int(0), pod.int(SETUP_SYNC_ENUMERATE)));
  }

  private onSetupEnumerated(): void {
    const plan = planRestriction(this.globals, {
      profile: this.cfg.profile,
      targets: this.cfg.targets,
      cameraControls: this.cfg.cameraControls,
      ownClientGlobal: this.ownClientGlobal,
    });
    for (const gid of plan.targetNodes) this.targetNodes.add(gid);
    for (const name of plan.targetNames) this.targetNames.add(name);
    for (const gid of plan.allowed) this.allowed.add(gid);
    const perms = plan.perms;
    this.cfg.log.info(
      { conn: this.name, targets: [...this.targetNodes], perms: perms.length },
      "restricting upstream",
    );
    // Destroy the setup registry first so permission changes produce no registry events for it.
    this.inject(0, CoreMethod.Destroy, pod.struct(pod.int(SETUP_REGISTRY_ID)));
    const flat: Pod[] = [pod.int(perms.length)];
    for (const [id, perm] of perms) flat.push(pod.int(id), pod.int(perm));
    this.inject(1, ClientMethod.UpdatePermissions, pod.struct(...flat));
    this.inject(0, CoreMethod.Sync, pod.struct(pod.int(0), pod.int(SETUP_SYNC_RESTRICTED)));
  }

  private onSetupRestricted(): void {
    this.state = "HELLO";
    // The client's own Hello was consumed by the setup (ours carried its version); its seq 0 is accounted for.
    this.client.resume(PAUSE_SETUP);
  }

  // ---------------------------------------------------------------- server → client

  private onServerFrame(f: Frame): void {
    this.lastServerSeq = f.seq;
    const msg = decodePayload(f.payload, f.nFds, S2C_LIMITS);
    const obj = this.objects.get(f.id);
    if (obj === undefined) {
      // Events for objects the client never had (or already saw removed): nothing to forward; guard closes fds.
      return;
    }
    const spec = EVENTS[obj.iface]?.[f.opcode];
    if (spec === undefined)
      throw new Violation("upstream-unknown-event", `${shortIface(obj.iface)} event ${f.opcode}`);
    if (spec.sig !== "*")
      checkSignature(msg.body.fields, spec.sig, `${shortIface(obj.iface)}.${spec.name}`, false);
    const [minFds, maxFds] = spec.fds ?? [0, 0];
    if (f.nFds < minFds || f.nFds > maxFds)
      throw new Violation("upstream-fds", `${spec.name} with ${f.nFds} fds`);
    const a = msg.body.fields;
    switch (obj.iface) {
      case Iface.Core: {
        this.coreEvent(f, msg);
        return;
      }
      case Iface.Client:
        // Any Client object, not only id 1: a client may bind the Client global of its own connection (the filter's
        // daemon connection), whose Info carries the filter's pipewire.sec.* credentials.
        if (f.opcode === ClientEvent.Info) {
          const props = filterClientInfoProps(expectDict(a[2], "Client.Info props"));
          this.forwardRewritten(
            f,
            msg,
            pod.struct(a[0] as Pod, a[1] as Pod, pod.dict(props.map(([k, v]) => [k, v ?? ""]))),
          );
          return;
        }
        {
          this.forward(f);
          return;
        }
      case Iface.Registry: {
        this.registryEvent(f, msg, obj);
        return;
      }
      case Iface.ClientNode: {
        this.clientNodeEvent(f, msg);
        return;
      }
      default: {
        this.forward(f);
        return;
      }
    }
  }

  private forward(f: Frame): void {
    const fds = takeFds(f);
    this.toClient(this.raw(f), fds.length > 0 ? fds : null);
  }

  private forwardRewritten(f: Frame, msg: DecodedPayload, body: Pod): void {
    const fds = takeFds(f);
    this.toClient(
      encodeMessage(f.id, f.opcode, f.seq, f.nFds, body, msg.footer),
      fds.length > 0 ? fds : null,
    );
  }

  private coreEvent(f: Frame, msg: DecodedPayload): void {
    const a = msg.body.fields;
    switch (f.opcode) {
      case CoreEvent.Info: {
        const props = filterCoreInfoProps(expectDict(a[7], "Core.Info props"));
        const body = pod.struct(
          a[0] as Pod,
          a[1] as Pod,
          pod.string("crossway"),
          pod.string("crossway"),
          a[4] as Pod,
          a[5] as Pod,
          a[6] as Pod,
          pod.dict(props.map(([k, v]) => [k, v ?? ""])),
        );
        this.forwardRewritten(f, msg, body);
        return;
      }
      case CoreEvent.Done: {
        const id = expectInt(a[0], "Done id");
        const seq = expectInt(a[1], "Done seq");
        if (id === 0 && seq === SETUP_SYNC_ENUMERATE && this.state === "SETUP") {
          this.onSetupEnumerated();
          return;
        }
        if (id === 0 && seq === SETUP_SYNC_RESTRICTED && this.state === "SETUP") {
          this.onSetupRestricted();
          return;
        }
        this.forward(f);
        return;
      }
      case CoreEvent.Ping:
        this.pings.add(`${expectInt(a[0], "Ping id")}:${expectInt(a[1], "Ping seq")}`);
        if (this.pings.size > 1024) throw new Violation("upstream-pings", "too many outstanding pings");
        {
          this.forward(f);
          return;
        }
      case CoreEvent.Error: {
        const id = expectInt(a[0], "Error id");
        if (this.state === "SETUP") {
          throw new CrosswayError(
            "CW_PW_UPSTREAM",
            `daemon error during setup: ${expectString(a[3], "message")}`,
          );
        }
        const reason = this.substituted.get(id);
        if (reason !== undefined) {
          const body = pod.struct(
            a[0] as Pod,
            a[1] as Pod,
            pod.int(-EACCES),
            pod.string(`denied by crossway pipewire-filter: ${reason}`),
          );
          this.forwardRewritten(f, msg, body);
          return;
        }
        this.forward(f);
        return;
      }
      case CoreEvent.RemoveId: {
        const id = expectInt(a[0], "RemoveId id");
        const o = this.objects.get(id);
        if (o?.origin === "setup") {
          this.objects.delete(id);
          return;
        }
        this.objects.delete(id);
        this.substituted.delete(id);
        this.forward(f);
        return;
      }
      case CoreEvent.BoundId: {
        const id = expectInt(a[0], "BoundId id");
        const gid = expectInt(a[1], "BoundId global") >>> 0;
        if (id === 1) this.ownClientGlobal = gid;
        const o = this.objects.get(id);
        if (o !== undefined && o.origin === "create") {
          o.global = gid;
          this.allowed.add(gid);
        }
        this.forward(f);
        return;
      }
      case CoreEvent.AddMem: {
        this.mems.add(msg.body.fields, f.fds[0] as number);
        this.forward(f);
        return;
      }
      case CoreEvent.RemoveMem: {
        this.mems.remove(expectInt(a[0], "RemoveMem id"));
        this.forward(f);
        return;
      }
      default: {
        this.forward(f);
        return;
      }
    }
  }

  private clientNodeEvent(f: Frame, msg: DecodedPayload): void {
    const a = msg.body.fields;
    const int = (i: number, what: string): number => expectInt(a[i], what);
    switch (f.opcode) {
      case ClientNodeEvent.Transport:
        for (const fd of f.fds)
          if (fdKind(fd) !== "eventfd") throw new Violation("upstream-fds", "Transport fd is not an eventfd");
        this.mems.checkRange(int(2, "mem"), int(3, "offset"), int(4, "size"), "Transport");
        break;
      case ClientNodeEvent.SetIO:
        this.mems.checkRange(int(1, "mem"), int(2, "offset"), int(3, "size"), "SetIO");
        break;
      case ClientNodeEvent.PortSetIO:
        this.mems.checkRange(int(4, "mem"), int(5, "offset"), int(6, "size"), "PortSetIO");
        break;
      case ClientNodeEvent.SetActivation:
        for (const fd of f.fds)
          if (fdKind(fd) !== "eventfd")
            throw new Violation("upstream-fds", "SetActivation fd is not an eventfd");
        this.mems.checkRange(int(2, "mem"), int(3, "offset"), int(4, "size"), "SetActivation");
        break;
      case ClientNodeEvent.PortUseBuffers:
        this.mems.checkUseBuffers(a);
        break;
      default:
        break;
    }
    this.forward(f);
  }

  private registryEvent(f: Frame, msg: DecodedPayload, obj: ObjectEntry): void {
    const a = msg.body.fields;
    if (f.opcode === RegistryEvent.Global) {
      const gid = expectInt(a[0], "Global id") >>> 0;
      const type = expectString(a[2], "Global type") ?? "";
      const version = expectInt(a[3], "Global version");
      const props = new Map(expectDict(a[4], "Global props"));
      this.globals.set(gid, { type, version, props });
      if (obj.origin === "setup") return;
      // Ports of nodes the client may see (its own node's ports included) become visible with them.
      if (type === Iface.Port && this.allowed.has(Number(props.get("node.id")))) this.allowed.add(gid);
      if (!this.allowed.has(gid)) return;
      this.shownGlobals.add(gid);
      const entries = expectDict(a[4], "Global props");
      const kept = filterClientInfoProps(entries);
      if (kept.length === entries.length) {
        this.forward(f);
        return;
      }
      // A Client global's props carry pipewire.sec.* of that connection (the filter's own, or another client's).
      this.forwardRewritten(
        f,
        msg,
        pod.struct(
          a[0] as Pod,
          a[1] as Pod,
          a[2] as Pod,
          a[3] as Pod,
          pod.dict(kept.map(([k, v]) => [k, v ?? ""])),
        ),
      );
      return;
    }
    const gid = expectInt(a[0], "GlobalRemove id") >>> 0;
    if (obj.origin === "setup") return;
    this.globals.delete(gid);
    if (!this.shownGlobals.delete(gid)) return;
    this.forward(f);
    return;
  }
}

/** Re-exported for tests that need to tell the filter's scalars apart. */
export type { PodScalar };
