// The filter's attack corpus sent from the guest side through the whole chain (crossway guest → cross-domain →
// pipewire-filter → daemon): each is refused (by the host filter, or earlier by the guest's strict parser), only
// the attacking client ends, and the daemon's objects and fd count are unchanged; fd counts stay flat over many
// sequential and concurrent guest clients.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PipeWireGuestChain, startPipeWireGuestChain } from "../../src/harness/pipewire-guest-stack.ts";
import { native } from "../../src/native.ts";
import { pod } from "../../src/wire/pipewire/pod-types.ts";
import { writeTone } from "../helpers/audio.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { type PipeWireStack, startPipeWire, TEST_SINK } from "../helpers/pipewire.ts";
import {
  daemonObjects,
  fdCount,
  pipewirePid,
  pwDump,
  settleFdCount,
  steadyFdCount,
} from "../helpers/pipewire-daemon.ts";
import { malformedCorpus } from "../helpers/pipewire-malformed.ts";
import { EACCES, field, RawPipeWireClient } from "../helpers/pipewire-raw-client.ts";
import { run, waitFor } from "../helpers/processes.ts";

useFdLeakCheck();

/** Generous: each step crosses guest, device and filter processes on a loaded machine. */
const STEP_TIMEOUT_MS = 15_000;

let stack: PipeWireStack;
let chain: PipeWireGuestChain;
let pwPid: number;
let baselineObjects: string[];
let baselineDaemonFds: number;
let sinkId: number;
let hiddenNodeId: number;
let tmp: string;
let tonePath: string;

beforeAll(async () => {
  stack = await startPipeWire();
  tmp = mkdtempSync(join(tmpdir(), "cw-pwga-"));
  tonePath = join(tmp, "tone.wav");
  writeTone(tonePath, 440, 0.3);
  chain = await startPipeWireGuestChain(stack, { profile: "audio-playback", targets: [TEST_SINK] });
  pwPid = pipewirePid(stack.pids);
  const all = await pwDump(stack.env);
  sinkId = all.find((o) => o.type === "Node" && o.props["node.name"] === TEST_SINK)?.id ?? -1;
  hiddenNodeId = all.find((o) => o.type === "Node" && o.props["node.name"] === "Dummy-Driver")?.id ?? -1;
  expect(sinkId).toBeGreaterThan(0);
  expect(hiddenNodeId).toBeGreaterThan(0);
  baselineObjects = await daemonObjects(stack.env);
  baselineDaemonFds = fdCount(pwPid);
}, 90_000);

