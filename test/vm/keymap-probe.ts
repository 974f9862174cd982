// Run as a guest (or host) client in the VM tier: binds wl_seat, asks for a keyboard and prints what its keymap fd
// holds as one JSON line ({format, size, sha256, head}), so the host can compare it with the compositor's own.
// usage: node --import tsx test/vm/keymap-probe.ts   (WAYLAND_DISPLAY/XDG_RUNTIME_DIR or WAYLAND_SOCKET_PATH)
import { createHash } from "node:crypto";
import { join } from "node:path";
import { native } from "../../src/native.ts";
import { WaylandTestClient } from "../helpers/wayland-test-client.ts";

const path =
  process.env.WAYLAND_SOCKET_PATH ??
  join(process.env.XDG_RUNTIME_DIR ?? "/run/user/0", process.env.WAYLAND_DISPLAY ?? "wayland-0");
const c = WaylandTestClient.connect(path);
try {
  const reg = await c.getRegistry();
  const seat = c.bind(reg, "wl_seat", 7);
  const kbd = c.newId();
  c.request(seat, "wl_seat", "get_keyboard", (w) => w.uint(kbd));
  const ev = await c.waitFor((e) => e.objectId === kbd && e.name === "keymap");
  const [format, fd, size] = ev.args as [number, number, number];
  // wl_keyboard v7+: a client maps the keymap MAP_PRIVATE, read-only.
  const ab = native.mmap(fd, size, 1, 2, 0);
  const bytes = new Uint8Array(ab, 0, size).slice();
  native.munmap(ab);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const head = new TextDecoder().decode(bytes.subarray(0, 10));
  process.stdout.write(`${JSON.stringify({ format, size, sha256, head })}\n`);
} finally {
  c.close();
}
