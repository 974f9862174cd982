// Boots the test VM (QEMU + rutabaga cross-domain, TCG) and talks to its guest agent over virtio-serial.
// The guest sees the host's root read-only (9p), so Node.js, this checkout and real clients run in it as they are.
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CrosswayError } from "../errors.ts";
import { makePeerDirs } from "./compositor.ts";
import { type Env, logTail, spawnTracked, type TrackedProcess } from "./processes.ts";
import { diagnoseStuckVm } from "./vm-diagnosis.ts";

/** The checkout this module belongs to (the guest sees it at the same path). */
export const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Time for the guest to boot, load its modules and start the agent under TCG on a loaded 2-core machine. */
const BOOT_TIMEOUT_MS = 180_000;
/** Default limit of one guest command. */
const GUEST_COMMAND_TIMEOUT_MS = 120_000;

/** What scripts/setup-vm.sh built or found (its env file). */
export interface VmEnv {
  qemu: string;
  /** LD_LIBRARY_PATH for a built QEMU (librutabaga_gfx_ffi.so); "" for CROSSWAY_QEMU. */
  qemuLib: string;
  bios: string;
  kernel: string;
  initrd: string;
  kernelVersion: string;
}

/** True when CROSSWAY_SKIP_VM=1 asks to skip the VM tier. */
export function vmSkipped(): boolean {
  return process.env.CROSSWAY_SKIP_VM === "1";
}

/** Parses the env file scripts/setup-vm.sh prints the path of. */
export function readVmEnv(path: string): VmEnv {
  const vars = new Map<string, string>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^(CROSSWAY_VM_[A-Z_]+)=(.*)$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined)
      throw new CrosswayError("CW_HARNESS_START", `${path}: no ${k} (rerun scripts/setup-vm.sh)`);
    return v;
  };
  return {
    qemu: get("CROSSWAY_VM_QEMU"),
    qemuLib: get("CROSSWAY_VM_QEMU_LIB"),
    bios: get("CROSSWAY_VM_BIOS"),
    kernel: get("CROSSWAY_VM_KERNEL"),
    initrd: get("CROSSWAY_VM_INITRD"),
    kernelVersion: get("CROSSWAY_VM_KERNEL_VERSION"),
  };
}

/**
 * The VM's pieces: from CROSSWAY_VM_ENV (set by scripts/test.sh) or by running scripts/setup-vm.sh, which reuses
 * its cache (a few seconds) or builds (minutes). Its progress lines go to `log`.
 */
export function prepareVm(log: (line: string) => void = () => {}): VmEnv {
  const preset = process.env.CROSSWAY_VM_ENV;
  if (preset !== undefined && preset !== "") {
    log(`VM pieces from CROSSWAY_VM_ENV=${preset}`);
    return readVmEnv(preset);
  }
  const r = spawnSync("bash", [join(CHECKOUT, "scripts/setup-vm.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 1 << 22,
  });
  for (const line of (r.stderr ?? "").split("\n")) if (line.startsWith("setup-vm:")) log(line);
  if (r.status !== 0) {
    throw new CrosswayError(
      "CW_HARNESS_START",
      `scripts/setup-vm.sh failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? "").trim().split("\n").slice(-5).join("\n")}`,
    );
  }
  const lines = r.stdout.trim().split("\n");
  return readVmEnv(lines[lines.length - 1]!);
}

/** Options of {@link startVm}. */
export interface VmOptions {
  /** The host compositor's Wayland socket (QEMU's rutabaga connects a cross-domain channel to it). */
  wayland: string;
  /** Guest RAM in MiB (default 2048: the guest's node and clients live in its tmpfs). */
  memoryMb?: number;
  /** Size of the host-visible memory window in MiB (default 2048): all host blobs mapped at once must fit. */
  hostmemMb?: number;
  /** Where progress lines go (e.g. console.log in the VM tests). */
  log?: (line: string) => void;
}

/** What a guest command produced. */
export interface GuestRunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Wall time in the guest. */
  ms: number;
}

