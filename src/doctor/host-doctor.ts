// `crossway doctor --host`: the host's compositor and PipeWire sockets answer, and the filters' policy files load.
import { existsSync, readdirSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { loadPipeWirePolicy } from "../proxy/pipewire/policy-file.ts";
import { loadFilterPolicy } from "../proxy/wayland-filter/filter-policy.ts";
import { type Finding, finding } from "./finding.ts";
import { PipeWireProbe, pipewireFinding, pipewireProbeRequest } from "./pipewire-probe.ts";
import { type RoundTripResult, socketRoundTrip } from "./socket-round-trip.ts";
import { RegistryProbe, registryFinding, registryProbeRequest } from "./wayland-probe.ts";

/** Options of {@link hostDoctor}; unset paths come from the environment as the VMM would resolve them. */
export interface HostDoctorOptions {
  readonly env: NodeJS.ProcessEnv;
  /** The compositor's socket; default $WAYLAND_DISPLAY (relative to $XDG_RUNTIME_DIR) or wayland-0. */
  readonly wayland?: string;
  /** PipeWire's socket; default $PIPEWIRE_REMOTE or pipewire-0 in $XDG_RUNTIME_DIR. Given: its absence fails. */
  readonly pipewire?: string;
  /** Per-VM policy directory: <dir>/<vm>/{wayland.json,pipewire.json} (the units' layout); absent is fine. */
  readonly policyDir: string;
  readonly timeoutMs: number;
}

function resolveIn(runtimeDir: string | undefined, name: string): string {
  return isAbsolute(name) || runtimeDir === undefined ? name : join(runtimeDir, name);
}

function roundTripProblem(r: RoundTripResult<unknown>, path: string, what: string): string {
  switch (r.kind) {
    case "connect-failed":
      return r.code === "ENOENT"
        ? `no socket at ${path}`
        : r.code === "ECONNREFUSED"
          ? `${path} refuses connections (a stale socket: ${what} is not running)`
          : `cannot connect to ${path}: ${r.message}`;
    case "timeout":
      return `${path} accepted but did not answer within ${r.ms} ms`;
    case "closed":
      return `${path}: ${r.message}`;
    default:
      return "";
  }
}

/** Runs every host check; never throws for what it finds (that is a finding). */
export async function hostDoctor(o: HostDoctorOptions): Promise<Finding[]> {
  const out: Finding[] = [];
  const rt = o.env.XDG_RUNTIME_DIR;
  if (rt === undefined || rt === "") {
    out.push(
      finding(
        "fail",
        "XDG_RUNTIME_DIR",
        "not set",
        "run in a login session (systemd-logind sets /run/user/UID) or export XDG_RUNTIME_DIR",
      ),
    );
  } else if (!existsSync(rt)) {
    out.push(finding("fail", "XDG_RUNTIME_DIR", `${rt} does not exist`, "log in again, or create it 0700"));
  } else {
    const mode = statSync(rt).mode & 0o777;
    out.push(
      mode === 0o700
        ? finding("ok", "XDG_RUNTIME_DIR", rt)
        : finding("warn", "XDG_RUNTIME_DIR", `${rt} has mode ${mode.toString(8)}`, `chmod 700 ${rt}`),
    );
  }

  const wlName = o.wayland ?? o.env.WAYLAND_DISPLAY ?? "wayland-0";
  const wlPath = resolveIn(rt, wlName);
  const wl = await socketRoundTrip(
    wlPath,
    registryProbeRequest(),
    pushInto(new RegistryProbe()),
    o.timeoutMs,
  );
  if (wl.kind === "answer") {
    out.push(registryFinding("compositor", wlPath, wl.value, "point --wayland at a compositor"));
  } else {
    out.push(
      finding(
        "fail",
        "compositor",
        roundTripProblem(wl, wlPath, "the compositor"),
        "start the compositor, or give its socket with --wayland PATH (the VMM's wayland socket option must name the same path)",
      ),
    );
  }

  const pwExplicit = o.pipewire !== undefined;
  const pwName = o.pipewire ?? o.env.PIPEWIRE_REMOTE ?? "pipewire-0";
  const pwPath = resolveIn(o.env.PIPEWIRE_RUNTIME_DIR ?? rt, pwName);
  const pw = await socketRoundTrip(
    pwPath,
    pipewireProbeRequest(),
    pushInto(new PipeWireProbe()),
    o.timeoutMs,
  );
  if (pw.kind === "answer") {
    out.push(pipewireFinding("PipeWire", pwPath, pw.value));
  } else {
    out.push(
      finding(
        pwExplicit ? "fail" : "warn",
        "PipeWire",
        `${roundTripProblem(pw, pwPath, "PipeWire")}${pwExplicit ? "" : ": guests get no audio or camera"}`,
        "start PipeWire (systemctl --user start pipewire.socket) or give its socket with --pipewire PATH",
      ),
    );
  }

  out.push(...(await policyFindings(o.policyDir, rt, o.timeoutMs)));
  return out;
}

function pushInto<T>(probe: { push(b: Uint8Array): T | undefined }): (b: Uint8Array) => T | undefined {
  return (b) => probe.push(b);
}

/** A per-VM filter: its policy file, the loader that checks it, and the socket its unit serves (%t/crossway/VM/). */
interface FilterKind {
  readonly file: string;
  /** Loads and checks the file as the filter's unit would (`vm` is the instance name, the unit's --name). */
  readonly load: (path: string, vm: string) => unknown;
  readonly socket: string;
  readonly unit: string;
  readonly probe: (
    path: string,
    timeoutMs: number,
    check: string,
  ) => Promise<Finding | RoundTripResult<never>>;
}

const FILTERS: readonly FilterKind[] = [
  {
    file: "pipewire.json",
    load: loadPipeWirePolicy,
    socket: "pipewire-0",
    unit: "crossway-pipewire-filter",
    probe: async (path, ms, check) => {
      const r = await socketRoundTrip(path, pipewireProbeRequest(), pushInto(new PipeWireProbe()), ms);
      return r.kind === "answer" ? pipewireFinding(check, path, r.value) : r;
    },
  },
  {
    file: "wayland.json",
    load: (path, vm) => loadFilterPolicy(path, vm),
    socket: "wayland-0",
    unit: "crossway-wayland-filter",
    probe: async (path, ms, check) => {
      const r = await socketRoundTrip(path, registryProbeRequest(), pushInto(new RegistryProbe()), ms);
      return r.kind === "answer" ? registryFinding(check, path, r.value, "check the filter's upstream") : r;
    },
  },
];

/**
 * Per VM directory `dir/<vm>/`: each policy file loads, and the filter its unit runs answers on
 * `<runtime dir>/crossway/<vm>/<socket>` (not running is a warning: the VM may be off). No directory is fine.
 */
export async function policyFindings(
  dir: string,
  runtimeDir: string | undefined,
  timeoutMs: number,
): Promise<Finding[]> {
  let vms: string[];
  try {
    vms = readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch {
    return [finding("ok", "filter policies", `no ${dir}: no per-VM filters configured`)];
  }
  const out: Finding[] = [];
  for (const vm of vms) {
    for (const k of FILTERS) {
      const path = join(dir, vm, k.file);
      if (!existsSync(path)) continue;
      try {
        k.load(path, vm);
        out.push(finding("ok", `policy ${vm}`, `${path} loads`));
      } catch (err) {
        out.push(
          finding(
            "fail",
            `policy ${vm}`,
            (err as Error).message,
            `fix ${path} (docs/install.md lists its keys)`,
          ),
        );
        continue;
      }
      if (runtimeDir === undefined) continue;
      const sock = join(runtimeDir, "crossway", vm, k.socket);
      const check = `filter ${k.unit}@${vm}`;
      const r = await k.probe(sock, timeoutMs, check);
      if ("status" in r) out.push(r);
      else {
        const absent = r.kind === "connect-failed" && (r.code === "ENOENT" || r.code === "ECONNREFUSED");
        out.push(
          finding(
            absent ? "warn" : "fail",
            check,
            `${roundTripProblem(r, sock, "the filter")}${absent ? ": the filter is not running" : ""}`,
            `systemctl --user enable --now ${k.unit}@${vm}.service (journalctl --user -u ${k.unit}@${vm} says why it stopped)`,
          ),
        );
      }
    }
  }
  if (out.length === 0) out.push(finding("ok", "filter policies", `${dir} holds no policy files`));
  return out;
}
