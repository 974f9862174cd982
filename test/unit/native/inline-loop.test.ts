// The inline loop (native/src/inline_loop.h) on this process's own libuv loop: while a peer keeps a device fast path
// busy with wake-ups it handles natively, the thread stays in the inline loop, and a due timer, another fd and a child's
// exit still get their turn at once.
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { DeviceFastState } from "../../../src/crossdomain/device-fast-state.ts";
import { native, POLL_READABLE } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";
import { requireCommand } from "../../helpers/processes.ts";

useFdLeakCheck();

/**
 * The peer's schedule, in seconds after its first poke: busy until QUIET_FROM, quiet until QUIET_TO (the stay waits
 * in its epoll with libuv's timeout), busy again until BUSY_S, poking once more at SECOND_POKE_S. The test's timer is
 * due TIMER_MS after the first poke, inside the quiet time, and either it or the second poke may be seen LATE_MS late
 * (a loaded machine; a stay that missed them would see them only when the peer's next phase or its end came).
 */
const QUIET_FROM = 0.1;
const QUIET_TO = 0.9;
const SECOND_POKE_S = 1.4;
const BUSY_S = 3;
const TIMER_MS = 300;
const LATE_MS = 400;

// The peer: SUBMIT frames of one 8-byte SEND (no fence) on the guest side, each answered by the fast path writing
// those 8 bytes to the host side, ping-pong on the schedule above. It pokes a third socket when it begins (the test
// arms its timer then) and once more at SECOND_POKE_S.
const PEER = `
import socket, struct, sys, time
g = socket.socket(fileno=3); h = socket.socket(fileno=4); x = socket.socket(fileno=5)
g.setblocking(True); h.setblocking(True)
send = bytes([4, 0, 24, 0]) + struct.pack('<III', 0, 0, 8) + b'pingpong'
frame = struct.pack('<IIII', 6, 0, 12 + len(send), 0) + struct.pack('<III', 0, 0, 0) + send
n = 0; t0 = time.monotonic(); poked = False
x.send(b'1')
while time.monotonic() - t0 < ${BUSY_S}:
    if ${QUIET_FROM} <= time.monotonic() - t0 < ${QUIET_TO}:
        time.sleep(${QUIET_TO} - (time.monotonic() - t0))
        continue
    g.sendall(frame)
    got = b''
    while len(got) < 8:
        got += h.recv(8 - len(got))
    assert got == b'pingpong', got
    n += 1
    if not poked and time.monotonic() - t0 > ${SECOND_POKE_S}:
        x.send(b'2'); poked = True
print(n)
`;

describe("inline loop", () => {
  it("keeps the thread through a fast path's wake-ups and gives it back for a timer, an fd and a child's exit", async () => {
    requireCommand("python3", "python3");
    const [guestPeer, guestFd] = native.socketpair();
    const [hostFd, hostPeer] = native.socketpair();
    const [pokePeer, pokeFd] = native.socketpair();
    const st = new Float64Array(DeviceFastState.SIZE);
    st[DeviceFastState.ENABLED] = 1;
    st[DeviceFastState.GUEST_IDLE] = 1;
    st[DeviceFastState.HOST_OUT_IDLE] = 1;
    st[DeviceFastState.CONTEXT_READY] = 1;
    st[DeviceFastState.HDR_SIZE] = 16;
    st[DeviceFastState.RING_BYTES] = 4096;
    const notices: number[] = [];
    const fast = new native.DeviceFastPath(guestFd, hostFd, st, (what) => {
      notices.push(what);
    });
    fast.setRing(new Uint8Array(4096));
    const jsWakeups = { guest: 0, host: 0 };
    const guestWatcher = native.createWatcher(guestFd, () => {
      jsWakeups.guest++;
    });
    const hostWatcher = native.createWatcher(hostFd, () => {
      jsWakeups.host++;
    });
    guestWatcher.setFastPath?.(fast, 0);
    hostWatcher.setFastPath?.(fast, 1);
    guestWatcher.start(POLL_READABLE);
    hostWatcher.start(POLL_READABLE);
    // Both pokes' arrival, and the timer's run, in ms after the first poke was read.
    let firstPoke = -1;
    let secondPoke = -1;
    let timerAt = -1;
    let statsAtFirstPoke = native.inlineLoopStats();
    const pokeWatcher = native.createWatcher(pokeFd, () => {
      const got = new Uint8Array(2);
      const n = native.read(pokeFd, got, 0, 2);
      for (let i = 0; i < n; i++) {
        if (got[i] === 0x31) {
          firstPoke = performance.now();
          statsAtFirstPoke = native.inlineLoopStats();
          setTimeout(() => {
            timerAt = performance.now() - firstPoke;
          }, TIMER_MS);
        } else {
          secondPoke = performance.now() - firstPoke;
        }
      }
    });
    pokeWatcher.start(POLL_READABLE);
    const before = native.inlineLoopStats();
    const child = spawn("python3", ["-c", PEER], {
      stdio: ["ignore", "pipe", "inherit", guestPeer, hostPeer, pokePeer],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    try {
      const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
      const exitedAt = performance.now() - firstPoke;
      const after = native.inlineLoopStats();
      expect(code).toBe(0);
      const pingPongs = Number(out.trim());
      expect(pingPongs, "the peer's ping-pongs").toBeGreaterThan(100);
      // Every frame was the fast path's, and almost every one was handled inside a stay.
      expect(notices).toEqual([]);
      expect(jsWakeups).toEqual({ guest: 0, host: 0 });
      expect(after.enabled).toBe(true);
      expect(after.wakeups - before.wakeups).toBeGreaterThanOrEqual(pingPongs / 2);
      // The thread was given back for the timer when due (libuv's timeout, while the stay waited for a quiet peer),
      // and for the second poke when it came (libuv's epoll fd readable, while the peer kept the fast path busy).
      expect(firstPoke, "the first poke was read").toBeGreaterThan(0);
      expect(
        after.stays - statsAtFirstPoke.stays,
        `stays after the first poke (${JSON.stringify(after)})`,
      ).toBeGreaterThanOrEqual(2);
      expect(timerAt, "the timer ran").toBeGreaterThanOrEqual(TIMER_MS - 1);
      expect(timerAt, "the timer ran when due").toBeLessThan(TIMER_MS + LATE_MS);
      expect(secondPoke, "the second poke was read when it came").toBeLessThan(
        SECOND_POKE_S * 1000 + LATE_MS,
      );
      expect(exitedAt).toBeGreaterThan(SECOND_POKE_S * 1000 + LATE_MS);
    } finally {
      child.kill();
      for (const w of [guestWatcher, hostWatcher, pokeWatcher]) w.close();
      fast.detach();
      for (const fd of [guestPeer, guestFd, hostFd, hostPeer, pokePeer, pokeFd]) native.close(fd);
    }
  });
});
