// Pure PipeWire round trip for the doctor: Core.Hello then Core.Sync, done when Core.Done answers the sync.
import { encodeMessage, HEADER_SIZE } from "../wire/pipewire/framing.ts";
import { decodePod } from "../wire/pipewire/pod-reader.ts";
import { pod } from "../wire/pipewire/pod-types.ts";
import { type Finding, finding } from "./finding.ts";

/** The sync's seq: any value; the daemon echoes it in Core.Done. */
const PROBE_SEQ = 0x4352;

/** Core.Hello(version 3) (opcode 1) then Core.Sync(id 0, seq) (opcode 2), as pw_context_connect would start. */
export function pipewireProbeRequest(): Uint8Array {
  const hello = encodeMessage(0, 1, 0, 0, pod.struct(pod.int(3)));
  const sync = encodeMessage(0, 2, 1, 0, pod.struct(pod.int(0), pod.int(PROBE_SEQ)));
  const out = new Uint8Array(hello.length + sync.length);
  out.set(hello, 0);
  out.set(sync, hello.length);
  return out;
}

/** The outcome: the daemon answered the sync (with its version, from Core.Info, when it came first), or an error. */
export type PipeWireProbeOutcome =
  | { readonly kind: "done"; readonly version: string | null }
  | { readonly kind: "error"; readonly message: string };

/** Collects daemon bytes until Core.Done(0, PROBE_SEQ) or Core.Error. */
export class PipeWireProbe {
  private buf = new Uint8Array(0);
  private version: string | null = null;
  outcome: PipeWireProbeOutcome | undefined;

  /** Adds bytes; returns the outcome when complete. Throws CW_PW_POD on a malformed event body. */
  push(bytes: Uint8Array): PipeWireProbeOutcome | undefined {
    const next = new Uint8Array(this.buf.length + bytes.length);
    next.set(this.buf, 0);
    next.set(bytes, this.buf.length);
    this.buf = next;
    let at = 0;
    while (this.outcome === undefined && this.buf.length - at >= HEADER_SIZE) {
      const dv = new DataView(this.buf.buffer, this.buf.byteOffset + at);
      const id = dv.getUint32(0, true);
      const word = dv.getUint32(4, true);
      const opcode = word >>> 24;
      const size = word & 0xffffff;
      if (this.buf.length - at < HEADER_SIZE + size) break;
      const body = this.buf.subarray(at + HEADER_SIZE, at + HEADER_SIZE + size);
      if (id === 0) this.onCoreEvent(opcode, body);
      at += HEADER_SIZE + size;
    }
    this.buf = this.buf.slice(at);
    return this.outcome;
  }

  private onCoreEvent(opcode: number, body: Uint8Array): void {
    // Only the first POD is the body; a footer may follow it.
    const p = decodePod(body, 0, body.length);
    if (p.t !== "struct") return;
    const f = p.fields;
    const int = (i: number): number | undefined => {
      const x = f[i];
      return x !== undefined && x.t === "int" ? x.v : undefined;
    };
    const str = (i: number): string | null => {
      const x = f[i];
      return x !== undefined && x.t === "string" ? x.v : null;
    };
    if (opcode === 0)
      this.version = str(4); // Core.Info(id, cookie, user, host, version, name, ...)
    else if (opcode === 1 && int(0) === 0 && int(1) === PROBE_SEQ)
      this.outcome = { kind: "done", version: this.version };
    else if (opcode === 3)
      this.outcome = { kind: "error", message: `Core.Error: ${str(3) ?? "?"} (res ${int(2)})` };
  }
}

/** The finding for a finished round trip with the daemon `who` (a socket path, "the host's PipeWire"). */
export function pipewireFinding(check: string, who: string, r: PipeWireProbeOutcome): Finding {
  return r.kind === "done"
    ? finding("ok", check, `${who} answers (daemon ${r.version ?? "version unknown"})`)
    : finding(
        "fail",
        check,
        `${who}: ${r.message}`,
        "check the PipeWire daemon's (or pipewire-filter's) log",
      );
}
