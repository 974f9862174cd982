// VM tier helpers: the VM stack (src/harness/vm-stack.ts) with the tier's progress printer, and frame counting.
import type { Compositor } from "../../src/harness/compositor.ts";
import { startVmStack as start, type VmStack } from "../../src/harness/vm-stack.ts";

export { GUEST_SHARE, type GuestProcess, type Vm, vmSkipped } from "../../src/harness/vm.ts";
export { GUEST_DISPLAY, GUEST_ENV, type VmStack } from "../../src/harness/vm-stack.ts";

/** Prints a progress line of the VM tier (the tier says what it did: build, boot, each check). */
export function say(line: string): void {
  process.stdout.write(`[vm] ${line}\n`);
}

/** Boots the VM against `host` with crossway guest in it, printing progress. */
export function startVmStack(host: Compositor, extraArgs: readonly string[] = []): Promise<VmStack> {
  return start(host, say, extraArgs);
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
