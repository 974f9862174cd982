// Filter profiles (camera, screencast, audio-playback, audio-capture) and their property rules (pipewire.md §7.5).
import type { DictEntries } from "../../wire/pipewire/protocol.ts";

/** The four profiles of `crossway pipewire-filter --profile`. */
export type ProfileName = "camera" | "screencast" | "audio-playback" | "audio-capture";

/** Everything the filter decides per profile. */
export interface Profile {
  readonly name: ProfileName;
  /** The only media.class a client-node may carry (§7.5). */
  readonly mediaClass: string;
  readonly mediaType: "Video" | "Audio";
  /** SPA direction of the client's ports: 0 input (consumers), 1 output (playback). */
  readonly portDirection: 0 | 1;
  readonly maxPorts: number;
  /** Allowed media.role values (empty: any role is dropped). */
  readonly roles: readonly string[];
  /** media.class values of target nodes when no --target is given. */
  readonly defaultTargetClasses: readonly string[];
  /** ClientNode info flags the profile allows (SPA_NODE_FLAG_*). */
  readonly nodeFlags: number;
}

/** SPA_NODE_FLAG_* (spa/node/node.h). */
const NODE_RT = 1;
const NODE_IN_PORT_CONFIG = 8;
const NODE_OUT_PORT_CONFIG = 16;
const NODE_NEED_CONFIGURE = 32;
const NODE_ASYNC = 64;

/** The profile table. Audio max ports is 128: pw-cat announces max_out = 65 (SPA_AUDIO_MAX_CHANNELS + 1). */
export const PROFILES: Readonly<Record<ProfileName, Profile>> = {
  camera: {
    name: "camera",
    mediaClass: "Stream/Input/Video",
    mediaType: "Video",
    portDirection: 0,
    maxPorts: 1,
    roles: ["Camera"],
    defaultTargetClasses: ["Video/Source"],
    nodeFlags: NODE_RT | NODE_ASYNC | NODE_NEED_CONFIGURE,
  },
  screencast: {
    name: "screencast",
    mediaClass: "Stream/Input/Video",
    mediaType: "Video",
    portDirection: 0,
    maxPorts: 1,
    roles: ["Screen"],
    defaultTargetClasses: [],
    nodeFlags: NODE_RT | NODE_ASYNC | NODE_NEED_CONFIGURE,
  },
  "audio-playback": {
    name: "audio-playback",
    mediaClass: "Stream/Output/Audio",
    mediaType: "Audio",
    portDirection: 1,
    maxPorts: 128,
    roles: ["Music", "Movie", "Game", "Notification", "Communication", "Production", "Accessibility", "Test"],
    defaultTargetClasses: ["Audio/Sink"],
    nodeFlags: NODE_RT | NODE_ASYNC | NODE_NEED_CONFIGURE | NODE_IN_PORT_CONFIG | NODE_OUT_PORT_CONFIG,
  },
  "audio-capture": {
    name: "audio-capture",
    mediaClass: "Stream/Input/Audio",
    mediaType: "Audio",
    portDirection: 0,
    maxPorts: 128,
    roles: ["Music", "Movie", "Game", "Communication", "Production", "Accessibility", "Test"],
    defaultTargetClasses: ["Audio/Source", "Audio/Source/Virtual"],
    nodeFlags: NODE_RT | NODE_ASYNC | NODE_NEED_CONFIGURE | NODE_IN_PORT_CONFIG | NODE_OUT_PORT_CONFIG,
  },
};

/** Why a property was removed, for the audit log. */
export interface DroppedProp {
  readonly key: string;
  readonly reason: string;
}

/** The outcome of filtering one property list. */
export interface FilteredProps {
  readonly kept: DictEntries;
  readonly dropped: DroppedProp[];
  /** Set when a property claims something the profile forbids: the whole message must be refused. */
  readonly refusal: string | null;
}

/** Client property keys kept verbatim (§7.5 "Keep"). */
const CLIENT_KEEP = new Set([
  "application.name",
  "application.id",
  "application.icon-name",
  "application.version",
  "application.language",
  "log.level",
  "mem.warn-mlock",
  "cpu.max-align",
  "clock.power-of-two-quantum",
  "link.max-buffers",
  "config.name",
]);
const CLIENT_KEEP_PREFIX = ["default.clock.", "default.video.", "settings.check-"];

