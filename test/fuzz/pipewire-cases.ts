// PipeWire client message sequences for the fuzzers: real captured traffic as seeds, and its mutations.
import type { ProfileName } from "../../src/proxy/pipewire/policy.ts";
import { loadCaptures } from "../helpers/pipewire-fixtures.ts";

/** A client message sequence (header + payload each), with the filter profile its capture stands for. */
export interface Case {
  profile: ProfileName;
  msgs: Uint8Array[];
}

const PROFILE_OF: Record<string, ProfileName> = {
  "camera.bin": "camera",
  "playback.bin": "audio-playback",
  "record.bin": "audio-capture",
  "pwdump.bin": "camera",
};

/** The captured clients' own messages (client → server), one case per capture. */
export function seedCases(): Case[] {
  return [...loadCaptures()].map(([name, msgs]) => ({
    profile: PROFILE_OF[name] ?? "camera",
    msgs: msgs.filter((m) => m.dir === "C->S").map((m) => m.bytes),
  }));
}

const INTERESTING = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 0x7f, 0xff, 0x7fffffff, 0xffffffff, 0x40003, 0x40002, 0x80001, 0x20001, 0x10005,
];

/** Mutations of a case that keep it reaching the handlers: payload words, message order, sequence numbers. */
export class PipeWireCaseGenerator {
  constructor(private readonly rand: (n: number) => number) {}

  /** Mutates the payload only (offset >= 16), mostly 4-aligned words: sizes, types, ids, keys and values. */
  mutateBytes(src: Uint8Array): Uint8Array {
    const { rand } = this;
    const b = new Uint8Array(src);
    const v = new DataView(b.buffer);
    const words = (b.length - 16) >> 2;
    if (words <= 0) return b;
    for (let k = 1 + rand(3); k > 0; k--) {
      const at = 16 + rand(words) * 4;
      switch (rand(4)) {
        case 0:
          v.setUint32(at, INTERESTING[rand(INTERESTING.length)] as number, true);
          break;
        case 1:
          v.setUint32(at, (v.getUint32(at, true) + [-8, -1, 1, 8][rand(4)]!) >>> 0, true);
          break;
        case 2:
          {
            const i = at + rand(4);
            b[i] = ((b[i] ?? 0) ^ (1 << rand(8))) & 0xff;
          }
          break;
        default:
          b[at + rand(4)] = 0;
      }
    }
    return b;
  }

  /** Drops, duplicates or mutates one message (never the Hello), then renumbers the sequence. */
  mutate(c: Case): Case {
    const { rand } = this;
    const msgs = c.msgs.slice();
    const pick = 1 + rand(Math.max(1, msgs.length - 1));
    switch (rand(6)) {
      case 0:
        if (msgs.length > 2) msgs.splice(pick, 1);
        break;
      case 1:
        msgs.splice(pick, 0, msgs[rand(msgs.length)] as Uint8Array);
        break;
      default:
        if (msgs[pick] !== undefined) msgs[pick] = this.mutateBytes(msgs[pick] as Uint8Array);
    }
    // Renumber seqs so the sequence check passes and the mutation reaches the handlers.
    const out = msgs.map((m, i) => {
      const copy = new Uint8Array(m);
      new DataView(copy.buffer).setUint32(8, i, true);
      return copy;
    });
    return { profile: c.profile, msgs: out };
  }
}
