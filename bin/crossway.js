#!/usr/bin/env node
// Launcher for the crossway CLI: the compiled build (dist/) when it matches the sources, else the sources via tsx.
import { readFileSync } from "node:fs";
import { sourceDigest } from "./source-digest.js";

const root = new URL("../", import.meta.url);

/**
 * `npm run build` (scripts/setup.sh, npm pack) compiles src/ to dist/ and writes the sources' digest to dist/BUILT
 * last. Starting from the build saves tsx's transform: a service start to its first answered client took 0.35 s
 * compiled against 0.75-0.8 s with tsx's cache warm and 1.2-1.3 s cold, as in a fresh VM (issue 15). When the
 * sources differ from what was built (a checkout being edited), they run through tsx, as they always did.
 */
function compiledIsCurrent() {
  let stamped;
  try {
    stamped = readFileSync(new URL("dist/BUILT", root), "utf8").trim();
  } catch {
    return false;
  }
  return stamped === sourceDigest(root);
}

let main;
if (process.env.CROSSWAY_FROM_SOURCE !== "1" && compiledIsCurrent()) {
  ({ main } = await import("../dist/cli.js"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../src/cli.ts"));
}
process.exitCode = await main(process.argv.slice(2));