afterAll(async () => {
  await chain?.stop();
  await stack?.stop();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

/** Filter audit records and guest records, from a mark on. */
function filterAudits(from: number): Record<string, unknown>[] {
  return chain
    .records("filter")
    .filter((r) => r.audit === true)
    .slice(from);
}
function guestRecords(msg: string): Record<string, unknown>[] {
  return chain.records("guest").filter((r) => r.msg === msg);
}

/** Waits until the guest has ended every session it started (so each test sees its own client gone). */
async function guestIdle(): Promise<void> {
  await waitFor(
    "the guest to end every PipeWire session",
    () =>
      guestRecords("guest PipeWire client ended").length === guestRecords("PipeWire client connected").length
        ? true
        : undefined,
    { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 20 },
  );
}

/**
 * Waits until a session that ended after the first `mark` end records ended for the codec reason `reason` (by
 * record, not by position: another session may end in between, and a session's lines come when it ends).
 */
async function guestEnded(mark: number, reason: string): Promise<void> {
  await waitFor(
    `a guest session ended for ${reason}`,
    () =>
      guestRecords("guest PipeWire client ended")
        .slice(mark)
        .some((r) => r.wireReason === reason)
        ? true
        : undefined,
    {
      timeoutMs: STEP_TIMEOUT_MS,
      intervalMs: 20,
      explain: () => JSON.stringify(guestRecords("guest PipeWire client ended").slice(mark)),
    },
  );
}

/** A raw client of the guest's socket, past the handshake and a registry round trip. */
async function connect(name: string): Promise<RawPipeWireClient> {
  const c = new RawPipeWireClient(chain.socketPath);
  c.handshake({ "application.name": name });
  c.send(0, 5, pod.struct(pod.int(3), pod.int(2)));
  expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
  return c;
}

async function expectDenied(c: RawPipeWireClient, id: number): Promise<void> {
  const err = await c.waitFor(
    (e) => e.id === 0 && e.opcode === 3 && field(e, 0) === id && field(e, 2) === EACCES,
    STEP_TIMEOUT_MS,
  );
  expect(err, `Core.Error(${id}, EACCES)`).not.toBeNull();
  expect(c.closed).toBe(false);
}

/** Runs `attack` on a fresh client and expects these filter audit reasons among the records it caused. */
async function attack(
  name: string,
  reasons: string[],
  body: (c: RawPipeWireClient) => Promise<void>,
): Promise<void> {
  const mark = filterAudits(0).length;
  const c = await connect(name);
  try {
    await body(c);
  } finally {
    c.close();
  }
  await guestIdle();
  await waitFor(
    `filter audit reasons ${reasons.join(", ")}`,
    () => {
      const seen = new Set(filterAudits(mark).map((r) => r.reason));
      return reasons.every((r) => seen.has(r)) ? true : undefined;
    },
    { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 20, explain: () => JSON.stringify(filterAudits(mark)) },
  );
}

describe("attacks from the guest side are refused by the host filter", () => {
  it("Registry.Destroy of the sink and Core.Destroy(0) are denied", async () => {
    await attack("g-destroy", ["registry-destroy-denied"], async (c) => {
      c.send(2, 2, pod.struct(pod.int(sinkId)));
      await expectDenied(c, 2);
      c.send(0, 7, pod.struct(pod.int(0)));
      await expectDenied(c, 0);
    });
  });

  it("CreateObject of a factory other than client-node is substituted", async () => {
    await attack("g-factory", ["factory-denied"], async (c) => {
      const props = pod.dict([
        ["factory.name", "support.null-audio-sink"],
        ["node.name", "guest-evil"],
        ["media.class", "Audio/Sink"],
        ["object.linger", "true"],
      ]);
      c.send(
        0,
        6,
        pod.struct(
          pod.string("adapter"),
          pod.string("PipeWire:Interface:Node"),
          pod.int(3),
          props,
          pod.int(3),
        ),
      );
      await expectDenied(c, 3);
    });
  });

  for (const [what, extra] of [
    ["media.class Audio/Sink", [["media.class", "Audio/Sink"]]],
    ["media.class Video/Source", [["media.class", "Video/Source"]]],
    [
      "object.linger",
      [
        ["media.class", "Stream/Output/Audio"],
        ["object.linger", "true"],
      ],
    ],
  ] as const) {
    it(`a client-node claiming ${what} is refused`, async () => {
      await attack(`g-node-${what}`, ["node-props-denied"], async (c) => {
        c.createClientNode([["node.name", "guest-evil"], ...extra], 3);
        await expectDenied(c, 3);
      });
    });
  }

  it("Node.SendCommand and Node.SetParam with nested params are denied", async () => {
    await attack("g-node-methods", ["send-command-denied", "set-param-denied"], async (c) => {
      c.send(
        2,
        1,
        pod.struct(pod.int(sinkId), pod.string("PipeWire:Interface:Node"), pod.int(3), pod.int(3)),
      );
      expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
      c.send(3, 4, pod.struct(pod.object(0x30002, 0, [])));
      await expectDenied(c, 3);
      const nested = pod.object(0x40002, 2, [
        {
          key: 0x80001,
          flags: 0,
          value: pod.struct(pod.string("audioconvert.filter-graph.0"), pod.struct(pod.string("x"))),
        },
      ]);
      c.send(3, 3, pod.struct(pod.id(2), pod.int(0), nested));
      expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
      expect(c.errors(3).length).toBe(2);
    });
  });

  it("a bind to a hidden global is substituted", async () => {
    await attack("g-bind", ["bind-hidden-global"], async (c) => {
      c.send(
        2,
        1,
        pod.struct(pod.int(hiddenNodeId), pod.string("PipeWire:Interface:Node"), pod.int(3), pod.int(3)),
      );
      await expectDenied(c, 3);
    });
  });

  it("properties that grant access are stripped (and the guest's own crossway.guest.* cannot be forged)", async () => {
    const mark = filterAudits(0).length;
    const c = new RawPipeWireClient(chain.socketPath);
    c.handshake({
      "application.name": "g-props",
      "pipewire.access": "portal",
      "pipewire.access.portal.app_id": "org.example.Trusted",
      "media.category": "Manager",
      "crossway.guest.app": "forged",
    });
    expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
    const me = (await pwDump(stack.env)).find(
      (o) => o.type === "Client" && o.props["application.name"] === "g-props",
    );
    const props = me?.props ?? {};
    expect(props["pipewire.access"]).not.toBe("portal");
    expect(props["pipewire.access.portal.app_id"]).toBeUndefined();
    expect(props["media.category"]).toBeUndefined();
    // The guest's claim about its client, kept by the filter only under its tag: "this VM says it is g-props".
    expect(props["crossway.guest.app"]).toBe("guest.g-props");
    expect(String(props["crossway.guest.client"])).toMatch(/^guest\.pw\d+$/);
    c.close();
    await guestIdle();
    expect(filterAudits(mark).some((r) => r.reason === "prop-grants-access")).toBe(true);
  });

  it("a second registry is substituted (one per connection)", async () => {
    await attack("g-registry", ["registry-limit"], async (c) => {
      c.send(0, 5, pod.struct(pod.int(3), pod.int(3)));
      await expectDenied(c, 3);
    });
  });

  it("issue-6 regression from the guest: ClientNode.Update with the PROPS bit and no items leaves the daemon alive", async () => {
    const update = pod.struct(
      pod.int(2),
      pod.int(0),
      pod.struct(pod.int(0), pod.int(2), pod.long(2), pod.long(0), pod.int(0), pod.int(0)),
    );
    await attack("g-empty-props", ["empty-props-update"], async (c) => {
      c.createClientNode(
        [
          ["media.class", "Stream/Output/Audio"],
          ["node.name", "g-empty-props"],
        ],
        3,
      );
      c.send(3, 2, update);
      expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
    });
    expect(fdCount(pwPid)).toBeGreaterThan(0);
  });

  it("a v0-style Hello (n_fds word >= 4) is a framing error at the guest: that client ends", async () => {
    const endMark = guestRecords("guest PipeWire client ended").length;
    const c = new RawPipeWireClient(chain.socketPath);
    c.send(0, 1, pod.struct(pod.int(3)), { nFdsField: 14 });
    expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
    c.close();
    await guestEnded(endMark, "missing-fds");
    await guestIdle();
  });

  it("a second Hello ends only that client (refused by the filter)", async () => {
    await attack("g-hello", ["second-hello"], async (c) => {
      c.send(0, 1, pod.struct(pod.int(3)));
      expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
    });
  });

  describe("every malformed POD of the §2.4 corpus is refused by the guest's strict parser before the host", () => {
    for (const mc of malformedCorpus()) {
      it(mc.name, async () => {
        const filterMark = filterAudits(0).length;
        const endMark = guestRecords("guest PipeWire client ended").length;
        const c = await connect(`g-pod-${mc.reason}`);
        c.sendPayload(0, 2, mc.payload, mc.nFds ?? 0);
        expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
        c.close();
        await guestEnded(endMark, mc.reason);
        await guestIdle();
        // Nothing of it reached the filter: no refusal there, the connection just ended.
        expect(filterAudits(filterMark).filter((r) => r.reason === mc.reason)).toEqual([]);
      });
    }
  });

  it("the stock pw-cli's destroy, create-node adapter and send-command are refused", async () => {
    const mark = filterAudits(0).length;
    const env = chain.env;
    const sink = String(sinkId);
    await run("pw-cli", ["destroy", sink], { env, timeoutMs: STEP_TIMEOUT_MS });
    await run(
      "pw-cli",
      [
        "create-node",
        "adapter",
        "{ factory.name=support.null-audio-sink node.name=pwcli-evil media.class=Audio/Sink }",
      ],
      { env, timeoutMs: STEP_TIMEOUT_MS },
    );
    await run("pw-cli", ["send-command", sink, "Suspend", "{}"], { env, timeoutMs: STEP_TIMEOUT_MS });
    await guestIdle();
    await waitFor(
      "the three refusals in the filter's audit",
      () => {
        const reasons = new Set(filterAudits(mark).map((r) => r.reason));
        return ["registry-destroy-denied", "factory-denied", "send-command-denied"].every((r) =>
          reasons.has(r),
        )
          ? true
          : undefined;
      },
      { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 20, explain: () => JSON.stringify(filterAudits(mark)) },
    );
    const nodes = (await pwDump(stack.env)).filter((o) => o.type === "Node").map((o) => o.props["node.name"]);
    expect(nodes).toContain(TEST_SINK);
    expect(nodes).not.toContain("pwcli-evil");
  });
});

describe("unexpected fds from a guest client", () => {
  it("an fd-carrying message ends that client alone, with a Core.Error naming it; another client goes on", async () => {
    const bystander = await connect("g-bystander");
    const c = await connect("g-fd");
    const efd = native.eventfd(0, 0);
    c.send(0, 2, pod.struct(pod.int(0), pod.fd(0)), { fds: [efd] });
    native.close(efd);
    const err = await c.waitFor((e) => e.id === 0 && e.opcode === 3, STEP_TIMEOUT_MS);
    expect(err).not.toBeNull();
    expect(String(field(err as never, 3))).toMatch(/Core@0\.Sync carries 1 fds; no client→server message/);
    expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
    c.close();
    // The other client still gets round trips through the same guest, device and filter.
    expect(await bystander.sync(STEP_TIMEOUT_MS)).toBe(true);
    bystander.close();
    await guestIdle();
    // Found by its message, not as the last refusal: the guest logs asynchronously, so the line of an earlier test's
    // refusal can still be the newest one read here (it was, once, in a fresh clone run while another ran beside it).
    const refused = await waitFor(
      "the guest's refusal of that client in its log",
      () =>
        guestRecords("guest PipeWire client refused").find((r) =>
          /Core@0\.Sync carries 1 fds; no client→server message/.test(String(r.err)),
        ),
      { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 20 },
    );
    expect(refused.code).toBe("CW_PWG_CLIENT_FD");
    expect(chain.running("guest") && chain.running("device") && chain.running("filter")).toBe(true);
  });

  it("fds that no header claims (n_fds 0) end the client too: no fd is left queued in the guest", async () => {
    const c = await connect("g-fd-unclaimed");
    const efd = native.eventfd(0, 0);
    for (let i = 0; i < 20; i++)
      c.send(0, 2, pod.struct(pod.int(0), pod.int(i)), { fds: [efd], nFdsField: 0 });
    native.close(efd);
    const err = await c.waitFor((e) => e.id === 0 && e.opcode === 3, STEP_TIMEOUT_MS);
    expect(err, JSON.stringify(chain.records("guest").slice(-4))).not.toBeNull();
    expect(String(field(err as never, 3))).toMatch(/fds arrived that no message header claims/);
    expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
    c.close();
    await guestIdle();
  });

  it("an fd the payload never references is refused and closed (the guest's fd count returns)", async () => {
    (await connect("g-fd-warm")).close();
    await guestIdle();
    // Held still, not just read: guestIdle waits for a log line a session writes before its sockets are all closed
    // (a refused client's lingers until its EOF), and a baseline read at once held two fds that then closed in a
    // run of two test suites at once (23 before, 21 after).
    const before = await steadyFdCount(chain.pids.guest);
    const c = await connect("g-fd-unreferenced");
    const mfd = native.memfdCreate("unreferenced", 0);
    c.send(0, 2, pod.struct(pod.int(0), pod.int(7)), { fds: [mfd] });
    native.close(mfd);
    const err = await c.waitFor((e) => e.id === 0 && e.opcode === 3, STEP_TIMEOUT_MS);
    expect(String(field(err as never, 3))).toMatch(/fd-unreferenced/);
    expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
    c.close();
    await guestIdle();
    expect(await settleFdCount(chain.pids.guest, before, STEP_TIMEOUT_MS)).toBe(before);
  });

  it("fds on ClientNode.PortBuffers (client-allocated buffers) are refused precisely", async () => {
    const c = await connect("g-portbuffers");
    c.createClientNode(
      [
        ["node.name", "g-portbuffers"],
        ["media.class", "Stream/Output/Audio"],
      ],
      3,
    );
    expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
    const mfd = native.memfdCreate("guest-buffer", 0);
    native.ftruncate(mfd, 4096);
    // PortBuffers(direction 0, port 0, mix 0, n_buffers 1, buffer: n_datas 1, data: type MemFd, fd 0, ...).
    c.send(
      3,
      6,
      pod.struct(
        pod.int(0),
        pod.int(0),
        pod.int(0),
        pod.int(1),
        pod.int(1),
        pod.id(2),
        pod.fd(0),
        pod.int(0),
        pod.int(0),
        pod.int(4096),
      ),
      { fds: [mfd] },
    );
    native.close(mfd);
    const err = await c.waitFor((e) => e.id === 0 && e.opcode === 3, STEP_TIMEOUT_MS);
    expect(String(field(err as never, 3))).toMatch(
      /ClientNode@3\.PortBuffers\(direction 0, port 0, mix 0\): 1 client-allocated buffer fds \(data types MemFd\); the daemon never asked this port to allocate/,
    );
    expect(await c.waitClosed(STEP_TIMEOUT_MS)).toBe(true);
    c.close();
    await guestIdle();
  });
});

/** A guest pw-cat playing a short tone to the sink through the chain; it must succeed. */
async function playTone(): Promise<void> {
  const r = await run("pw-cat", ["--playback", "--target", TEST_SINK, tonePath], {
    env: chain.env,
    timeoutMs: STEP_TIMEOUT_MS * 2,
  });
  expect(r.code, r.stderr.toString()).toBe(0);
}

describe("fd counts stay flat", () => {
  it("over 50 sequential + 3 streaming and 10 concurrent + 2 streaming guest clients (guest, device, filter, daemon)", async () => {
    const pids = chain.pids;
    // Warm-up client: lazily opened things (loggers, first channel) are not leaks.
    (await connect("g-warm")).close();
    await guestIdle();
    const before = {
      guest: await steadyFdCount(pids.guest),
      device: await steadyFdCount(pids.device),
      filter: await steadyFdCount(pids.filter),
    };
    const daemonBefore = await steadyFdCount(pwPid);
    for (let i = 0; i < 50; i++) {
      const c = await connect(`g-seq-${i}`);
      c.close();
    }
    // Streaming clients too: every AddMem blob, Transport and SetActivation eventfd must be released.
    for (let i = 0; i < 3; i++) await playTone();
    await guestIdle();
    const concurrent = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(`g-par-${i}`)));
    for (const c of concurrent) expect(await c.sync(STEP_TIMEOUT_MS)).toBe(true);
    await Promise.all([playTone(), playTone()]);
    for (const c of concurrent) c.close();
    await guestIdle();
    expect(await settleFdCount(pids.guest, before.guest, STEP_TIMEOUT_MS)).toBe(before.guest);
    expect(await settleFdCount(pids.device, before.device, STEP_TIMEOUT_MS)).toBe(before.device);
    expect(await settleFdCount(pids.filter, before.filter, STEP_TIMEOUT_MS)).toBe(before.filter);
    expect(await settleFdCount(pwPid, daemonBefore, STEP_TIMEOUT_MS)).toBe(daemonBefore);
    console.log(`fd counts after 60 clients: ${JSON.stringify(before)}, daemon ${daemonBefore}`);
  });

  it("leaves the daemon's objects and open fd count as they were", async () => {
    expect(await settleFdCount(pwPid, baselineDaemonFds, STEP_TIMEOUT_MS)).toBe(baselineDaemonFds);
    expect(await daemonObjects(stack.env)).toEqual(baselineObjects);
  });
});
