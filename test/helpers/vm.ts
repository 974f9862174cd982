// VM tier helpers: boot the VM once per file against a host compositor and run `crossway guest --device virtgpu`
// inside it; the harness itself lives in src/harness/vm.ts.
import { CHECKOUT, type GuestProcess, prepareVm, startVm, type Vm } from "../../src/harness/vm.ts";
import type { Compositor } from "./compositor.ts";

export { GUEST_SHARE, type GuestProcess, type Vm, vmSkipped } from "../../src/harness/vm.ts";

/** The guest's Wayland display served by crossway guest. */
export const GUEST_DISPLAY = "wayland-cw";
/** Guest environment for clients of crossway guest. */
export const GUEST_ENV = { XDG_RUNTIME_DIR: "/run/user/0", WAYLAND_DISPLAY: GUEST_DISPLAY, LANG: "C.UTF-8" };
/** Node under TCG loads crossway's TypeScript in ~10-40 s on a loaded machine; the ready line is the readiness. */
const GUEST_PROXY_START_TIMEOUT_MS = 240_000;

/** A booted VM with crossway guest running in it. */
export interface VmStack {
  vm: Vm;
  proxy: GuestProcess;
  /** Milliseconds from spawning crossway guest in the guest to its listening line. */
  proxyStartMs: number;
  stop(): Promise<void>;
}

/** Prints a progress line of the VM tier (the tier says what it did: build, boot, each check). */
export function say(line: string): void {
  process.stdout.write(`[vm] ${line}\n`);
}

/** Builds or reuses the VM, boots it against `host`, starts crossway guest --device virtgpu, waits for its line. */
export async function startVmStack(host: Compositor, extraArgs: readonly string[] = []): Promise<VmStack> {
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
    return {
      vm,
      proxy,
      proxyStartMs,
      async stop() {
        await vm.stop();
      },
    };
  } catch (err) {
    await vm.stop();
    throw err;
  }
}

/** Counts frame callbacks and buffer releases in a WAYLAND_DEBUG=1 log, and lines that look like errors. */
export function frameStats(log: string): { done: number; release: number; errors: string } {
  return {
    done: (log.match(/wl_callback@\d+\.done/g) ?? []).length,
    release: (log.match(/wl_buffer@\d+\.release\(\)/g) ?? []).length,
    errors: log
      .split("\n")
      .filter((l) => /error|failed/i.test(l))
      .join("\n"),
  };
}
