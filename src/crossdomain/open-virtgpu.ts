// Turns a `--device` argument ("emulated:PATH", "virtgpu", "virtgpu:NODE") into a fresh VirtGpu context.
import { CrosswayError } from "../errors.ts";
import { openEmulatedVirtGpu } from "./emulated-virtgpu.ts";
import { openKernelVirtGpu } from "./kernel-virtgpu.ts";
import type { VirtGpu } from "./virtgpu.ts";

/**
 * Opens one VirtGpu context per call (one per proxied connection, §1): "emulated:PATH" connects to `crossway device`
 * at PATH; "virtgpu" finds the virtio_gpu node by driver name; "virtgpu:NODE" opens NODE.
 */
export function openVirtGpu(spec: string): VirtGpu {
  if (spec.startsWith("emulated:") && spec.length > "emulated:".length) {
    return openEmulatedVirtGpu(spec.slice("emulated:".length));
  }
  if (spec === "virtgpu") return openKernelVirtGpu();
  if (spec.startsWith("virtgpu:") && spec.length > "virtgpu:".length) {
    return openKernelVirtGpu({ node: spec.slice("virtgpu:".length) });
  }
  throw new CrosswayError("CW_USAGE", `device '${spec}' must be emulated:PATH, virtgpu or virtgpu:NODE`, {
    value: spec,
  });
}
