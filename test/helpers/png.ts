// Test-side entry to the PNG checks (count a colour, diff two images); the code lives in src/harness.
export * from "../../src/harness/png.ts";
