// Host-side classification of received fds into cross-domain items, per flavour (crossdomain.md §3.3 table).
import { describe, expect, it } from "vitest";
import { classifyHostFd } from "../../../src/crossdomain/host-fd-kind.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("classifyHostFd", () => {
  it("memfd → blob of its size; eventfd → 5 (crosvm) or 6 (libkrun); pipe ends; sockets per flavour", () => {
    const mem = native.memfdCreate("k", 0);
    native.ftruncate(mem, 1234);
    const ev = native.eventfd(0, 0);
    const [r, w] = native.pipe2();
    const [s1, s2] = native.socketpair();
    try {
      expect(classifyHostFd(mem, "crosvm")).toEqual({ ok: true, kind: "blob", type: 1, size: 1234 });
      expect(classifyHostFd(ev, "crosvm")).toMatchObject({ kind: "eventfd", type: 5 });
      expect(classifyHostFd(ev, "libkrun")).toMatchObject({ kind: "eventfd", type: 6 });
      expect(classifyHostFd(w, "libkrun")).toMatchObject({ kind: "write-pipe", type: 4 });
      expect(classifyHostFd(r, "crosvm")).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/read end of a pipe/),
      });
      expect(classifyHostFd(s1, "crosvm")).toMatchObject({ kind: "socket", type: 7 });
      expect(classifyHostFd(s1, "libkrun")).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/InvalidCrossDomainItemType/),
      });
    } finally {
      for (const fd of [mem, ev, r, w, s1, s2]) native.close(fd);
    }
  });
});
