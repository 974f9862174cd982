// Vitest setup file: after each test file, any tracked peer process still running is stopped and reported as a failure.
import { afterAll, expect } from "vitest";
import { removeLeftoverPeerDirs } from "../../src/harness/compositor.ts";
import { liveTracked } from "../../src/harness/processes.ts";

afterAll(async () => {
  const left = liveTracked();
  // Stop first, so that a test that forgot its finally block never leaves a compositor running on the machine.
  await Promise.all(left.map((p) => p.stop()));
  removeLeftoverPeerDirs();
  expect(
    left.map((p) => `${p.name} (pid ${p.pid})`),
    "processes this test file started and did not stop",
  ).toEqual([]);
});
