// Time to first window of real apps on headless sway, direct and through crossway (guest + device), interleaved.
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { CrosswayError } from "../../src/errors.ts";
import type { Compositor } from "../../src/harness/compositor.ts";
import { type CrosswayStack, startCrosswayStack } from "../../src/harness/crossway-stack.ts";
import { startSway } from "../../src/harness/sway.ts";
import { findCommand } from "./processes.ts";
import { fmt, fmtRatio, median, range } from "./stats.ts";

/** The --benches id of this benchmark. */
export const FIRST_WINDOW_BENCH = "first-window";

/** One app: how to start it so it maps one toplevel and stays up, and the environment it needs on Wayland. */
interface App {
  readonly id: string;
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Record<string, string>;
  /** The Debian package that has it (for the "not installed" line). */
  readonly debPackage: string;
}

/**
 * GTK 4 is told to draw with cairo (GSK_RENDERER=cairo) on both paths: there is no GPU here, and its GL renderer
 * would measure Mesa's software rasteriser rather than the path. Accessibility buses are off (no session bus).
 */
const APPS: readonly App[] = [
  { id: "foot", label: "foot", command: "foot", args: ["-e", "sleep", "120"], env: {}, debPackage: "foot" },
  {
    id: "weston-terminal",
    label: "weston-terminal",
    command: "weston-terminal",
    args: [],
    env: {},
    debPackage: "weston",
  },
  {
    id: "gtk3-demo",
    label: "gtk3-demo",
    command: "gtk3-demo",
    args: [],
    env: { GDK_BACKEND: "wayland", NO_AT_BRIDGE: "1" },
    debPackage: "gtk-3-examples",
  },
  {
    id: "gtk4-demo",
    label: "gtk4-demo (cairo)",
    command: "gtk4-demo",
    args: [],
    env: { GDK_BACKEND: "wayland", GSK_RENDERER: "cairo", NO_AT_BRIDGE: "1", GTK_A11Y: "none" },
    debPackage: "gtk-4-examples",
  },
  {
    id: "qt",
    label: "featherpad (Qt 5)",
    command: "featherpad",
    args: [],
    env: { QT_QPA_PLATFORM: "wayland", QT_ACCESSIBILITY: "0" },
    debPackage: "featherpad, qtwayland5",
  },
];

/** Per app and path, the milliseconds from spawning the app to sway's window "new" event, one per repetition. */
export interface FirstWindowRecord {
  readonly apps: ReadonlyArray<{
    readonly id: string;
    readonly label: string;
    /** Set when the app is not installed or failed; the other apps go on. */
    error?: string;
    readonly ms: { direct: number[]; crossway: number[] };
  }>;
  error?: string;
}

/** i3/sway IPC: "i3-ipc", then u32 payload length and u32 type (host byte order), then the JSON payload. */
const IPC_MAGIC = "i3-ipc";
const IPC_SUBSCRIBE = 2;
/** Event replies have the high bit set; window events are event 3. */
const IPC_EVENT_WINDOW = 0x80000003;

/** sway's window events, read straight from its IPC socket (SWAYSOCK) so the subscription is acknowledged. */
class WindowEvents {
  private waiters: Array<(change: string) => void> = [];
  private buf = Buffer.alloc(0);

  private constructor(private readonly sock: Socket) {}

  /** Subscribes to window events; resolves once sway has answered the subscription with success. */
  static async open(sway: Compositor): Promise<WindowEvents> {
    const path = sway.env.SWAYSOCK;
    if (path === undefined) throw new CrosswayError("CW_BENCH_FAILED", "sway's environment has no SWAYSOCK");
    const sock = connect(path);
    const ev = new WindowEvents(sock);
    const acked = new Promise<void>((resolve, reject) => {
      sock.once("error", (err) =>
        reject(new CrosswayError("CW_BENCH_FAILED", `sway IPC ${path}: ${err.message}`)),
      );
      ev.onReply = (type, payload) => {
        if (type !== IPC_SUBSCRIBE) return;
        if ((JSON.parse(payload) as { success?: boolean }).success === true) resolve();
        else reject(new CrosswayError("CW_BENCH_FAILED", `sway refused the subscription: ${payload}`));
      };
    });
    sock.on("data", (d: Buffer) => ev.onData(d));
    const body = Buffer.from('["window"]');
    const head = Buffer.alloc(14);
    head.write(IPC_MAGIC, 0, "latin1");
    head.writeUInt32LE(body.length, 6);
    head.writeUInt32LE(IPC_SUBSCRIBE, 10);
    sock.write(Buffer.concat([head, body]));
    await acked;
    return ev;
  }

