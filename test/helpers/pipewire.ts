// Test-side entry to startPipeWire (dbus-daemon + pipewire + wireplumber + null sink); the code lives in src/harness.
export { type PipeWireStack, startPipeWire, TEST_SINK } from "../../src/harness/pipewire.ts";
