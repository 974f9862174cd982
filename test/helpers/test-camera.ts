// The fake camera of environment.md §4: a live GStreamer Video/Source node named testcam, solid red RGBx frames.
import { testCameraArgs } from "../../src/harness/pipewire.ts";
import type { PipeWireStack } from "./pipewire.ts";
import { pwDump } from "./pipewire-daemon.ts";
import { spawnTracked, type TrackedProcess, waitFor } from "./processes.ts";

export const CAMERA_NODE = "testcam";
export const CAMERA_W = 320;
export const CAMERA_H = 240;

/** Starts the camera as a client of `stack` (unfiltered) and waits until its node is in the daemon's graph. */
export async function startTestCamera(stack: PipeWireStack): Promise<TrackedProcess> {
  const camera = spawnTracked(
    CAMERA_NODE,
    "gst-launch-1.0",
    testCameraArgs({
      node: CAMERA_NODE,
      width: CAMERA_W,
      height: CAMERA_H,
      fps: 30,
      role: "Camera",
      description: "TestCam",
    }),
    { env: stack.env },
  );
  try {
    // Ready once the node and its output port are both in the graph: a filter that sets up its view between the
    // two would not know the port yet (it then refuses the consumer's bind: "unknown-object").
    await waitFor(
      "the testcam node and its port",
      async () => {
        const objs = await pwDump(stack.env);
        const node = objs.find((o) => o.type === "Node" && o.props["node.name"] === CAMERA_NODE);
        if (node === undefined) return undefined;
        return objs.some((o) => o.type === "Port" && Number(o.props["node.id"]) === node.id)
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, abort: () => (camera.running ? undefined : "the camera exited") },
    );
  } catch (err) {
    await camera.stop();
    throw err;
  }
  return camera;
}
