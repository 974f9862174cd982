// Pure Wayland registry round trip for the doctor: the request bytes, and a parser that collects globals until done.
import { MessageFramer, NEED_MORE } from "../wire/wayland/framer.ts";
import { MessageWriter } from "../wire/wayland/message-writer.ts";
import { type Finding, finding } from "./finding.ts";

/** Object ids the probe uses: wl_display is 1 by definition; the registry and the callback are the next client ids. */
const DISPLAY = 1;
const REGISTRY = 2;
const CALLBACK = 3;

/** wl_display.sync (opcode 0) and get_registry (opcode 1), wayland.xml. */
const SYNC = 0;
const GET_REGISTRY = 1;

/** `wl_display.get_registry(2)` then `wl_display.sync(3)`: the callback's done proves every global was sent. */
export function registryProbeRequest(): Uint8Array {
  const w = new MessageWriter({ capacity: 64 });
  w.begin(DISPLAY, GET_REGISTRY).uint(REGISTRY).end();
  w.begin(DISPLAY, SYNC).uint(CALLBACK).end();
  return w.bytes().slice();
}

/** A global the compositor announced. */
export interface ProbeGlobal {
  readonly name: number;
  readonly iface: string;
  readonly version: number;
}

/** The outcome once the round trip ended: the globals, or the compositor's wl_display.error. */
export type ProbeOutcome =
  | { readonly kind: "done"; readonly globals: readonly ProbeGlobal[] }
  | { readonly kind: "error"; readonly message: string };

/** Feeds compositor bytes in; {@link RegistryProbe.outcome} is set once wl_callback.done or wl_display.error came. */
export class RegistryProbe {
  private readonly framer = new MessageFramer({ connection: "doctor probe" });
  private readonly globals: ProbeGlobal[] = [];
  outcome: ProbeOutcome | undefined;

  /** Adds bytes; returns the outcome when the round trip is complete. Throws on a malformed header. */
  push(bytes: Uint8Array): ProbeOutcome | undefined {
    this.framer.push(bytes);
    for (;;) {
      if (this.outcome !== undefined) return this.outcome;
      const m = this.framer.next();
      if (m === NEED_MORE) return undefined;
      const base = m.offset >>> 2;
      if (m.objectId === REGISTRY && m.opcode === 0) {
        // wl_registry.global(uint name, string interface, uint version)
        const name = m.words[base + 2] as number;
        const len = m.words[base + 3] as number;
        const start = m.offset + 16;
        const iface = new TextDecoder().decode(m.bytes.subarray(start, start + Math.max(0, len - 1)));
        const version = m.words[base + 4 + ((len + 3) >>> 2)] as number;
        this.globals.push({ name, iface, version });
      } else if (m.objectId === CALLBACK && m.opcode === 0) {
        this.outcome = { kind: "done", globals: this.globals };
      } else if (m.objectId === DISPLAY && m.opcode === 0) {
        // wl_display.error(object, uint code, string message)
        const code = m.words[base + 3] as number;
        const len = m.words[base + 4] as number;
        const start = m.offset + 20;
        const text = new TextDecoder().decode(m.bytes.subarray(start, start + Math.max(0, len - 1)));
        this.outcome = { kind: "error", message: `wl_display.error code ${code}: ${text}` };
      }
    }
  }
}

/** "38 globals (wl_compositor v6, xdg_wm_base v5, wl_seat v7, wl_shm v1)": the ones a desktop app needs first. */
export function summarizeGlobals(globals: readonly ProbeGlobal[]): string {
  const key = ["wl_compositor", "xdg_wm_base", "wl_seat", "wl_shm"];
  const parts = key.map((k) => {
    const g = globals.find((x) => x.iface === k);
    return g === undefined ? `no ${k}` : `${k} v${g.version}`;
  });
  return `${globals.length} globals (${parts.join(", ")})`;
}

/** The finding for a finished round trip with the compositor `who` (a socket path, "the host compositor"). */
export function registryFinding(check: string, who: string, r: ProbeOutcome, fix: string): Finding {
  if (r.kind === "error") return finding("fail", check, `${who}: ${r.message}`, "check the compositor's log");
  return r.globals.some((g) => g.iface === "wl_compositor")
    ? finding("ok", check, `${who} answers: ${summarizeGlobals(r.globals)}`)
    : finding("fail", check, `${who} offers no wl_compositor`, fix);
}
