// Strict command-line parsing for crossway subcommands: declared options only, one-line errors, exit code 2.
import { CrosswayError } from "./errors.ts";

/** One option of a subcommand. `value` names its argument; without it the option is a flag. */
export interface OptionSpec {
  readonly name: string;
  readonly value?: string;
  readonly help: string;
  readonly required?: boolean;
  readonly repeatable?: boolean;
  /** The value may be left out (`--pipewire` alone): the option is then `true`, read with flag(). */
  readonly optionalValue?: boolean;
  /** Allowed values, checked at parse time. */
  readonly choices?: readonly string[];
}

/** A subcommand: its options and its entry point, which returns the process exit code. */
export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  /** Name of trailing positional arguments (e.g. "-- COMMAND ARGS"), if any are accepted. */
  readonly rest?: string;
  run(args: ParsedArgs): Promise<number>;
}

/** Parsed options: flags are booleans, valued options strings (or string arrays when repeatable). */
export interface ParsedArgs {
  readonly values: ReadonlyMap<string, string | boolean | string[]>;
  readonly rest: readonly string[];
  str(name: string): string | undefined;
  list(name: string): string[];
  flag(name: string): boolean;
}

/** Parses `argv` against `spec`; throws CW_USAGE with a one-line message on any mistake. */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const values = new Map<string, string | boolean | string[]>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === "--") {
      if (spec.rest === undefined) throw usage(spec, "does not take positional arguments");
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (!token.startsWith("--")) {
      if (spec.rest === undefined) throw usage(spec, `unexpected argument '${token}'`);
      rest.push(...argv.slice(i));
      break;
    }
    const eq = token.indexOf("=");
    const name = eq >= 0 ? token.slice(2, eq) : token.slice(2);
    const opt = spec.options.find((o) => o.name === name);
    if (opt === undefined) throw usage(spec, `unknown option '--${name}'`);
    if (opt.value === undefined) {
      if (eq >= 0) throw usage(spec, `option '--${name}' takes no value`);
      values.set(name, true);
      continue;
    }
    let value: string;
    if (eq >= 0) value = token.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if ((next === undefined || next.startsWith("--")) && opt.optionalValue === true) {
        if (values.has(name)) throw usage(spec, `option '--${name}' given twice`);
        values.set(name, true);
        continue;
      }
      if (next === undefined || next.startsWith("--"))
        throw usage(spec, `option '--${name}' needs ${opt.value}`);
      value = next;
      i++;
    }
    if (opt.choices !== undefined && !opt.choices.includes(value)) {
      throw usage(spec, `option '--${name}' must be one of ${opt.choices.join("|")}, not '${value}'`);
    }
    if (opt.repeatable === true) {
      const prev = values.get(name);
      values.set(name, Array.isArray(prev) ? [...prev, value] : [value]);
    } else {
      if (values.has(name)) throw usage(spec, `option '--${name}' given twice`);
      values.set(name, value);
    }
  }
  for (const opt of spec.options) {
    if (opt.required === true && !values.has(opt.name)) {
      throw usage(spec, `missing required option '--${opt.name} ${opt.value ?? ""}'`.trimEnd());
    }
  }
  return {
    values,
    rest,
    str: (n) => {
      const v = values.get(n);
      return typeof v === "string" ? v : undefined;
    },
    list: (n) => {
      const v = values.get(n);
      return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
    },
    flag: (n) => values.get(n) === true || (typeof values.get(n) === "string" && optional(spec, n)),
  };
}

function optional(spec: CommandSpec, name: string): boolean {
  return spec.options.some((o) => o.name === name && o.optionalValue === true);
}

function usage(spec: CommandSpec, what: string): CrosswayError {
  return new CrosswayError("CW_USAGE", `crossway ${spec.name}: ${what} (see 'crossway ${spec.name} --help')`);
}

/** The help text of one subcommand. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`crossway ${spec.name}: ${spec.summary}`, "", "Options:"];
  for (const o of spec.options) {
    const val = o.value === undefined ? "" : o.optionalValue === true ? ` [${o.value}]` : ` ${o.value}`;
    const left = `  --${o.name}${val}`;
    const extra = [o.required === true ? "required" : "", o.repeatable === true ? "repeatable" : ""]
      .filter(Boolean)
      .join(", ");
    lines.push(`${left.padEnd(34)} ${o.help}${extra ? ` (${extra})` : ""}`);
  }
  lines.push(`${"  --help".padEnd(34)} show this help`);
  return lines.join("\n");
}
