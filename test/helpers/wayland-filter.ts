// Test entry point of the wayland-filter starter (the code lives in src/harness, which the bench uses too).
export * from "../../src/harness/wayland-filter.ts";
