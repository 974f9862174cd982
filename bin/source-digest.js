// Digest of the TypeScript sources under src/, stamped into dist/BUILT by `npm run build` and checked by the launcher.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Relative paths of the .ts files under `dir`, sorted (the digest must not depend on directory order). */
function sources(dir, prefix = "") {
  const out = [];
  for (const e of readdirSync(new URL(prefix, dir), { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...sources(dir, `${prefix}${e.name}/`));
    else if (e.name.endsWith(".ts")) out.push(`${prefix}${e.name}`);
  }
  return out.sort();
}

/**
 * sha256 over every source's path and bytes. Content, not modification times: npm stamps an installed package's
 * files with the time it unpacked them, in no useful order. About 10 ms for the ~1 MB of sources.
 */
export function sourceDigest(root) {
  const src = new URL("src/", root);
  const h = createHash("sha256");
  for (const f of sources(src)) {
    h.update(f);
    h.update("\0");
    h.update(readFileSync(new URL(f, src)));
    h.update("\0");
  }
  return h.digest("hex");
}

// `node bin/source-digest.js --stamp`: the last step of `npm run build`.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--stamp") {
  const root = new URL("../", import.meta.url);
  writeFileSync(new URL("dist/BUILT", root), `${sourceDigest(root)}\n`);
}
