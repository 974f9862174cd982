// Raw xdg toplevels made request by request (as a hostile guest would, with no toolkit), and sway's view of them.
import { native } from "../../src/native.ts";
import type { Compositor } from "./compositor.ts";
import { run } from "./processes.ts";
import { WaylandTestClient } from "./wayland-test-client.ts";

/** A view in `swaymsg -t get_tree`: the fields the tests read. */
export interface TreeNode {
  name?: string | null;
  app_id?: string | null;
  pid?: number;
  /** The container's box in the output layout. */
  rect?: { x: number; y: number; width: number; height: number };
  nodes?: TreeNode[];
  floating_nodes?: TreeNode[];
}

/** Every Wayland view sway shows (nodes with an app_id field), tiled and floating. */
export async function views(sway: Compositor): Promise<TreeNode[]> {
  const r = await run("swaymsg", ["-t", "get_tree", "-r"], { env: sway.env, timeoutMs: 5000 });
  if (r.code !== 0) throw new Error(`swaymsg failed: ${r.stderr.toString()}`);
  const out: TreeNode[] = [];
  const walk = (n: TreeNode): void => {
    if (n.app_id !== undefined) out.push(n);
    for (const c of [...(n.nodes ?? []), ...(n.floating_nodes ?? [])]) walk(c);
  };
  walk(JSON.parse(r.stdout.toString()) as TreeNode);
  return out;
}

/** A raw toplevel and the ids a test needs. */
export interface RawToplevel {
  c: WaylandTestClient;
  reg: number;
  surface: number;
  toplevel: number;
}

/**
 * A raw toplevel with a 32x32 shm buffer on `socketPath`. `setup` runs after the registry is read and before the
 * surface exists (bind the seat and devices there, so the focus the window gets on mapping reaches them).
 */
export async function rawToplevel(
  socketPath: string,
  title: string | null,
  appId: string | null,
  setup: (c: WaylandTestClient, reg: number) => void = () => {},
): Promise<RawToplevel> {
  const c = WaylandTestClient.connect(socketPath);
  const reg = await c.getRegistry();
  setup(c, reg);
  const comp = c.bind(reg, "wl_compositor", 4);
  const shm = c.bind(reg, "wl_shm", 1);
  const wm = c.bind(reg, "xdg_wm_base", 1);
  const surface = c.newId();
  c.request(comp, "wl_compositor", "create_surface", (w) => w.uint(surface));
  const xs = c.newId();
  c.request(wm, "xdg_wm_base", "get_xdg_surface", (w) => w.uint(xs).uint(surface));
  const tl = c.newId();
  c.request(xs, "xdg_surface", "get_toplevel", (w) => w.uint(tl));
  if (title !== null) c.request(tl, "xdg_toplevel", "set_title", (w) => w.string(title));
  if (appId !== null) c.request(tl, "xdg_toplevel", "set_app_id", (w) => w.string(appId));
  c.request(surface, "wl_surface", "commit", () => {});
  const cfg = await c.waitFor((e) => e.objectId === xs && e.name === "configure");
  c.request(xs, "xdg_surface", "ack_configure", (w) => w.uint(cfg.args[0] as number));
  const size = 32 * 32 * 4;
  const memfd = native.memfdCreate("attacker-buffer", 0);
  const pool = c.newId();
  const buffer = c.newId();
  try {
    native.ftruncate(memfd, size);
    c.request(shm, "wl_shm", "create_pool", (w) => w.uint(pool).fd(memfd).int(size), [memfd]);
    c.request(pool, "wl_shm_pool", "create_buffer", (w) =>
      w.uint(buffer).int(0).int(32).int(32).int(128).uint(0),
    );
  } finally {
    native.close(memfd);
  }
  c.request(surface, "wl_surface", "attach", (w) => w.uint(buffer).int(0).int(0));
  c.request(surface, "wl_surface", "commit", () => {});
  await c.roundtrip();
  return { c, reg, surface, toplevel: tl };
}