/** A background process in the guest, started by {@link Vm.spawn}. */
export interface GuestProcess {
  readonly pid: number;
  /** Every line it printed so far (stdout and stderr). */
  readonly lines: string[];
  /** Resolves with the first line matching `re` (including lines already printed); rejects on exit or timeout. */
  waitLine(re: RegExp, timeoutMs: number, what: string): Promise<string>;
  /** Resolves with the exit status. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  kill(signal?: string): Promise<void>;
}

/** A running VM. */
export interface Vm {
  readonly env: VmEnv;
  /** Milliseconds from QEMU's start to the guest agent's ready line. */
  readonly bootMs: number;
  readonly qemuPid: number;
  /** The run's exchange folder: the guest sees it read-write at {@link GUEST_SHARE}. */
  readonly shareDir: string;
  /** QEMU's console (serial) output file. */
  readonly consolePath: string;
  run(
    argv: readonly string[],
    opts?: { env?: Env; stdin?: string; timeoutMs?: number; cwd?: string },
  ): Promise<GuestRunResult>;
  spawn(argv: readonly string[], opts?: { env?: Env }): Promise<GuestProcess>;
  /** Open fds of a guest process (by /proc/PID/fd in the guest). */
  guestFdCount(pid: number): Promise<number>;
  /** Open fds of QEMU on the host. */
  qemuFdCount(): number;
  stop(): Promise<void>;
}

/** Where the guest mounts the run's exchange folder. */
export const GUEST_SHARE = "/run/crossway-vm";
const AGENT = join(CHECKOUT, "src/vm/guest-agent.mjs");

interface AgentReply {
  id?: number;
  event?: string;
  pid?: number;
  [k: string]: unknown;
}

/**
 * Boots the VM: QEMU with virtio-gpu-rutabaga (cross-domain to `opts.wayland`), the host root over 9p, an exchange
 * folder and a virtio-serial control port; resolves when the guest agent says it is ready.
 */
export async function startVm(env: VmEnv, opts: VmOptions): Promise<Vm> {
  const log = opts.log ?? (() => {});
  const dirs = makePeerDirs("vm");
  const shareDir = join(dirs.base, "share");
  mkdirSync(shareDir, { mode: 0o755 });
  const ctlPath = join(dirs.base, "ctl.sock");
  const monitorPath = join(dirs.base, "monitor.sock");
  const consolePath = join(dirs.base, "console.log");
  // Beside the VM cache, kept across boots: the guest's TMPDIR (tsx's transform cache lives there).
  const guestCache = join(dirname(dirname(env.kernel)), "guest-tmp");
  mkdirSync(guestCache, { recursive: true, mode: 0o700 });
  let qemuPid = 0;
  const agent = new AgentLink(() => diagnoseStuckVm({ qemuPid, monitorPath, consolePath }));
  const server: Server = createServer((sock) => agent.attach(sock));
  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(ctlPath, () => res());
  });
  const args = [
    ...["-machine", "pc", "-accel", "tcg", "-m", String(opts.memoryMb ?? 2048), "-smp", "1"],
    ...[
      "-display",
      "none",
      // The human monitor, only for diagnoseStuckVm: SysRq keys make the guest kernel print its tasks.
      "-monitor",
      `unix:${monitorPath},server=on,wait=off`,
      "-serial",
      "stdio",
      "-no-reboot",
      "-vga",
      "none",
      "-nic",
      "none",
    ],
    ...["-L", env.bios, "-kernel", env.kernel, "-initrd", env.initrd],
    "-append",
    `console=ttyS0 loglevel=4 panic=-1 sysrq_always_enabled crossway.share=cwshare crossway.cache=cwcache crossway.agent=${AGENT}`,
    "-device",
    // hostmem is the window host blobs are mapped through: every wl_shm pool is shadowed whole (foot makes a
    // 512 MiB sparse pool: with 256M its blob fails with ENOSPC and foot is dropped), so leave room.
    `virtio-gpu-rutabaga-pci,cross-domain=on,hostmem=${opts.hostmemMb ?? 2048}M,wayland-socket-path=${opts.wayland}`,
    "-virtfs",
    "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap,id=hostroot",
    "-virtfs",
    `local,path=${shareDir},mount_tag=cwshare,security_model=none,id=cwshare`,
    "-virtfs",
    `local,path=${guestCache},mount_tag=cwcache,security_model=none,id=cwcache`,
    ...["-device", "virtio-serial-pci", "-chardev", `socket,id=ctl,path=${ctlPath}`],
    ...["-device", "virtserialport,chardev=ctl,name=crossway.ctl"],
  ];
  const procEnv: Env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  if (env.qemuLib !== "") procEnv.LD_LIBRARY_PATH = env.qemuLib;
  const logFd = openSync(consolePath, "a");
  const t0 = Date.now();
  let qemu: TrackedProcess;
  try {
    qemu = spawnTracked("qemu", env.qemu, args, { env: procEnv, logFd });
    qemuPid = qemu.pid;
  } finally {
    closeSync(logFd);
  }
  const cleanup = async (): Promise<void> => {
    agent.close();
    await qemu.stop(3000);
    await new Promise<void>((r) => server.close(() => r()));
    dirs.remove();
  };
  try {
    await agent.ready(BOOT_TIMEOUT_MS, qemu, consolePath);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const bootMs = Date.now() - t0;
  log(`vm: booted in ${(bootMs / 1000).toFixed(1)} s (QEMU pid ${qemu.pid}, kernel ${env.kernelVersion})`);
  return makeVm(env, agent, qemu, shareDir, consolePath, bootMs, cleanup);
}

