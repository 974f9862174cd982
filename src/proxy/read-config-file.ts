// Reading a configuration or policy file as text, with an error that names the file (CW_CONFIG).
import { readFileSync } from "node:fs";
import { CrosswayError } from "../errors.ts";

/** The file's text; an unreadable file is CW_CONFIG "PATH: cannot read (why)". */
export function readConfigFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new CrosswayError(
      "CW_CONFIG",
      `${path}: cannot read (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}
