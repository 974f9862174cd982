// Issue 11: a host that stops answering ends that client with a clear error after a bounded time. rutabaga 0.1.2
// never writes the EOF RECEIVE, so a guest whose compositor dropped it would otherwise wait forever.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloseReason, CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType } from "../../src/crossdomain/protocol.ts";
import { native } from "../../src/native.ts";
import {
  type DeviceProcess,
  HostServer,
  readPeer,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { sleep } from "../helpers/processes.ts";

useFdLeakCheck();

/** A Wayland channel with a 300 ms answer timeout, its host peer, and its close reason. */
async function openSilent(device: DeviceProcess, host: HostServer) {
  const ch = await CrossDomainChannel.open({
    gpu: openEmulatedVirtGpu(device.socket),
    channelType: ChannelType.WAYLAND,
    hostTimeoutMs: 300,
  });
  const peer = await host.next();
  const closed = new Promise<CloseReason>((resolve) => {
    ch.onClose = resolve;
  });
  return { ch, peer, closed };
}

describe("a host that stops answering", () => {
  let tmp: ReturnType<typeof tempDir>;
  let host: HostServer;
  let device: DeviceProcess;
  beforeAll(async () => {
    tmp = tempDir("crossway-silent-");
    host = new HostServer(join(tmp.dir, "wayland-host"));
    device = await startDeviceProcess(tmp.dir, ["--wayland", host.path]);
  });
  afterAll(async () => {
    await device.stop();
    host.close();
    tmp.remove();
  });

  const open = () => openSilent(device, host);

  it("ends the channel with CW_CROSSDOMAIN_HOST_TIMEOUT when a request owed an answer gets none", async () => {
    const { ch, peer, closed } = await open();
    const t0 = Date.now();
    ch.send(Uint8Array.of(1, 0, 0, 0, 0, 0, 12, 0, 3, 0, 0, 0)); // wl_display.sync(3)
    ch.expectAnswer();
    await readPeer(peer, 12); // the peer got it, and stays silent
    const reason = await closed;
    const ms = Date.now() - t0;
    expect(reason.kind).toBe("error");
    expect(reason.kind === "error" && reason.error.code).toBe("CW_CROSSDOMAIN_HOST_TIMEOUT");
    expect(reason.kind === "error" && reason.error.message).toMatch(
      /the host sent nothing for 300 ms after a request that needs an answer/,
    );
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(10_000);
    native.close(peer);
  });

  it("stays open when the host answers in time", async () => {
    const { ch, peer } = await open();
    let got = 0;
    ch.onReceive = (data) => {
      got += data.length;
      return "continue";
    };
    ch.send(Uint8Array.of(1, 0, 0, 0, 0, 0, 12, 0, 3, 0, 0, 0));
    ch.expectAnswer();
    await readPeer(peer, 12);
    await writeAll(peer, Uint8Array.of(3, 0, 0, 0, 0, 0, 12, 0, 1, 0, 0, 0)); // wl_callback.done
    await sleep(700);
    expect(got).toBe(12);
    expect(ch.isClosed).toBe(false);
    ch.close();
    native.close(peer);
  });
});

describe("a host that never says EOF (rutabaga 0.1.2: crossway device --no-eof-receive)", () => {
  it("leaves the channel open at host EOF, and the answer timeout ends it", async () => {
    const tmp = tempDir("crossway-noeof-");
    const host = new HostServer(join(tmp.dir, "wayland-host"));
    const device = await startDeviceProcess(tmp.dir, ["--wayland", host.path, "--no-eof-receive"]);
    try {
      const { ch, peer, closed } = await openSilent(device, host);
      ch.send(Uint8Array.of(1, 0, 0, 0, 0, 0, 12, 0, 3, 0, 0, 0)); // wl_display.sync
      ch.expectAnswer();
      await readPeer(peer, 12);
      const t0 = Date.now();
      native.close(peer); // the compositor drops the client instead of answering
      const reason = await closed;
      // Nothing told the guest at EOF: only the answer timeout ended it.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
      expect(reason.kind === "error" && reason.error.code).toBe("CW_CROSSDOMAIN_HOST_TIMEOUT");
    } finally {
      await device.stop();
      host.close();
      tmp.remove();
    }
  });
});
