// Test entry point of the device + guest starter (the code lives in src/harness, which the demo uses too).
export * from "../../src/harness/crossway-stack.ts";
