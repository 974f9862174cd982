// The test VM's guest agent: runs commands for the host over a virtio-serial port (JSON lines), so that one boot
// serves many checks. Plain JavaScript, no dependencies: it starts before anything else under TCG, where each
// module costs time. Protocol (one JSON object per line):
//   host → guest  {id, op: "run", argv, env?, cwd?, stdin?, timeoutMs?}   → {id, code, signal, stdout, stderr, ms}
//                 {id, op: "spawn", argv, env?, cwd?}                      → {id, pid}; then events for that pid:
//                 {event: "line", pid, stream, line} and {event: "exit", pid, code, signal}
//                 {id, op: "kill", pid, signal?}                           → {id, ok}
//                 {id, op: "fds", pid}                                     → {id, count}
//   guest → host  {event: "ready", uptime, node}                          once, when the agent listens
// Output of "run" is UTF-8 text; binary checks hash in the guest (sha256sum) instead of moving bytes.
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { open as openAsync } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const PORT_NAME = "crossway.ctl";

function findPort() {
  const dir = "/sys/class/virtio-ports";
  for (const p of readdirSync(dir)) {
    try {
      if (readFileSync(`${dir}/${p}/name`, "utf8").trim() === PORT_NAME) return `/dev/${p}`;
    } catch {}
  }
  throw new Error(`no virtio-serial port named ${PORT_NAME} in ${dir}`);
}

const port = findPort();
// A virtio-serial port opens once (a second open is EBUSY): one fd for both directions.
const portFd = openSync(port, "r+");
const out = createWriteStream(null, { fd: portFd, autoClose: false });
const send = (obj) => out.write(`${JSON.stringify(obj)}\n`);
// Each request and its answer leave one line on the console (a UART, apart from virtio-serial and 9p): when the
// host waits in vain, the console tells whether the request arrived, and whether its answer was written or is stuck.
const trace = (line) => {
  try {
    writeSync(1, `crossway-vm: agent ${line}\n`);
  } catch {}
};
const answer = (obj) =>
  out.write(`${JSON.stringify(obj)}\n`, () => trace(`#${obj.id} answered${obj.error ? " (error)" : ""}`));
const children = new Map();
/** How long a command's output may stay open after the command exited (see run). */
const EXIT_GRACE_MS = 5_000;

function childEnv(env) {
  return { ...process.env, ...(env ?? {}) };
}

