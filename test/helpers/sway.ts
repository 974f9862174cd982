// Test-side entry to startSway (headless, pixman, as user wltest); the code lives in src/harness.
export { SWAY_USER, type SwayOptions, startSway } from "../../src/harness/sway.ts";