/**
 * Keys a guest proxy (`crossway guest --pipewire`) sets about its client: who the guest says it is. Everything on
 * the filter's socket comes from one VM, so the values are kept only under the filter's tag ("guest.pw-cat"): a
 * host policy can read them as "this VM says", never as a host identity, and they grant nothing.
 */
export const GUEST_CLAIM_PREFIX = "crossway.guest.";

/** Filters Client.UpdateProperties (§7.5): default-deny, forced mem.allow-mlock=false, log.level clamped. */
export function filterClientProps(items: DictEntries, tag = "guest."): FilteredProps {
  const kept: DictEntries = [];
  const dropped: DroppedProp[] = [];
  for (const [k, v] of items) {
    if (k.startsWith("pipewire.") || k.startsWith("xdg-desktop-portal.")) {
      dropped.push({ key: k, reason: "grants-access" });
    } else if (k === "media.category" && v === "Manager") {
      // find-flatpak-access.lua makes Manager clients ALL-permission clients.
      dropped.push({ key: k, reason: "grants-access" });
    } else if (k === "mem.allow-mlock") {
      kept.push([k, "false"]);
    } else if (k.startsWith(GUEST_CLAIM_PREFIX) && k.length <= 64) {
      kept.push([k, tag + (v ?? "").slice(0, 128)]);
    } else if (k === "log.level") {
      kept.push([k, String(Math.min(Math.max(Number.parseInt(v ?? "0", 10) || 0, 0), 3))]);
    } else if (CLIENT_KEEP.has(k) || CLIENT_KEEP_PREFIX.some((p) => k.startsWith(p))) {
      kept.push([k, v]);
    } else {
      dropped.push({ key: k, reason: "not-allowlisted" });
    }
  }
  return { kept, dropped, refusal: null };
}

/** Node keys that are stripped silently (scheduling and factory controls, impl-node.c check_properties). */
const NODE_DROP_PREFIX = [
  "adapt.",
  "audioconvert.",
  "filter.graph",
  "resample.",
  "channelmix.",
  "library.",
  "factory.",
  "api.",
  "device.",
  "object.",
  "client.",
  "pipewire.",
  "xdg-desktop-portal.",
];

const NODE_PASS = new Set([
  "stream.is-live",
  "node.autoconnect",
  "node.want-driver",
  "node.dont-reconnect",
  "port.group",
  "media.format",
  "media.filename",
  "application.name",
]);

const TRUE_VALUES = new Set(["true", "1"]);

/** Parses "num/denom" (node.latency, node.rate). */
function fraction(v: string | null): [number, number] | null {
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(v ?? "");
  if (m === null) return null;
  return [Number(m[1]), Number(m[2])];
}

/** Context for node property filtering: the profile, the allowed target names/ids, the guest tag. */
export interface NodePropContext {
  readonly profile: Profile;
  /** Names, ids and serials of the allowed targets, as strings. */
  readonly targets: ReadonlySet<string>;
  /** Prefix for names shown to other clients, e.g. "vm:" (§7.5). */
  readonly tag: string;
}

/**
 * Filters client-node properties (CreateObject and ClientNode.Update info, §7.5). A wrong media.class or a
 * lingering node is a refusal (the message is denied); other keys are kept, rewritten or stripped.
 */