  private onReply: (type: number, payload: string) => void = () => {};

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 14) {
      const len = this.buf.readUInt32LE(6);
      if (this.buf.length < 14 + len) return;
      const type = this.buf.readUInt32LE(10);
      const payload = this.buf.subarray(14, 14 + len).toString("utf8");
      this.buf = this.buf.subarray(14 + len);
      if (type === IPC_EVENT_WINDOW) {
        const change = (JSON.parse(payload) as { change?: string }).change ?? "";
        for (const w of this.waiters.splice(0)) w(change);
      } else this.onReply(type, payload);
    }
  }

  /** The next window event whose change is `change`, or a rejection after `timeoutMs`. */
  next(change: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new CrosswayError("CW_BENCH_FAILED", `no window "${change}" event within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const wait = (c: string): void => {
        if (c === change) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(wait);
      };
      this.waiters.push(wait);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Starts `app` on `display`, resolves with ms until its window maps, then closes it and waits for the unmap. */
async function timeOneStart(
  app: App,
  baseEnv: Record<string, string>,
  display: string,
  events: WindowEvents,
): Promise<number> {
  const mapped = events.next("new", 60_000);
  const t0 = performance.now();
  const child = spawn(app.command, [...app.args], {
    env: { ...baseEnv, ...app.env, WAYLAND_DISPLAY: display },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const exited = new Promise<never>((_, rej) =>
    child.once("exit", (code, sig) =>
      rej(
        new CrosswayError(
          "CW_BENCH_FAILED",
          `${app.command} exited (${sig ?? code}) before mapping a window: ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
        ),
      ),
    ),
  );
  exited.catch(() => {});
  try {
    await Promise.race([mapped, exited]);
    return performance.now() - t0;
  } finally {
    const closed = events.next("close", 30_000).catch(() => {});
    child.kill("SIGTERM");
    await Promise.race([closed, new Promise((r) => child.once("exit", r))]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    }
    await closed;
  }
}

/**
 * For each repetition, each app starts once directly on sway and once through a crossway guest + device in front of
 * the same sway (A B, then B A, and so on), each run timed from spawn to sway's window "new" event: sway sends it when the
 * toplevel maps, i.e. on the first commit with a buffer. A warm-up start per app and path is not counted (page
 * cache, fontconfig caches).
 */
export async function runFirstWindow(reps: number, log: (line: string) => void): Promise<FirstWindowRecord> {
  const rec: FirstWindowRecord = { apps: [] };
  let sway: Compositor | undefined;
  let stack: CrosswayStack | undefined;
  let events: WindowEvents | undefined;
  try {
    sway = await startSway({ width: 1280, height: 800 });
    stack = await startCrosswayStack(sway, { logLevel: "warn" });
    events = await WindowEvents.open(sway);
    const base = { ...sway.env };
    const paths = { direct: sway.socketPath, crossway: stack.socketPath } as const;
    // CROSSWAY_BENCH_APPS=foot,qt measures only those apps (ids of APPS), e.g. to compare two builds quickly.
    const only = process.env.CROSSWAY_BENCH_APPS?.split(",").filter((s) => s !== "");
    const entries = APPS.filter((app) => only === undefined || only.includes(app.id)).map((app) => {
      const e = {
        id: app.id,
        label: app.label,
        ms: { direct: [] as number[], crossway: [] as number[] },
      } as FirstWindowRecord["apps"][number];
      if (findCommand(app.command) === undefined) e.error = `not installed (Debian: ${app.debPackage})`;
      (rec.apps as FirstWindowRecord["apps"][number][]).push(e);
      return { app, e };
    });
    for (let rep = 0; rep <= reps; rep++) {
      for (const { app, e } of entries) {
        if (e.error !== undefined) continue;
        // Counterbalanced (direct first in odd repetitions, crossway first in even ones): the second start of a pair
        // runs while the first app's exit is still being cleaned up, which cost foot's second start 0.8-2.6 ms before
        // its first request in either order here (medians of ten-start runs).
        const order = rep % 2 === 1 ? (["direct", "crossway"] as const) : (["crossway", "direct"] as const);
        for (const path of order) {
          try {
            const ms = await timeOneStart(app, base, paths[path], events);
            if (rep > 0) e.ms[path].push(ms);
            log(
              `[first window] ${app.id} ${rep === 0 ? "warm-up" : `${rep}/${reps}`} ${path}: ${fmt(ms)} ms`,
            );
          } catch (err) {
            e.error = `${path}: ${(err as Error).message}`;
            log(`[first window] ${app.id} ${path}: FAILED ${e.error}`);
            break;
          }
        }
      }
    }
  } catch (err) {
    rec.error = (err as Error).message;
  } finally {
    events?.close();
    await stack?.stop();
    await sway?.stop();
  }
  return rec;
}

/** The markdown table: medians per app and path, the ratio, and the issue-15 target (≤ 1.3x direct). */
export function firstWindowTable(rec: FirstWindowRecord): string {
  const lines = [
    "| app | direct, median ms | crossway (guest + device), median ms | min–max (crossway) | ratio | ≤ 1.3x direct? |",
    "|---|--:|--:|--:|--:|---|",
  ];
  for (const a of rec.apps) {
    const d = a.ms.direct;
    const c = a.ms.crossway;
    if (d.length === 0 || c.length === 0) {
      lines.push(`| ${a.label} | ${a.error ?? "no result"} |||||`);
      continue;
    }
    const r = range(c);
    const ratio = median(c) / median(d);
    lines.push(
      `| ${a.label} | ${fmt(median(d))} | ${fmt(median(c))} | ${fmt(r.min)}–${fmt(r.max)} (n=${c.length}) | ${fmtRatio(ratio)} | ${ratio <= 1.3 ? "yes" : "**no**"}${a.error !== undefined ? ` (then failed: ${a.error})` : ""} |`,
    );
  }
  return lines.join("\n");
}
