// The VM with `crossway guest --device virtgpu` running in it: what the VM tier, `demo --vm` and `vm-run` share.
import type { Compositor } from "./compositor.ts";
import { CHECKOUT, type GuestProcess, prepareVm, startVm, type Vm } from "./vm.ts";

/** The guest's Wayland display served by crossway guest. */
export const GUEST_DISPLAY = "wayland-cw";
/** Guest environment for clients of crossway guest. */
export const GUEST_ENV = { XDG_RUNTIME_DIR: "/run/user/0", WAYLAND_DISPLAY: GUEST_DISPLAY, LANG: "C.UTF-8" };
/** Node under TCG loads crossway's TypeScript in tens of seconds on a loaded machine; its printed line is readiness. */
const GUEST_PROXY_START_TIMEOUT_MS = 240_000;

/** A booted VM with crossway guest running in it. */
export interface VmStack {
  vm: Vm;
  proxy: GuestProcess;
  /** Milliseconds from spawning crossway guest in the guest to its listening line. */
  proxyStartMs: number;
  stop(): Promise<void>;
}

/**
 * Builds or reuses the VM, boots it with cross-domain to `host`'s socket, starts `crossway guest --device virtgpu`
 * in it and waits for its "listening" line. Progress goes to `say`.
 */
export async function startVmStack(
  host: Pick<Compositor, "socketPath">,
  say: (line: string) => void,
  extraArgs: readonly string[] = [],
): Promise<VmStack> {
  const t0 = Date.now();
  const env = prepareVm(say);
  say(`VM pieces ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (QEMU ${env.qemu})`);
  const vm = await startVm(env, { wayland: host.socketPath, log: say });
  try {
    const t1 = Date.now();
    const proxy = await vm.spawn(
      [
        "/usr/bin/node",
        `${CHECKOUT}/bin/crossway.js`,
        "guest",
        "--device",
        "virtgpu",
        "--socket",
        GUEST_DISPLAY,
        ...extraArgs,
      ],
      { env: { XDG_RUNTIME_DIR: "/run/user/0", CROSSWAY_LOG: process.env.CROSSWAY_LOG ?? "info" } },
    );
    await proxy.waitLine(
      /^crossway guest: listening on/,
      GUEST_PROXY_START_TIMEOUT_MS,
      "crossway guest in the VM",
    );
    const proxyStartMs = Date.now() - t1;
    say(`crossway guest listening in the VM after ${(proxyStartMs / 1000).toFixed(1)} s`);
    return { vm, proxy, proxyStartMs, stop: () => vm.stop() };
  } catch (err) {
    await vm.stop();
    throw err;
  }
}
