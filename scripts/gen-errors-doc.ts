// Writes docs/errors.md from the error catalogue in src/errors.ts (a test checks the file is up to date).
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderErrorsDoc } from "../src/errors-doc.ts";

const out = fileURLToPath(new URL("../docs/errors.md", import.meta.url));
writeFileSync(out, renderErrorsDoc());
process.stdout.write(`wrote ${out}\n`);