export function filterNodeProps(items: DictEntries, ctx: NodePropContext): FilteredProps {
  const kept: DictEntries = [];
  const dropped: DroppedProp[] = [];
  let refusal: string | null = null;
  const p = ctx.profile;
  for (const [k, v] of items) {
    if (k === "media.class") {
      if (v !== p.mediaClass) refusal = `media.class '${v}' is not ${p.mediaClass}`;
      else kept.push([k, v]);
    } else if (k === "object.linger") {
      if (TRUE_VALUES.has(v ?? "")) refusal = "object.linger would outlive the client";
      else dropped.push({ key: k, reason: "denied-key" });
    } else if (k === "media.type") {
      if (v === p.mediaType) kept.push([k, v]);
      else dropped.push({ key: k, reason: "wrong-media-type" });
    } else if (k === "media.category") {
      const ok = p.portDirection === 1 ? v === "Playback" : v === "Capture";
      if (ok) kept.push([k, v]);
      else dropped.push({ key: k, reason: "wrong-category" });
    } else if (k === "media.role") {
      if (v !== null && p.roles.includes(v)) kept.push([k, v]);
      else dropped.push({ key: k, reason: "wrong-role" });
    } else if (k === "target.object" || k === "node.target") {
      if (v !== null && ctx.targets.has(v)) kept.push([k, v]);
      else dropped.push({ key: k, reason: "target-not-allowed" });
    } else if (k === "node.name" || k === "node.description" || k === "media.name" || k === "node.nick") {
      const s = (v ?? "").slice(0, 128);
      kept.push([k, s.startsWith(ctx.tag) ? s : ctx.tag + s]);
    } else if (k === "node.latency") {
      const f = fraction(v);
      // Clamp to at least 256/48000 so a guest cannot force tiny quanta on the shared graph.
      if (f !== null && f[1] > 0 && f[0] * 48000 >= 256 * f[1] && f[1] <= 384000) kept.push([k, v]);
      else dropped.push({ key: k, reason: "latency-out-of-range" });
    } else if (k === "node.rate") {
      const f = fraction(v);
      if (
        f !== null &&
        f[0] === 1 &&
        [8000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000].includes(f[1])
      )
        kept.push([k, v]);
      else dropped.push({ key: k, reason: "rate-not-allowed" });
    } else if (k === "stream.monitor") {
      if (v === "false") kept.push([k, v]);
      else dropped.push({ key: k, reason: "denied-key" });
    } else if (k === "stream.capture.sink") {
      // Recording a sink's monitor is capture, so only the capture profile may ask for it.
      if (p.name === "audio-capture") kept.push([k, v]);
      else dropped.push({ key: k, reason: "denied-key" });
    } else if (k === "format.dsp") {
      if (v === "32 bit float mono audio" || v === "8 bit raw midi") kept.push([k, v]);
      else dropped.push({ key: k, reason: "denied-value" });
    } else if (NODE_PASS.has(k)) {
      kept.push([k, (v ?? "").slice(0, 256)]);
    } else {
      const prefixed = NODE_DROP_PREFIX.some((pre) => k.startsWith(pre));
      dropped.push({ key: k, reason: prefixed ? "denied-key" : "not-allowlisted" });
    }
  }
  return { kept, dropped, refusal };
}

/** Port property keys a client-node port may carry. */
const PORT_KEEP = new Set([
  "port.id",
  "port.name",
  "port.direction",
  "port.alias",
  "port.group",
  "port.monitor",
  "audio.channel",
]);

/** Filters ClientNode.PortUpdate info props: names are tagged, format.dsp must be a known string. */
export function filterPortProps(items: DictEntries, ctx: NodePropContext): FilteredProps {
  const kept: DictEntries = [];
  const dropped: DroppedProp[] = [];
  for (const [k, v] of items) {
    if (k === "format.dsp") {
      if (v === "32 bit float mono audio") kept.push([k, v]);
      else dropped.push({ key: k, reason: "denied-value" });
    } else if (PORT_KEEP.has(k)) {
      kept.push([k, (v ?? "").slice(0, 128)]);
    } else {
      dropped.push({ key: k, reason: k.startsWith("object.") ? "denied-key" : "not-allowlisted" });
    }
  }
  void ctx;
  return { kept, dropped, refusal: null };
}

/** Core.Info props passed to the client (§7.4 S→C). */
export function filterCoreInfoProps(items: DictEntries): DictEntries {
  return items.filter(
    ([k]) =>
      k.startsWith("default.clock.") ||
      k.startsWith("default.video.") ||
      k.startsWith("mem.") ||
      k === "core.name" ||
      k === "object.id" ||
      k === "object.serial" ||
      k === "cpu.max-align" ||
      k === "link.max-buffers",
  );
}

/** Client.Info and Registry.Global props passed to the client: no pipewire.sec.* or pipewire.access* key of any connection (§7.4 S→C). */
export function filterClientInfoProps(items: DictEntries): DictEntries {
  return items.filter(([k]) => !k.startsWith("pipewire.sec.") && !k.startsWith("pipewire.access"));
}
