// Test audio: a generated s16 stereo tone as WAV, and checks of a recording (dominant frequency, gaps, peak).
import { readFileSync, writeFileSync } from "node:fs";

/** Sample rate of every generated and recorded file. */
export const RATE = 48000;

/** Writes `seconds` of a `freq` Hz stereo s16 WAV of amplitude `amp` (our own generator, no tool involved). */
export function writeTone(path: string, freq = 440, seconds = 1, amp = 12000): void {
  const n = Math.round(RATE * seconds);
  const data = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) {
    const v = Math.round(amp * Math.sin((2 * Math.PI * freq * i) / RATE));
    data.writeInt16LE(v, i * 4);
    data.writeInt16LE(v, i * 4 + 2);
  }
  const h = Buffer.alloc(44);
  h.write("RIFF", 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(2, 22);
  h.writeUInt32LE(RATE, 24);
  h.writeUInt32LE(RATE * 4, 28);
  h.writeUInt16LE(4, 32);
  h.writeUInt16LE(16, 34);
  h.write("data", 36);
  h.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([h, data]));
}

/**
 * pw-cat arguments recording `target`'s monitor (a sink's output) as a 48 kHz stereo s16 WAV at `path`;
 * `latency` (samples) sets the node.latency the recorder asks the graph for.
 */
export function monitorRecordArgs(target: string, path: string, latency?: number): string[] {
  return [
    ...(latency !== undefined ? ["--latency", String(latency)] : []),
    "--record",
    "-P",
    "{ stream.capture.sink=true }",
    "--target",
    target,
    "--rate",
    String(RATE),
    "--channels",
    "2",
    "--format",
    "s16",
    path,
  ];
}

/** The left channel of an s16 stereo WAV that may have been cut off (recorder killed): everything after "data". */
export function readLeft(path: string): Int16Array {
  const b = readFileSync(path);
  const at = b.indexOf("data");
  if (at < 0) return new Int16Array(0);
  const start = at + 8;
  const frames = Math.floor((b.length - start) / 4);
  const out = new Int16Array(frames);
  for (let i = 0; i < frames; i++) out[i] = b.readInt16LE(start + i * 4);
  return out;
}

/** What a recording holds around a tone. */
export interface ToneReport {
  /** Peak |sample|. */
  readonly peak: number;
  /** First and last sample above the sound threshold (-1 when none). */
  readonly first: number;
  readonly last: number;
  /** Longest run of near-silent samples between first and last. */
  readonly longestGap: number;
  /** Median over 100 ms windows of the tone region: share of the window's energy at `freq` (1 = pure tone). */
  readonly dominance: number;
}

/** Samples below this are silence (-46 dBFS); the tone's zero crossings stay under it for a sample or two. */
const SILENCE = 160;

/**
 * Measures a recording: where sound starts and ends, the longest silent run inside (a gap: a lost or late buffer
 * is written as silence by the null sink), and how much of the energy sits at `freq` (Goertzel per window of
 * 4800 samples, which holds a whole number of 440 Hz cycles).
 */
export function analyseTone(samples: Int16Array, freq = 440): ToneReport {
  let peak = 0;
  let first = -1;
  let last = -1;
  for (let i = 0; i < samples.length; i++) {
    const a = Math.abs(samples[i] as number);
    if (a > peak) peak = a;
    if (a > SILENCE * 8) {
      if (first < 0) first = i;
      last = i;
    }
  }
  let longestGap = 0;
  let run = 0;
  for (let i = Math.max(first, 0); i <= last; i++) {
    if (Math.abs(samples[i] as number) < SILENCE) {
      run++;
      if (run > longestGap) longestGap = run;
    } else run = 0;
  }
  const win = 4800;
  const shares: number[] = [];
  const w = (2 * Math.PI * freq) / RATE;
  const coeff = 2 * Math.cos(w);
  for (let s = Math.max(first, 0); s + win <= last; s += win) {
    let s1 = 0;
    let s2 = 0;
    let energy = 0;
    for (let i = 0; i < win; i++) {
      const x = samples[s + i] as number;
      energy += x * x;
      const s0 = x + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    shares.push(energy === 0 ? 0 : (2 * power) / (win * energy));
  }
  shares.sort((a, b) => a - b);
  const dominance = shares.length === 0 ? 0 : (shares[Math.floor(shares.length / 2)] as number);
  return { peak, first, last, longestGap, dominance };
}