function makeVm(
  env: VmEnv,
  agent: AgentLink,
  qemu: TrackedProcess,
  shareDir: string,
  consolePath: string,
  bootMs: number,
  cleanup: () => Promise<void>,
): Vm {
  let stopped: Promise<void> | undefined;
  return {
    env,
    bootMs,
    qemuPid: qemu.pid,
    shareDir,
    consolePath,
    async run(argv, o = {}) {
      const timeoutMs = o.timeoutMs ?? GUEST_COMMAND_TIMEOUT_MS;
      const r = await agent.request(
        { op: "run", argv, env: o.env ?? {}, stdin: o.stdin ?? "", timeoutMs, cwd: o.cwd ?? "/" },
        timeoutMs + 30_000,
        `guest command ${argv.join(" ")}`,
      );
      if (typeof r.error === "string") throw new CrosswayError("CW_HARNESS_START", `guest agent: ${r.error}`);
      return {
        code: r.code as number | null,
        signal: r.signal as string | null,
        stdout: r.stdout as string,
        stderr: r.stderr as string,
        ms: r.ms as number,
      };
    },
    async spawn(argv, o = {}) {
      const r = await agent.request({ op: "spawn", argv, env: o.env ?? {} }, 60_000, `spawn ${argv[0]}`);
      if (typeof r.pid !== "number") {
        throw new CrosswayError(
          "CW_HARNESS_START",
          `guest agent could not spawn ${argv.join(" ")}: ${String(r.error)}`,
        );
      }
      return agent.track(r.pid, argv.join(" "));
    },
    async guestFdCount(pid) {
      const r = await agent.request({ op: "fds", pid }, 60_000, `fd count of guest pid ${pid}`);
      if (typeof r.count !== "number")
        throw new CrosswayError("CW_HARNESS_START", `guest fds: ${String(r.error)}`);
      return r.count;
    },
    qemuFdCount: () => readdirSync(`/proc/${qemu.pid}/fd`).length,
    stop() {
      stopped ??= cleanup();
      return stopped;
    },
  };
}

/** The host end of the guest agent's JSON-lines protocol. */
class AgentLink {
  private sock: Socket | undefined;
  private buf = "";
  private nextId = 1;
  private readonly waiting = new Map<number, (r: AgentReply) => void>();
  private readonly procs = new Map<number, ProcState>();
  private readyResolve: (() => void) | undefined;
  private isReady = false;
  private closed = false;
  private diagnosis: Promise<string> | undefined;

  /**
   * `diagnose` runs at the first request the agent leaves unanswered, and its text goes into that error; requests
   * that time out in the same stall (no answer in between) refer to it instead of asking again.
   */
  constructor(private readonly diagnose: () => Promise<string>) {}

  attach(sock: Socket): void {
    if (this.sock !== undefined) {
      sock.destroy();
      return;
    }
    this.sock = sock;
    sock.setEncoding("utf8");
    sock.on("data", (s: string) => this.onData(s));
    sock.on("error", () => {});
    sock.on("close", () => this.onClose());
  }

