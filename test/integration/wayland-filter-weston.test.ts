// The host-side Wayland filter against headless weston with the emulated device in front: the same raw-wire attacks
// as against sway (test/helpers/wayland-filter-attacks.ts). Weston's headless backend has no seat, so clipboard and
// tag checks (swaymsg get_tree) live in the sway file only.
import { afterAll, beforeAll, describe } from "vitest";
import type { Compositor } from "../helpers/compositor.ts";
import { tempDir } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import {
  type FilteredVm,
  filterAttackTests,
  STRICT_POLICY,
  startFilteredVm,
} from "../helpers/wayland-filter-attacks.ts";
import { startWeston } from "../helpers/weston.ts";

useFdLeakCheck();

describe("crossway wayland-filter in front of headless weston (strict policy)", () => {
  let weston: Compositor;
  let tmp: ReturnType<typeof tempDir>;
  let vm: FilteredVm;

  beforeAll(async () => {
    tmp = tempDir("crossway-wlfilter-weston-");
    weston = await startWeston();
    vm = await startFilteredVm(weston, tmp.dir, "a", STRICT_POLICY);
  });

  afterAll(async () => {
    await vm?.stop();
    await weston?.stop();
    tmp?.remove();
  });

  filterAttackTests(() => ({ compositor: weston, vm }));
});
