// Test-side entry to startWeston (headless, pixman, --debug); the code lives in src/harness.
export { waitForWaylandRoundtrip, waylandRoundtrip } from "../../src/harness/wayland-ready.ts";
export { startWeston, type WestonOptions } from "../../src/harness/weston.ts";
