// Run inside the VM: a guest process that skips crossway guest and writes raw Wayland into its own cross-domain
// channel (virtgpu), as a compromised guest could. Prints one JSON line: what it was shown and how its binds ended.
// Env: ATTACK_HIDDEN_NAME / ATTACK_HIDDEN_IFACE, a host global's name and interface the filter hides.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";
import { RawChannelBridge } from "../helpers/raw-channel-bridge.ts";
import { RawWaylandClient } from "../helpers/raw-wayland-client.ts";

const dir = mkdtempSync(join(tmpdir(), "raw-guest-"));
const bridge = new RawChannelBridge(join(dir, "raw.sock"), "virtgpu");
const out: Record<string, unknown> = {};
try {
  // Shown globals, and a bind above a capped version.
  const a = RawWaylandClient.connect(bridge.socketPath);
  a.getRegistry();
  await a.roundTrip(60_000);
  out.globals = Object.fromEntries([...a.globals.values()].map((g) => [g.iface, g.version]));
  const output = [...a.globals].find(([, g]) => g.iface === "wl_output");
  if (output !== undefined) {
    const w = new MessageWriter().begin(2, 0).uint(output[0]).string("wl_output");
    a.send(
      w
        .uint(output[1].version + 1)
        .uint(a.newId())
        .end()
        .bytes(),
    );
    await a.waitEof(60_000);
    out.versionBind = a.displayError;
  }
  a.close();
  // A bind of a global the filter hides, by the host's name for it.
  const b = RawWaylandClient.connect(bridge.socketPath);
  b.getRegistry();
  await b.roundTrip(60_000);
  const w = new MessageWriter()
    .begin(2, 0)
    .uint(Number(process.env.ATTACK_HIDDEN_NAME))
    .string(process.env.ATTACK_HIDDEN_IFACE ?? "");
  b.send(w.uint(1).uint(b.newId()).end().bytes());
  await b.waitEof(60_000);
  out.hiddenBind = b.displayError;
  b.close();
} finally {
  await bridge.close();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
