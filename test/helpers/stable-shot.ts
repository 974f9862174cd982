// Screenshots of a static client: wait until its background fills most of the output and two shots in a row agree.
import { readFileSync } from "node:fs";
import type { Compositor } from "./compositor.ts";
import { countColor, type Rgb, readPng } from "./png.ts";
import { sleep } from "./processes.ts";

/**
 * Takes screenshots into `file` every `intervalMs` until `background` covers more than half of the output and the
 * shot equals the previous one (the client has drawn and is static); throws after `attempts` shots.
 */
export async function stableShot(
  compositor: Compositor,
  file: string,
  background: Rgb,
  opts: { attempts?: number; intervalMs?: number } = {},
): Promise<Buffer> {
  let previous: Buffer | undefined;
  for (let i = 0; i < (opts.attempts ?? 50); i++) {
    await sleep(opts.intervalMs ?? 150);
    await compositor.screenshot(file);
    const img = readPng(file);
    const now = readFileSync(file);
    if (countColor(img, background).count > (img.width * img.height) / 2 && previous?.equals(now)) return now;
    previous = now;
  }
  throw new Error(`the client never reached a stable frame (${file})`);
}
