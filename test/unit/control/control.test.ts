// Control sockets: the status table, Reloadable's keep-the-old-on-error rule, and the server's answers to bad requests.

import { mkdtempSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { requestStatus } from "../../../src/control/control-client.ts";
import { startControlServer } from "../../../src/control/control-server.ts";
import { readMemory } from "../../../src/control/memory-reading.ts";
import { Reloadable } from "../../../src/control/reload.ts";
import { formatAge, formatBytes, formatStatus } from "../../../src/control/status-format.ts";
import type { StatusReport } from "../../../src/control/status-report.ts";
import { componentLogger } from "../../../src/log.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const report: StatusReport = {
  command: "guest",
  pid: 42,
  uptimeSec: 75,
  policyFile: "/etc/crossway/guest.json",
  policyGeneration: 3,
  connections: [
    {
      tag: "c1",
      appId: "org.example.Long",
      title: "a\nb",
      objects: 12,
      shmBytes: 8 * 1024 * 1024,
      queuedBytes: 0,
      ageMs: 3_723_000,
      refusals: 7,
      policyGeneration: 2,
    },
    {
      tag: "c2",
      objects: 3,
      shmBytes: 1536,
      queuedBytes: 100,
      ageMs: 5_000,
      refusals: 0,
      policyGeneration: 3,
    },
  ],
  inlineLoop: { enabled: true, stays: 0, wakeups: 0, skipped: 0, timers: 0 },
  memory: {
    rssBytes: 140 * 1024 * 1024,
    heapUsedBytes: 20 * 1024 * 1024,
    heapTotalBytes: 34 * 1024 * 1024,
    externalBytes: 3 * 1024 * 1024,
    arrayBuffersBytes: 1536,
    gcForced: true,
  },
};

describe("formatStatus", () => {
  it("one header line, aligned columns, control characters escaped", () => {
    expect(formatStatus(report).split("\n")).toEqual([
      "crossway guest (pid 42, up 1m15s), policy /etc/crossway/guest.json generation 3, 2 connections",
      "memory: RSS 140 MiB, JS heap 20 MiB of 34 MiB, buffers 1.5 KiB (after a full GC)",
      "TAG  APP_ID            TITLE  OBJECTS  SHM      QUEUED  AGE    REFUSED  GEN",
      "c1   org.example.Long  a?b    12       8.0 MiB  0 B     1h02m  7        2",
      "c2   -                 -      3        1.5 KiB  100 B   5s     0        3",
    ]);
  });

  it("units", () => {
    expect([formatBytes(1023), formatBytes(10 * 1024), formatBytes(3 * 1024 ** 3)]).toEqual([
      "1023 B",
      "10 KiB",
      "3.0 GiB",
    ]);
    expect([formatAge(59_999), formatAge(60_000), formatAge(7_260_000)]).toEqual(["59s", "1m00s", "2h01m"]);
  });
});

describe("Reloadable", () => {
  it("installs a good load with the next generation and keeps the old one when the load throws", () => {
    let next: () => string = () => "two";
    const applied: Array<[string, number]> = [];
    const r = new Reloadable(
      "one",
      () => next(),
      (v, g) => applied.push([v, g]),
    );
    expect(r.reload()).toEqual({ ok: true, generation: 2 });
    next = () => {
      throw new Error("guest.json: unknown key 'x'");
    };
    expect(r.reload()).toEqual({ ok: false, error: "guest.json: unknown key 'x'", generation: 2 });
    expect(r.current).toBe("two");
    expect(applied).toEqual([["two", 2]]);
  });
});

describe("readMemory", () => {
  it("with gc, garbage is collected before the reading; what is still referenced is counted", () => {
    // 40 MB of unreachable objects: a reading after a forced GC must not count them, one that keeps them must.
    let garbage: object[] | null = Array.from({ length: 400_000 }, (_, i) => ({ i, s: `x${i}` }));
    const withGarbage = readMemory(false).heapUsedBytes;
    const kept = garbage;
    const whileKept = readMemory(true);
    expect(whileKept.gcForced).toBe(true);
    expect(whileKept.heapUsedBytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(kept.length).toBe(400_000);
    garbage = null;
    kept.length = 0;
    const after = readMemory(true);
    expect(
      after.heapUsedBytes,
      `heap ${withGarbage} with garbage, ${after.heapUsedBytes} after GC`,
    ).toBeLessThan(whileKept.heapUsedBytes - 20 * 1024 * 1024);
    expect(after.rssBytes).toBeGreaterThan(0);
  });
});

describe("control server", () => {
  let dir = "";
  afterEach(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
    dir = "";
  });

  async function ask(path: string, request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let out = "";
      const s = connect(path, () => s.write(request));
      s.setEncoding("utf8");
      s.on("data", (d: string) => {
        out += d;
      });
      s.on("end", () => {
        s.destroy();
        resolve(out);
      });
      s.on("error", reject);
    });
  }

  it("answers status with the report, only to its owner (0600), and names what is wrong with other requests", async () => {
    dir = mkdtempSync(join(tmpdir(), "cw-control-"));
    const path = join(dir, "c.ctl");
    const asked: boolean[] = [];
    const server = await startControlServer(
      path,
      (request) => {
        asked.push(request.gc);
        return report;
      },
      componentLogger("test"),
    );
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(await requestStatus(path, 5000)).toEqual(report);
      expect(await requestStatus(path, 5000, true)).toEqual(report);
      expect(asked).toEqual([false, true]);
      expect(JSON.parse(await ask(path, '{"cmd":"status","gc":"yes"}\n'))).toEqual({
        error: '"gc" must be true or false, not "yes"',
      });
      expect(JSON.parse(await ask(path, "[1]\n"))).toEqual({ error: 'request is not a JSON object: "[1]"' });
      expect(JSON.parse(await ask(path, "nope\n"))).toEqual({ error: 'request is not JSON: "nope"' });
      expect(JSON.parse(await ask(path, '{"cmd":"reload"}\n'))).toEqual({
        error: 'unknown request "reload" (known: status)',
      });
      expect(JSON.parse(await ask(path, "x".repeat(5000)))).toEqual({
        error: "request longer than 4096 bytes without a newline",
      });
    } finally {
      server.close();
    }
    await expect(requestStatus(path, 5000)).rejects.toThrow(
      `crossway status: ${path}: no such socket (is the command running with --control?)`,
    );
  });
});
