// linux-dmabuf on the emulated device: a host that offers zwp_linux_dmabuf_v1 still does not get it advertised,
// because the emulated device's host allocator has no real dmabufs (caps.supportsDmabuf = 0).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Compositor } from "../../src/harness/compositor.ts";
import { makePeerDirs, type PeerDirs } from "../../src/harness/compositor.ts";
import { AGAIN, MAX_FDS_PER_MSG, type NativeWatcher, native, POLL_READABLE } from "../../src/native.ts";
import { NEED_MORE } from "../../src/wire/wayland/framer.ts";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { ProtocolRegistry } from "../../src/wire/wayland/protocol-registry.ts";
import { Direction, WireConnection } from "../../src/wire/wayland/wire-connection.ts";
import { type CrosswayStack, startCrosswayStack } from "../helpers/crossway-stack.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";

useFdLeakCheck();

/**
 * A scripted host compositor: answers get_registry with a fixed list of globals and sync with done. No real
 * compositor on these machines offers linux-dmabuf (no DRM), so this one stands in for a host that does.
 */
function startScriptedHost(
  path: string,
  globals: [string, number][],
): { connections(): number; close(): void } {
  const registry = ProtocolRegistry.fromGenerated();
  const listenFd = native.unixListen(path, 8);
  const clients: Array<{ fd: number; w: NativeWatcher }> = [];
  const listener = native.createWatcher(listenFd, () => {
    for (;;) {
      const fd = native.unixAccept(listenFd);
      if (fd === AGAIN) return;
      const conn = new WireConnection(registry);
      const buf = new Uint8Array(4096);
      const fds = new Int32Array(MAX_FDS_PER_MSG + 1);
      const w = native.createWatcher(fd, () => {
        const n = native.recvmsg(fd, buf, 0, buf.length, fds);
        for (let i = 0; i < (fds[0] as number); i++) native.close(fds[1 + i] as number);
        if (n === AGAIN) return;
        if (n === 0) {
          w.stop();
          w.close();
          native.close(fd);
          clients.splice(
            clients.findIndex((c) => c.fd === fd),
            1,
          );
          return;
        }
        conn.framer(Direction.REQUEST).push(buf, 0, n);
        const out = new MessageWriter();
        for (;;) {
          const m = conn.next(Direction.REQUEST);
          if (m === NEED_MORE) break;
          const name = m.desc?.name;
          if (name === "get_registry") {
            globals.forEach(([iface, version], i) => {
              out
                .begin(m.args.id(0), 0)
                .uint(i + 1)
                .string(iface)
                .uint(version)
                .end();
            });
          } else if (name === "sync") {
            out.begin(m.args.id(0), 0).uint(1).end();
            out.begin(1, 1).uint(m.args.id(0)).end(); // wl_display.delete_id
          }
        }
        if (out.length > 0) native.sendmsg(fd, out.bytes(), 0, out.length, null);
      });
      w.start(POLL_READABLE);
      clients.push({ fd, w });
    }
  });
  listener.start(POLL_READABLE);
  return {
    connections: () => clients.length,
    close: () => {
      listener.stop();
      listener.close();
      native.close(listenFd);
      for (const c of clients) {
        c.w.stop();
        c.w.close();
        native.close(c.fd);
      }
    },
  };
}

describe("linux-dmabuf with the emulated device", () => {
  let dirs: PeerDirs;
  let host: ReturnType<typeof startScriptedHost>;
  let stack: CrosswayStack;

  beforeAll(async () => {
    dirs = makePeerDirs("dmabuf-host");
    const path = `${dirs.base}/host.sock`;
    host = startScriptedHost(path, [
      ["wl_compositor", 4],
      ["zwp_linux_dmabuf_v1", 4],
      ["wl_shm", 1],
    ]);
    const fake = { socketPath: path } as Compositor;
    // No spare channel: the host runs in this process, so its connections are among the fds the leak check counts,
    // and a spare's connection would be a new one after the test.
    stack = await startCrosswayStack(fake, { logLevel: "debug", guestArgs: ["--spare-channels", "0"] });
  });

  afterAll(async () => {
    await stack?.stop();
    host?.close();
    dirs?.remove();
  });

  it("is hidden even though the host offers it, and the rest is shown", async () => {
    const c = WaylandTestClient.connect(stack.socketPath);
    try {
      await c.getRegistry();
      const names = [...c.globals.values()].map((g) => `${g.iface} v${g.version}`).sort();
      expect(names).toEqual(["wl_compositor v4", "wl_shm v1"]);
    } finally {
      c.close();
    }
    // The device hangs up its host connection once the guest closes the client's channel.
    const deadline = Date.now() + 30_000;
    while (host.connections() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(host.connections()).toBe(0);
    await stack.waitForGuestLog("the transport cannot carry DMA-BUFs");
  });
});
