// The fake camera of environment.md §4: a live GStreamer Video/Source node named testcam, solid red RGBx frames.
import { testCameraArgs } from "../../src/harness/pipewire.ts";
import type { PipeWireStack } from "./pipewire.ts";
import { waitForNodeWithPort } from "./pipewire-daemon.ts";
import { spawnTracked, type TrackedProcess } from "./processes.ts";

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
    await waitForNodeWithPort(stack.env, CAMERA_NODE, {
      timeoutMs: 60_000,
      abort: () => (camera.running ? undefined : "the camera exited"),
    });
  } catch (err) {
    await camera.stop();
    throw err;
  }
  return camera;
}
