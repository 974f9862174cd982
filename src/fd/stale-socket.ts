// Removing a socket file a previous run left behind, and nothing else, before listening on its path.
import { lstatSync, unlinkSync } from "node:fs";
import { CrosswayError } from "../errors.ts";

/** Removes a stale socket at `path`; refuses (CW_CONFIG) to remove anything that is not a socket. */
export function removeStaleSocket(path: string, option = "--listen"): void {
  try {
    const st = lstatSync(path);
    if (!st.isSocket()) throw new CrosswayError("CW_CONFIG", `${option} ${path} exists and is not a socket`);
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
