// Test-side entry to the process harness (requireCommand, run, spawnTracked); the code lives in src/harness.
export * from "../../src/harness/processes.ts";