  ready(timeoutMs: number, qemu: TrackedProcess, consolePath: string): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        rej(
          new CrosswayError(
            "CW_HARNESS_START",
            `the guest agent did not report ready within ${timeoutMs / 1000} s; console:\n${logTail(consolePath)}`,
          ),
        );
      }, timeoutMs);
      qemu.waitExit().then(() => {
        clearTimeout(timer);
        rej(
          new CrosswayError("CW_HARNESS_START", `QEMU exited during boot; console:\n${logTail(consolePath)}`),
        );
      });
      this.readyResolve = () => {
        clearTimeout(timer);
        res();
      };
    });
  }

  request(msg: Record<string, unknown>, timeoutMs: number, what: string): Promise<AgentReply> {
    if (this.sock === undefined || this.closed) {
      return Promise.reject(
        new CrosswayError("CW_HARNESS_START", `${what}: the guest agent is not connected`),
      );
    }
    const id = this.nextId++;
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        const first = this.diagnosis === undefined;
        this.diagnosis ??= this.diagnose();
        void this.diagnosis.then((d) =>
          rej(
            new CrosswayError(
              "CW_HARNESS_START",
              `${what}: no answer from the guest agent in ${timeoutMs / 1000} s (request #${id}); ${first ? d : "see the first unanswered request's error"}`,
            ),
          ),
        );
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        res(r);
      });
      this.sock!.write(`${JSON.stringify({ id, ...msg })}\n`);
    });
  }

  track(pid: number, what: string): GuestProcess {
    let st = this.procs.get(pid);
    if (st === undefined) {
      st = new ProcState();
      this.procs.set(pid, st);
    }
    const state = st;
    return {
      pid,
      lines: state.lines,
      exited: state.exited,
      waitLine: (re, timeoutMs, label) => state.waitLine(re, timeoutMs, `${label} (${what})`),
      kill: async (signal = "SIGTERM") => {
        await this.request({ op: "kill", pid, signal }, 30_000, `kill ${what}`);
      },
    };
  }

  private onData(s: string): void {
    this.buf += s;
    let i = this.buf.indexOf("\n");
    while (i >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      i = this.buf.indexOf("\n");
      let msg: AgentReply;
      try {
        msg = JSON.parse(line) as AgentReply;
      } catch {
        continue; // console noise cannot reach this port; a partial line after a guest crash is dropped
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: AgentReply): void {
    if (msg.event === "ready") {
      this.isReady = true;
      this.readyResolve?.();
      return;
    }
    if ((msg.event === "line" || msg.event === "exit") && typeof msg.pid === "number") {
      let st = this.procs.get(msg.pid);
      if (st === undefined) {
        st = new ProcState();
        this.procs.set(msg.pid, st);
      }
      if (msg.event === "line") st.addLine(String(msg.line));
      else st.exit((msg.code as number | null) ?? null, (msg.signal as string | null) ?? null);
      return;
    }
    if (typeof msg.id === "number") {
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      // The agent answers again: a later stall is a new one and gets its own diagnosis.
      this.diagnosis = undefined;
      w?.(msg);
    }
  }

  private onClose(): void {
    this.closed = true;
    // The guest agent or the whole VM is gone: nothing pending will be answered.
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w({ id, error: "the guest agent's connection closed (the agent died or the VM stopped)" });
    }
    for (const st of this.procs.values()) st.exit(null, "VM gone");
  }

  close(): void {
    this.closed = true;
    this.sock?.destroy();
  }
}

/** Output and exit of one guest process. */
class ProcState {
  readonly lines: string[] = [];
  private waiters: Array<{ re: RegExp; res: (l: string) => void }> = [];
  private exitResolve!: (v: { code: number | null; signal: string | null }) => void;
  private done = false;
  readonly exited = new Promise<{ code: number | null; signal: string | null }>((r) => {
    this.exitResolve = r;
  });

  addLine(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (!w.re.test(line)) return true;
      w.res(line);
      return false;
    });
  }

  exit(code: number | null, signal: string | null): void {
    if (this.done) return;
    this.done = true;
    this.exitResolve({ code, signal });
  }

  waitLine(re: RegExp, timeoutMs: number, what: string): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const fail = (why: string): void =>
        rej(
          new CrosswayError(
            "CW_HARNESS_START",
            `${what}: ${why}; output:\n${this.lines.slice(-30).join("\n")}`,
          ),
        );
      const timer = setTimeout(() => fail(`no line matching ${re} in ${timeoutMs / 1000} s`), timeoutMs);
      const waiter = {
        re,
        res: (l: string) => {
          clearTimeout(timer);
          res(l);
        },
      };
      this.waiters.push(waiter);
      void this.exited.then((e) => {
        if (!this.waiters.includes(waiter)) return;
        clearTimeout(timer);
        fail(`exited (code ${e.code}, signal ${e.signal}) before printing it`);
      });
    });
  }
}
