// src/fd/constants.ts against the outside truth: the values in the system's kernel uAPI headers (linux-libc-dev).
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as C from "../../../src/fd/constants.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

/** Header → the names it defines that constants.ts must match. */
const HEADERS: Record<string, string[]> = {
  "/usr/include/linux/memfd.h": ["MFD_ALLOW_SEALING"],
  "/usr/include/linux/fcntl.h": [
    "F_SEAL_SEAL",
    "F_SEAL_SHRINK",
    "F_SEAL_GROW",
    "F_SEAL_WRITE",
    "F_SEAL_FUTURE_WRITE",
  ],
  "/usr/include/asm-generic/mman-common.h": ["PROT_READ", "PROT_WRITE"],
  "/usr/include/linux/mman.h": ["MAP_SHARED", "MAP_PRIVATE"],
  "/usr/include/asm-generic/fcntl.h": ["O_ACCMODE", "O_RDONLY", "O_WRONLY", "O_RDWR", "O_NONBLOCK"],
  "/usr/include/linux/stat.h": ["S_IFMT", "S_IFSOCK", "S_IFREG", "S_IFBLK", "S_IFCHR", "S_IFIFO"],
};

/** `#define NAME value` with a C integer literal (hex, octal with a leading 0, decimal; U suffix allowed). */
function defined(text: string, name: string): number | undefined {
  const m = new RegExp(`^#define\\s+${name}\\s+(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)U?\\b`, "m").exec(text);
  if (m === null) return undefined;
  const lit = m[1]!;
  if (lit.startsWith("0x")) return Number.parseInt(lit, 16);
  if (lit.startsWith("0") && lit.length > 1) return Number.parseInt(lit, 8);
  return Number(lit);
}

describe("fd constants", () => {
  for (const [header, names] of Object.entries(HEADERS)) {
    it(`match ${header}`, () => {
      expect(existsSync(header), `${header} is missing: install the Debian package linux-libc-dev`).toBe(
        true,
      );
      const text = readFileSync(header, "utf8");
      for (const name of names) {
        expect({ name, value: (C as Record<string, number>)[name] }).toEqual({
          name,
          value: defined(text, name),
        });
      }
    });
  }
});
