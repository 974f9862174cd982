// What `crossway doctor` reports: one finding per check, each with what to do about it, and the exit status.

/** How a check came out: "fail" means crossway would not work as configured; "warn" means it would, with less. */
export type FindingStatus = "ok" | "warn" | "fail";

/** One line of the doctor's report. */
export interface Finding {
  readonly status: FindingStatus;
  /** Short name of what was checked, e.g. "virtio-gpu node", "compositor socket". */
  readonly check: string;
  /** What was found, with the values that show it (paths, masks, counts). */
  readonly detail: string;
  /** What to do about a warn or fail: a kernel option, a VMM flag, a socket path, a command. */
  readonly fix?: string;
}

/** Builds a finding; `fix` is dropped when undefined so that JSON output stays minimal. */
export function finding(status: FindingStatus, check: string, detail: string, fix?: string): Finding {
  return fix === undefined ? { status, check, detail } : { status, check, detail, fix };
}

const LABEL: Record<FindingStatus, string> = { ok: "ok  ", warn: "WARN", fail: "FAIL" };

/** One line: `ok   check: detail` or `FAIL check: detail -> fix`. */
export function formatFinding(f: Finding): string {
  return `${LABEL[f.status]} ${f.check}: ${f.detail}${f.fix !== undefined ? ` -> ${f.fix}` : ""}`;
}

/** 0 when nothing failed (crossway would work, maybe with warnings), 1 otherwise. */
export function doctorExitCode(findings: readonly Finding[]): number {
  return findings.some((f) => f.status === "fail") ? 1 : 0;
}
