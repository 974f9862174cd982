// Native readiness watchers (uv_poll): fire on readable/writable/disconnect, stop, and close cleanly.
import { describe, expect, it } from "vitest";
import { native, POLL_DISCONNECT, POLL_READABLE, POLL_WRITABLE } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

function nextEvent(fd: number, events: number): Promise<{ status: number; events: number }> {
  return new Promise((resolve) => {
    const w = native.createWatcher(fd, (status, ev) => {
      w.close();
      resolve({ status, events: ev });
    });
    w.start(events);
  });
}

describe("createWatcher", () => {
  it("fires READABLE once bytes arrive, and not before", async () => {
    const [a, b] = native.socketpair();
    try {
      let fired = 0;
      const w = native.createWatcher(b, () => {
        fired++;
      });
      w.start(POLL_READABLE);
      await new Promise((r) => setTimeout(r, 30));
      expect(fired).toBe(0);
      w.close();
      const p = nextEvent(b, POLL_READABLE);
      native.write(a, new Uint8Array([1]), 0, 1);
      const ev = await p;
      expect(ev.status).toBe(0);
      expect(ev.events & POLL_READABLE).toBe(POLL_READABLE);
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it("fires WRITABLE on an empty socket and DISCONNECT when the peer closes", async () => {
    const [a, b] = native.socketpair();
    try {
      expect((await nextEvent(a, POLL_WRITABLE)).events & POLL_WRITABLE).toBe(POLL_WRITABLE);
      const p = nextEvent(b, POLL_READABLE | POLL_DISCONNECT);
      native.close(a);
      const ev = await p;
      expect(ev.events & (POLL_DISCONNECT | POLL_READABLE)).not.toBe(0);
    } finally {
      native.close(b);
    }
  });

  it("stop() silences it, start() resumes, close() is idempotent and start after close throws", async () => {
    const [a, b] = native.socketpair();
    try {
      let fired = 0;
      const w = native.createWatcher(b, () => {
        fired++;
      });
      w.start(POLL_READABLE);
      w.stop();
      native.write(a, new Uint8Array([1]), 0, 1);
      await new Promise((r) => setTimeout(r, 30));
      expect(fired).toBe(0);
      w.start(POLL_READABLE);
      await new Promise((r) => setTimeout(r, 30));
      expect(fired).toBeGreaterThan(0);
      w.close();
      w.close();
      expect(() => w.start(POLL_READABLE)).toThrow(/closed/);
      const after = fired;
      await new Promise((r) => setTimeout(r, 30));
      expect(fired).toBe(after);
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it("ref() and unref() work on an open watcher", async () => {
    const [a, b] = native.socketpair();
    try {
      const w = native.createWatcher(b, () => {});
      w.unref();
      w.ref();
      w.close();
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it("refuses an fd that cannot be polled (a regular file) with a SystemError", () => {
    const fd = native.memfdCreate("crossway-poll", 0);
    try {
      expect(() => native.createWatcher(fd, () => {})).toThrow(expect.objectContaining({ code: "EPERM" }));
    } finally {
      native.close(fd);
    }
  });
});
