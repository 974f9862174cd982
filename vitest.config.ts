// Vitest configuration: unit tests in parallel, then integration tests one file at a time (they own real peers).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Generous: tests wait on protocol answers with named deadlines of their own (up to 60 s on a loaded machine);
    // these only catch a test that hangs outright.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
    // Stops (and fails on) any peer process a test file left running.
    setupFiles: ["test/helpers/peer-guard.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Real compositors, PipeWire and clients are CPU-heavy on a 2-core machine: one file at a time, after the
        // unit tests, so timing-sensitive peers never compete with the parallel batch.
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // The VM tier (issue 11): QEMU + rutabaga under TCG, one boot per file; slow, so last and one at a time.
        // CROSSWAY_SKIP_VM=1 skips it (and says so); `npm run test:vm` runs only this.
        extends: true,
        test: {
          name: "vm",
          include: ["test/vm/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 900_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
