// The crossway command line: dispatches to subcommands, prints help, maps usage errors to exit code 2.
import { readFileSync } from "node:fs";
import { type CommandSpec, commandHelp, parseArgs } from "./cli-options.ts";
import { commands } from "./commands/index.ts";
import { CrosswayError } from "./errors.ts";

function topHelp(list: readonly CommandSpec[]): string {
  const lines = [
    "crossway: run sandboxed desktop apps in microVMs, with Wayland and PipeWire across virtio-gpu cross-domain",
    "",
    "Usage: crossway <command> [options]",
    "       crossway --version",
    "",
    "Commands:",
  ];
  for (const c of list) lines.push(`  ${c.name.padEnd(18)} ${c.summary}`);
  lines.push("", "Each command's options:");
  for (const c of list) {
    lines.push("", commandHelp(c));
  }
  lines.push("", "Logs: JSON lines on stderr; CROSSWAY_LOG=debug|info|warn (default warn).");
  return lines.join("\n");
}

/** The version in package.json (read at run time: the installed package's own). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${topHelp(commands)}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const spec = commands.find((c) => c.name === name);
  if (spec === undefined) {
    process.stderr.write(`crossway: unknown command '${name}' (see 'crossway --help')\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${commandHelp(spec)}\n`);
    return 0;
  }
  try {
    const args = parseArgs(spec, rest);
    return await spec.run(args);
  } catch (err) {
    if (err instanceof CrosswayError) {
      process.stderr.write(`${err.message}\n`);
      return err.code === "CW_USAGE" ? 2 : 1;
    }
    throw err;
  }
}
