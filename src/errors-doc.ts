// Renders the error catalogue (src/errors.ts) as docs/errors.md, so the docs cannot drift from the code.
import { ERROR_CODES } from "./errors.ts";

const DISPOSITIONS: Record<string, string> = {
  protocol: "a peer broke its protocol: it is told in the protocol's own terms, then disconnected",
  connection: "one connection ends; every other connection goes on",
  process: "the command cannot go on (bad configuration, missing dependency); it exits non-zero",
  degradable: "logged, and a fallback is used",
};

/** The whole docs/errors.md text. */
export function renderErrorsDoc(): string {
  const lines = [
    "# Error codes",
    "",
    "Generated from `src/errors.ts` by `npm run gen:errors-doc`; a test fails when this file is out of date.",
    "Every error crossway throws is a `CrosswayError` with one of these stable codes, a disposition and a context",
    "(interface, object id, opcode, message, argument, value) so messages can say exactly what was wrong.",
    "",
    "| disposition | what happens |",
    "|---|---|",
    ...Object.entries(DISPOSITIONS).map(([d, what]) => `| ${d} | ${what} |`),
    "",
    "| code | disposition | meaning |",
    "|---|---|---|",
  ];
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    lines.push(`| \`${code}\` | ${info.disposition} | ${info.summary.replace(/\|/g, "\\|")} |`);
  }
  return `${lines.join("\n")}\n`;
}