function run(msg) {
  const t0 = Date.now();
  const child = spawn(msg.argv[0], msg.argv.slice(1), {
    env: childEnv(msg.env),
    cwd: msg.cwd ?? "/",
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  const stdout = [];
  const stderr = [];
  child.stdout.on("data", (b) => stdout.push(b));
  child.stderr.on("data", (b) => stderr.push(b));
  child.stdin.on("error", () => {});
  child.stdin.end(msg.stdin ?? "");
  let timer = null;
  if (msg.timeoutMs) {
    timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, msg.timeoutMs);
  }
  let done = false;
  const finish = (code, signal, error) => {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    trace(`#${msg.id} exited code ${code} signal ${signal} after ${Date.now() - t0} ms`);
    answer({
      id: msg.id,
      code,
      signal,
      stdout: Buffer.concat(stdout).toString("utf8"),
      stderr: Buffer.concat(stderr).toString("utf8") + (error ? `\n${error}` : ""),
      ms: Date.now() - t0,
    });
  };
  child.on("error", (err) => finish(127, null, err.message));
  child.on("close", (code, signal) => finish(code, signal));
  // "close" waits for stdout and stderr to close too. A descendant that left the process group (a daemon, a
  // setsid) may hold them open forever, and the group kill at the timeout cannot reach it: once the command itself
  // has exited, its answer goes after a grace period whatever holds its output.
  child.on("exit", (code, signal) => {
    setTimeout(() => {
      if (done) return;
      child.stdout.destroy();
      child.stderr.destroy();
      finish(
        code,
        signal,
        `(agent: output still open ${EXIT_GRACE_MS} ms after the command exited: a descendant holds it)`,
      );
    }, EXIT_GRACE_MS).unref();
  });
}

function lines(stream, pid, name) {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (s) => {
    buf += s;
    let i = buf.indexOf("\n");
    while (i >= 0) {
      send({ event: "line", pid, stream: name, line: buf.slice(0, i) });
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  });
  stream.on("end", () => {
    if (buf !== "") send({ event: "line", pid, stream: name, line: buf });
  });
}

function spawnChild(msg) {
  const child = spawn(msg.argv[0], msg.argv.slice(1), {
    env: childEnv(msg.env),
    cwd: msg.cwd ?? "/",
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child.on("error", (err) => send({ event: "exit", pid: -1, id: msg.id, code: 127, error: err.message }));
  if (child.pid === undefined) return;
  children.set(child.pid, child);
  lines(child.stdout, child.pid, "stdout");
  lines(child.stderr, child.pid, "stderr");
  child.on("close", (code, signal) => {
    children.delete(child.pid);
    send({ event: "exit", pid: child.pid, code, signal });
  });
  answer({ id: msg.id, pid: child.pid });
}

function handle(msg) {
  trace(
    `#${msg.id} ${msg.op}${msg.argv ? ` ${String(msg.argv[0]).slice(0, 40)}` : ""}${msg.pid ? ` pid ${msg.pid}` : ""}`,
  );
  try {
    if (msg.op === "run") return run(msg);
    if (msg.op === "spawn") return spawnChild(msg);
    if (msg.op === "kill") {
      let ok = true;
      try {
        process.kill(msg.group === false ? msg.pid : -msg.pid, msg.signal ?? "SIGTERM");
      } catch {
        ok = false;
      }
      return answer({ id: msg.id, ok });
    }
    if (msg.op === "fds") return answer({ id: msg.id, count: readdirSync(`/proc/${msg.pid}/fd`).length });
    answer({ id: msg.id, error: `unknown op ${msg.op}` });
  } catch (err) {
    answer({ id: msg.id, error: String(err?.message ?? err) });
  }
}

let pending = "";
createReadStream(null, { fd: portFd, autoClose: false, encoding: "utf8" }).on("data", (s) => {
  pending += s;
  let i = pending.indexOf("\n");
  while (i >= 0) {
    const line = pending.slice(0, i);
    pending = pending.slice(i + 1);
    i = pending.indexOf("\n");
    if (line.trim() === "") continue;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      send({ error: `bad request line: ${line.slice(0, 80)}` });
      continue;
    }
    handle(msg);
  }
});

// The 9p heartbeat. Under TCG, a guest task was twice left waiting forever on a 9p request (a clunk at exit) while
// QEMU had nothing pending and no 9p worker running: the request or its completion notice was lost between the
// guest's virtio driver and QEMU. Any later request on the same virtqueue makes QEMU walk the ring again and the
// guest drain every completion, but a guest whose every task waits on that one request makes none. One small 9p
// request every few seconds (open and read this file, on the host root) is that later request; one that takes long
// is traced, so a console shows when the heartbeat had to rescue a stuck request.
const HEARTBEAT_MS = 3_000;
const HEARTBEAT_SLOW_MS = 2_000;
const selfPath = fileURLToPath(import.meta.url);
let heartbeatBusy = false;
setInterval(() => {
  if (heartbeatBusy) return;
  heartbeatBusy = true;
  const t0 = Date.now();
  openAsync(selfPath, "r")
    .then(async (fh) => {
      try {
        await fh.read(Buffer.alloc(64), 0, 64, 0);
      } finally {
        await fh.close();
      }
    })
    .catch((err) => trace(`9p heartbeat failed: ${err?.message ?? err}`))
    .finally(() => {
      heartbeatBusy = false;
      const ms = Date.now() - t0;
      if (ms > HEARTBEAT_SLOW_MS) trace(`9p heartbeat took ${ms} ms`);
    });
}, HEARTBEAT_MS).unref();

const uptime = readFileSync("/proc/uptime", "utf8").split(" ")[0];
console.log(`crossway-vm: agent ready on ${port} uptime=${uptime}`);
send({ event: "ready", uptime: Number(uptime), node: process.version });
