// Run inside the VM: a guest process that skips crossway guest and writes raw Wayland into its own cross-domain
// channels (the kernel's virtgpu), as a compromised guest could. Prints one JSON line: what it was shown, how its
// binds ended, and whether a well-behaved client on a new channel works after the attack.
// Env: ATTACK_HIDDEN_NAME / ATTACK_HIDDEN_IFACE, a host global's name and interface the filter hides.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { RawChannelBridge } from "../helpers/raw-channel-bridge.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";

/** Under TCG a round trip through the kernel, QEMU, the filter and sway can take seconds on a loaded host. */
const ROUND_TRIP_TIMEOUT_MS = 60_000;
const REGISTRY_ID = 2;
const REGISTRY_BIND = 0;

/** wl_registry.bind(name, iface, version, new id) by hand: the attacker names whatever it likes. */
function bindBytes(name: number, iface: string, version: number, id: number): Uint8Array {
  const w = new MessageWriter().begin(REGISTRY_ID, REGISTRY_BIND).uint(name).string(iface);
  return w.uint(version).uint(id).end().bytes();
}

/**
 * Waits for the wl_display.error the filter sends before it hangs up. Not for EOF: rutabaga 0.1.2 has no EOF
 * RECEIVE, so a guest never learns that the host side of its channel closed.
 */
async function displayError(c: RawWaylandClient): Promise<RawWaylandClient["displayError"]> {
  const deadline = Date.now() + ROUND_TRIP_TIMEOUT_MS;
  while (c.displayError === undefined) {
    if (Date.now() > deadline) throw new Error(`no wl_display.error within ${ROUND_TRIP_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return c.displayError;
}

/** Connects a raw client, reads its registry (its registry is object 2: the first id it allocates). */
async function connected(socketPath: string): Promise<RawWaylandClient> {
  const c = RawWaylandClient.connect(socketPath);
  if (c.getRegistry() !== REGISTRY_ID) throw new Error("registry id is not 2");
  await c.roundTrip(ROUND_TRIP_TIMEOUT_MS);
  return c;
}

const dir = mkdtempSync(join(tmpdir(), "raw-guest-"));
const bridge = new RawChannelBridge(join(dir, "raw.sock"), "virtgpu");
const out: Record<string, unknown> = {};
try {
  // One connection at a time: QEMU's rutabaga fence callback (virtio_gpu_rutabaga_aio_cb) matches a signalled
  // fence to queued commands by ring index and fence id but not by context, so one channel's fence completes
  // another context's older channel-ring POLL early and that channel then stalls (seen: a client opened first
  // got no round trip while a later one was open). Sequential connections keep this check about the filter.
  const a = await connected(bridge.socketPath);
  out.globals = Object.fromEntries([...a.globals.values()].map((g) => [g.iface, g.version]));
  // A bind above the version the filter shows.
  const output = [...a.globals].find(([, g]) => g.iface === "wl_output");
  if (output !== undefined) {
    a.send(bindBytes(output[0], "wl_output", output[1].version + 1, a.newId()));
    out.versionBind = await displayError(a);
  }
  a.close();
  await bridge.idle(ROUND_TRIP_TIMEOUT_MS);
  // A bind of a global the filter hides, by the host's name for it (learnt outside this connection).
  const b = await connected(bridge.socketPath);
  b.send(
    bindBytes(Number(process.env.ATTACK_HIDDEN_NAME), process.env.ATTACK_HIDDEN_IFACE ?? "", 1, b.newId()),
  );
  out.hiddenBind = await displayError(b);
  b.close();
  await bridge.idle(ROUND_TRIP_TIMEOUT_MS);
  // A well-behaved client on a new channel afterwards: binds what it was shown and round-trips, no error.
  const c = await connected(bridge.socketPath);
  try {
    const comp = [...c.globals].find(([, g]) => g.iface === "wl_compositor");
    if (comp === undefined) throw new Error("no wl_compositor shown");
    const t0 = Date.now();
    c.send(bindBytes(comp[0], "wl_compositor", 1, c.newId()));
    await c.roundTrip(ROUND_TRIP_TIMEOUT_MS);
    out.after = { roundTripMs: Date.now() - t0, eof: c.eof, displayError: c.displayError ?? null };
  } finally {
    c.close();
  }
} catch (err) {
  out.error = (err as Error).message;
} finally {
  await bridge.close();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
