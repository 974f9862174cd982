// Two watchers on one fd (libuv refuses a second uv_poll on an fd with EEXIST): both get their events.
import { describe, expect, it } from "vitest";
import { createSharedWatcher } from "../../../src/fd/shared-watcher.ts";
import { native, POLL_READABLE, POLL_WRITABLE } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("createSharedWatcher", () => {
  it("lets a reader and a writer watch the same socket, each for its own events", async () => {
    const [a, b] = native.socketpair();
    try {
      // A plain second native watcher on one fd is what libuv refuses.
      // (libuv registers a started poll with the loop on its next iteration; from then on the fd is taken.)
      const first = native.createWatcher(a, () => {});
      first.start(POLL_READABLE);
      await new Promise((r) => setTimeout(r, 20));
      expect(() => native.createWatcher(a, () => {})).toThrow(/EEXIST/);
      first.close();
      await new Promise((r) => setTimeout(r, 20));

      const seen: string[] = [];
      const reader = createSharedWatcher(a, () => seen.push("read"));
      const writer = createSharedWatcher(a, () => {
        seen.push("write");
        writer.stop();
      });
      reader.start(POLL_READABLE);
      writer.start(POLL_WRITABLE);
      native.write(b, new Uint8Array([1]), 0, 1);
      for (let i = 0; i < 50 && !(seen.includes("read") && seen.includes("write")); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(seen).toContain("write");
      expect(seen).toContain("read");
      reader.close();
      writer.close();
      // Once every handle is closed the fd can be watched afresh.
      const again = native.createWatcher(a, () => {});
      again.close();
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});
