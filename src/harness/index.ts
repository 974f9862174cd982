// The real-peer harness: start headless weston/sway and a private PipeWire, run clients, always stop them.
export type { Compositor } from "./compositor.ts";
export { type PipeWireStack, startPipeWire, TEST_SINK } from "./pipewire.ts";
export { countColor, diffPngs, type Image, pixelAt, type Rgb, readPng } from "./png.ts";
export * from "./processes.ts";
export { SWAY_USER, type SwayOptions, startSway } from "./sway.ts";
export { type WaylandRoundtrip, waitForWaylandRoundtrip, waylandRoundtrip } from "./wayland-ready.ts";
export { startWeston, type WestonOptions } from "./weston.ts";
