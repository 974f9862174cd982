// Screenshots of a static client: wait until its background fills most of the output and two shots in a row agree.
import { readFileSync } from "node:fs";
import type { Compositor } from "./compositor.ts";
import { countColor, type Rgb, readPng } from "./png.ts";
import { waitFor } from "./processes.ts";

/**
 * Takes screenshots into `file` every `intervalMs` until `background` covers more than half of the output and the
 * shot equals the previous one (the client has drawn and is static); fails after `timeoutMs` (a named deadline,
 * generous because a loaded machine or a TCG guest may take long to draw the first frame).
 */
export async function stableShot(
  compositor: Compositor,
  file: string,
  background: Rgb,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<Buffer> {
  let previous: Buffer | undefined;
  return waitFor(
    `a stable frame of the client in ${file}`,
    async () => {
      await compositor.screenshot(file);
      const img = readPng(file);
      const now = readFileSync(file);
      const stable =
        countColor(img, background).count > (img.width * img.height) / 2 && previous?.equals(now);
      previous = now;
      return stable === true ? now : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: opts.intervalMs ?? 150 },
  );
}
