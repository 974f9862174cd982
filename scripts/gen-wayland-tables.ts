// Regenerates src/wire/wayland/protocols.generated.ts from the installed protocol XML.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateInstalledTables } from "./wayland-xml-sources.ts";

const target = fileURLToPath(new URL("../src/wire/wayland/protocols.generated.ts", import.meta.url));
const text = generateInstalledTables();
writeFileSync(target, text);
process.stdout.write(`wrote ${target} (${text.length} bytes)\n`);
