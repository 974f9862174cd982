// The transport tests of crossdomain-channel.test.ts again, against a device playing a 16 KiB-page guest (issue
// 11: muvm on Apple Silicon): rings of 16 KiB, READs filled up to 16 KiB minus the header. The imported file
// registers its own tests and its fd-leak check (useFdLeakCheck) in this file's run; the test below has its own
// device to check the page size itself.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType } from "../../src/crossdomain/protocol.ts";
import { native } from "../../src/native.ts";
import {
  HostServer,
  pattern,
  readPeer,
  readToEof,
  sameBytes,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";

process.env.CROSSWAY_TEST_PAGE_SIZE = "16384";
await import("./crossdomain-channel.test.ts");

describe("a 16 KiB-page guest", () => {
  it("gets 16 KiB rings from the device's page size, and a 200 KiB host pipe arrives intact", async () => {
    const tmp = tempDir("crossway-16k-");
    const host = new HostServer(join(tmp.dir, "wayland-host"));
    const device = await startDeviceProcess(tmp.dir, ["--wayland", host.path]);
    try {
      const gpu = openEmulatedVirtGpu(device.socket);
      expect((await gpu.getParams()).pageSize).toBe(16384);
      const ch = await CrossDomainChannel.open({ gpu, channelType: ChannelType.WAYLAND });
      const peer = await host.next();
      try {
        expect(ch.ringSize).toBe(16384);
        const [clientR, clientW] = native.pipe2();
        ch.send(pattern(4, 1), [{ kind: "read-pipe", fd: clientW }]);
        const [hostW] = (await readPeer(peer, 4)).fds as [number];
        const big = pattern(200 << 10, 7);
        const got = readToEof(clientR);
        await writeAll(hostW, big);
        native.close(hostW);
        expect(sameBytes(await got, big)).toBe("equal");
        native.close(clientR);
      } finally {
        ch.close();
        native.close(peer);
      }
      expect(device.stderr()).not.toMatch(/halting/);
    } finally {
      await device.stop();
      host.close();
      tmp.remove();
    }
  });
});
