// What a test VM was doing when its guest agent stopped answering: QEMU's threads (gdb), the guest's tasks (SysRq)
// and the agent's own trace on the serial console, kept outside the run's directory, which the VM's stop removes.
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logTail } from "./processes.ts";

/** Limit of gdb's backtrace of every QEMU thread (it stops QEMU meanwhile; a few seconds usually). */
const GDB_TIMEOUT_MS = 60_000;
/** Limit of the SysRq keys: QEMU serves its monitor from the main loop, which may be the thing that is stuck. */
const MONITOR_TIMEOUT_MS = 10_000;
/** Time for the guest kernel to print its task dump on the (slow, emulated) serial console. */
const TASK_DUMP_SETTLE_MS = 5_000;
/** SysRq w's section of the console: the tasks asleep in the kernel uninterruptibly, with their stacks. */
const BLOCKED_TASKS = /sysrq: Show Blocked State\n([\s\S]*?)(?:^.*sysrq: Show State|(?![\s\S]))/m;
/** Frames of each interesting QEMU thread quoted in the error (the whole dump is in the kept file). */
const QUOTED_FRAMES = 12;

export interface StuckVm {
  qemuPid: number;
  /** QEMU's human monitor socket (-monitor unix:...). */
  monitorPath: string;
  /** The serial console's log, where the guest agent traces each request and answer. */
  consolePath: string;
}

/**
 * Collects what the VM was doing and returns it as text for the error of the unanswered request: where the full
 * dumps are kept, QEMU's main thread and any thread inside rutabaga (the cross-domain device), and the agent's last
 * trace lines. If QEMU's main loop is stuck, the device emulation (virtio-serial, 9p, the console) is stuck with it,
 * and the guest's own tasks cannot be asked; the QEMU backtrace is then the answer.
 */
export async function diagnoseStuckVm(vm: StuckVm): Promise<string> {
  const stamp = `${process.pid}-${Date.now()}`;
  const parts: string[] = [];
  if (vm.qemuPid > 0)
    parts.push(qemuThreads(vm.qemuPid, join(tmpdir(), `crossway-vm-qemu-threads-${stamp}.txt`)));
  parts.push(await guestTasks(vm.monitorPath));
  const kept = join(tmpdir(), `crossway-vm-console-${stamp}.log`);
  try {
    copyFileSync(vm.consolePath, kept);
    // The serial console ends lines with CRLF.
    const text = readFileSync(kept, "utf8").replaceAll("\r\n", "\n");
    const agent = text
      .split("\n")
      .filter((l) => l.startsWith("crossway-vm: agent"))
      .slice(-12);
    const blocked = BLOCKED_TASKS.exec(text)?.[1];
    parts.push(
      `the guest's console is kept at ${kept}; the agent's last trace lines:\n${agent.join("\n")}\n${
        blocked === undefined
          ? `console tail:\n${logTail(kept, 3000)}`
          : `blocked guest tasks:\n${blocked.length > 4000 ? `${blocked.slice(0, 4000)}…` : blocked || "(none)"}`
      }`,
    );
  } catch (err) {
    parts.push(`the console could not be kept (${(err as Error).message})`);
  }
  return parts.join("\n");
}

/** gdb's backtrace of every QEMU thread, kept in `file`; returns the main thread's and rutabaga's, shortened. */
function qemuThreads(pid: number, file: string): string {
  const r = spawnSync(
    "gdb",
    ["-p", String(pid), "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt"],
    { encoding: "utf8", timeout: GDB_TIMEOUT_MS, maxBuffer: 1 << 24 },
  );
  if (r.error !== undefined) return `no QEMU backtrace (gdb: ${r.error.message})`;
  writeFileSync(file, `${r.stdout}\n${r.stderr}`);
  const threads = r.stdout.split(/\n(?=Thread \d+ )/).filter((t) => t.startsWith("Thread "));
  const quoted = threads.filter((t, i) => i === threads.length - 1 || /rutabaga|cross_domain/i.test(t));
  const shorten = (t: string): string =>
    t
      .split("\n")
      .slice(0, QUOTED_FRAMES + 1)
      .map((l) => l.replace(/ \(.{60,}?\) (at|from) /, " (…) $1 "))
      .join("\n");
  return `QEMU's threads (gdb, all kept at ${file}); the main thread last:\n${quoted.map(shorten).join("\n")}`;
}

/**
 * SysRq w (blocked tasks) and t (every task's stack) through QEMU's monitor; the kernel prints them on the console.
 * They print at KERN_INFO, under the console's loglevel=4: SysRq 8 lets them through first. It stays at 8 (the VM
 * is failing anyway): restoring it while the slow console still prints would cut the dump short.
 */
async function guestTasks(monitorPath: string): Promise<string> {
  const sent = await new Promise<string | undefined>((res) => {
    const keys = ["8", "w", "t"];
    const mon = connect(monitorPath);
    const timer = setTimeout(() => {
      mon.destroy();
      res(`QEMU's monitor did not take the keys in ${MONITOR_TIMEOUT_MS / 1000} s (its main loop is stuck)`);
    }, MONITOR_TIMEOUT_MS);
    const next = (): void => {
      const k = keys.shift();
      if (k === undefined) {
        clearTimeout(timer);
        mon.end();
        res(undefined);
        return;
      }
      mon.write(`sendkey alt-sysrq-${k}\n`);
      setTimeout(next, 1_000);
    };
    // The monitor greets with its banner once its main loop serves the connection: only then do the keys count.
    mon.once("data", next);
    mon.on("error", (err) => {
      clearTimeout(timer);
      res(`QEMU's monitor: ${err.message}`);
    });
  });
  if (sent !== undefined) return `no guest task dump: ${sent}`;
  await new Promise((r) => setTimeout(r, TASK_DUMP_SETTLE_MS));
  return "the guest kernel's blocked tasks and task stacks (SysRq w, t) are on the console";
}
