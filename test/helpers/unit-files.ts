// The unit files contrib/systemd ships and the program path they call, for the tests that verify or run them.
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** This checkout's launcher: what the tests run instead of an installed crossway. */
export const CHECKOUT_BIN = join(ROOT, "bin/crossway.js");
/** contrib/systemd, with guest/ and host/ below it. */
export const UNITS_DIR = join(ROOT, "contrib/systemd");
/** Where the units expect crossway: docs/install.md installs with `npm install -g --prefix /usr/local`. */
export const INSTALLED_BIN = "/usr/local/bin/crossway";
