// `crossway status --json` against a running command's control socket, as a user would run it.
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import type { StatusReport } from "../../src/control/status-report.ts";
import { run } from "./processes.ts";

const BIN = fileURLToPath(new URL("../../bin/crossway.js", import.meta.url));

/** The report of the command behind `control`; the status command must exit 0. */
export async function controlStatus(control: string, timeoutMs = 30_000): Promise<StatusReport> {
  const r = await run(process.execPath, [BIN, "status", "--control", control, "--json"], { timeoutMs });
  expect(r.code, r.stderr.toString()).toBe(0);
  return JSON.parse(r.stdout.toString()) as StatusReport;
}
