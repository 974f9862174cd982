// A steady stream of pass-through requests and round trips for fast-path tests: a region, then rounds of three
// wl_region.add and a wl_display.sync, each awaited.
import type { WaylandTestClient } from "./wayland-test-client.ts";

/** Creates a region on `compositor` (a bound wl_compositor) and plays `rounds` rounds on it. */
export async function regionRounds(c: WaylandTestClient, compositor: number, rounds: number): Promise<void> {
  const region = c.newId();
  c.request(compositor, "wl_compositor", "create_region", (w) => w.uint(region));
  await c.roundtrip();
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < 3; k++) c.request(region, "wl_region", "add", (w) => w.int(i).int(k).int(1).int(1));
    await c.roundtrip();
  }
}
