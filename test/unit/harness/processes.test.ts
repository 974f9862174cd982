// The process harness itself: run() collects output and kills on timeout; stop() leaves no process of the tree.
import { describe, expect, it } from "vitest";
import {
  descendants,
  isAlive,
  liveTracked,
  processId,
  requireCommand,
  run,
  spawnTracked,
  waitFor,
} from "../../../src/harness/processes.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("run", () => {
  it("returns exit code and output, feeding stdin", async () => {
    const r = await run("sh", ["-c", "cat; echo err >&2; exit 3"], { input: "in" });
    expect(r.code).toBe(3);
    expect(r.stdout.toString()).toBe("in");
    expect(r.stderr.toString()).toBe("err\n");
    expect(r.timedOut).toBe(false);
  });

  it("kills the whole process group on timeout", async () => {
    const t = Date.now();
    const r = await run("sh", ["-c", "sleep 30 & sleep 30; wait"], { timeoutMs: 200 });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe("SIGKILL");
    expect(Date.now() - t, "well before the 30 s sleeps would end").toBeLessThan(25_000);
  });

  it("rejects when the command does not exist", async () => {
    await expect(run("crossway-no-such-command", [])).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("requireCommand", () => {
  it("passes for an installed tool and names the package of a missing one", () => {
    requireCommand("sh", "dash");
    expect(() => requireCommand("crossway-nope", "crossway-nope-pkg")).toThrow(
      expect.objectContaining({
        code: "CW_HARNESS_MISSING_PACKAGE",
        message: expect.stringContaining("install Debian package 'crossway-nope-pkg'"),
      }),
    );
  });
});

describe("spawnTracked", () => {
  it("stop() kills children, grandchildren and re-parented group members; nothing is left by pid", async () => {
    // The inner `sh -c 'sleep 60 &'` exits at once, so its sleep is re-parented but stays in our group,
    // like swaybg under sway.
    const p = spawnTracked("tree", "sh", ["-c", "sh -c 'sleep 60 &'; sleep 60 & sleep 60; wait"]);
    const tree = await waitFor("the process tree", () => {
      const d = descendants(p.pid);
      return d.length >= 3 ? d : undefined;
    });
    const root = processId(p.pid);
    expect(root).toBeDefined();
    expect(liveTracked()).toContain(p);
    await p.stop();
    await p.stop();
    for (const id of [root!, ...tree]) expect(isAlive(id), `pid ${id.pid}`).toBe(false);
    expect(liveTracked()).not.toContain(p);
  });

  it("throws CW_HARNESS_START (and does not crash later) when the command does not exist", async () => {
    expect(() => spawnTracked("nothing", "crossway-no-such-command", [])).toThrow(
      expect.objectContaining({ code: "CW_HARNESS_START", message: expect.stringContaining("cannot spawn") }),
    );
    await new Promise((r) => setTimeout(r, 50));
  });

  it("escalates to SIGKILL when SIGTERM is ignored", async () => {
    const p = spawnTracked(
      "stubborn",
      "sh",
      ["-c", "trap '' TERM; echo ignoring; while :; do sleep 0.05; done"],
      {
        pipeStdout: true,
      },
    );
    // Ready once the shell says the trap is set: a SIGTERM before that would end it at once.
    let said = "";
    p.child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      said += d;
    });
    await waitFor("the shell to ignore SIGTERM", () => (said.includes("ignoring") ? true : undefined), {
      timeoutMs: 60_000,
    });
    const t = Date.now();
    await p.stop(300);
    expect(Date.now() - t).toBeGreaterThanOrEqual(250);
    expect(p.alive()).toEqual([]);
    expect(p.running).toBe(false);
  });
});
