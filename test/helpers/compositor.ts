// Test-side entry to the Compositor type shared by weston.ts and sway.ts; the code lives in src/harness.
export type { Compositor } from "../../src/harness/compositor.ts";
