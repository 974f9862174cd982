// Run inside the VM: a guest process that skips crossway guest and writes raw Wayland into its own cross-domain
// channels (the kernel's virtgpu), as a compromised guest could. Prints one JSON line: what it was shown, how its
// binds ended, and whether a well-behaved client on another channel, open throughout, still works after it.
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
  // A well-behaved client on its own channel, open through the whole attack. (QEMU completes an idle context's
  // POLL when another context's fence on the same ring signals; the channel copes since 963ed62: see
  // docs/crossdomain-transport.md. Before that, this client got no round trip while a later one was open.)
  const bystander = await connected(bridge.socketPath);
  try {
    out.globals = Object.fromEntries([...bystander.globals.values()].map((g) => [g.iface, g.version]));
    // A bind above the version the filter shows.
    const a = await connected(bridge.socketPath);
    const output = [...a.globals].find(([, g]) => g.iface === "wl_output");
    if (output !== undefined) {
      a.send(bindBytes(output[0], "wl_output", output[1].version + 1, a.newId()));
      out.versionBind = await displayError(a);
    }
    a.close();
    // A bind of a global the filter hides, by the host's name for it (learnt outside this connection).
    const b = await connected(bridge.socketPath);
    b.send(
      bindBytes(Number(process.env.ATTACK_HIDDEN_NAME), process.env.ATTACK_HIDDEN_IFACE ?? "", 1, b.newId()),
    );
    out.hiddenBind = await displayError(b);
    b.close();
    // The bystander binds what it was shown and round-trips: no error, no hang-up.
    const comp = [...bystander.globals].find(([, g]) => g.iface === "wl_compositor");
    if (comp === undefined) throw new Error("no wl_compositor shown");
    const t0 = Date.now();
    bystander.send(bindBytes(comp[0], "wl_compositor", 1, bystander.newId()));
    await bystander.roundTrip(ROUND_TRIP_TIMEOUT_MS);
    out.after = {
      roundTripMs: Date.now() - t0,
      eof: bystander.eof,
      displayError: bystander.displayError ?? null,
    };
  } finally {
    bystander.close();
  }
} catch (err) {
  out.error = (err as Error).message;
} finally {
  await bridge.close();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
