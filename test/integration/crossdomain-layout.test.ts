// Issue 11: the guest learns the host's identifier-slot layout in-band (4 slots: rutabaga 0.1.2 / libkrun protocol
// 0; 28: current hosts), and a fixed guest setting that disagrees with the host is a clear error, not garbage.
// Against real `crossway device` processes playing each layout (--identifiers 4 | 28).
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrossDomainChannel } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType, DEFAULT_CONFIG, type IdentifierArraySize } from "../../src/crossdomain/protocol.ts";
import { native } from "../../src/native.ts";
import {
  type DeviceProcess,
  HostServer,
  pattern,
  readPeer,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";

useFdLeakCheck();

for (const slots of [4, 28] as const) {
  describe(`a host with ${slots} identifier slots`, () => {
    let tmp: ReturnType<typeof tempDir>;
    let host: HostServer;
    let device: DeviceProcess;
    beforeAll(async () => {
      tmp = tempDir(`crossway-layout${slots}-`);
      host = new HostServer(join(tmp.dir, "wayland-host"));
      device = await startDeviceProcess(tmp.dir, ["--wayland", host.path, "--identifiers", String(slots)]);
    });
    afterAll(async () => {
      await device.stop();
      host.close();
      tmp.remove();
    });

    it("is learned by the probe, and data crosses intact both ways with the first byte the peer sees", async () => {
      const ch = await CrossDomainChannel.open({
        gpu: openEmulatedVirtGpu(device.socket),
        channelType: ChannelType.WAYLAND,
        probeLayout: "adopt",
      });
      const peer = await host.next();
      try {
        expect(ch.config.maxIdentifiers).toBe(slots);
        // The probe's empty SEND reached the peer as nothing: the first bytes it reads are the guest's.
        const out = pattern(5000, 3);
        ch.send(out);
        const got = await readPeer(peer, out.length);
        expect(Buffer.from(got.data).equals(Buffer.from(out))).toBe(true);
        expect(got.fds).toEqual([]);
        const back = pattern(3000, 9);
        const received: Uint8Array[] = [];
        let total = 0;
        const all = new Promise<void>((resolve) => {
          ch.onReceive = (data) => {
            received.push(data.slice());
            total += data.length;
            if (total >= back.length) resolve();
            return "continue";
          };
        });
        await writeAll(peer, back);
        await all;
        expect(Buffer.concat(received).equals(Buffer.from(back))).toBe(true);
        // rutabaga's receive buffer is 4096 bytes minus the header: the first RECEIVE of a 3000-byte write fits
        // whole; a 6000-byte one is cut at 4032 (4 slots) or 3744 (28 slots).
        const cut: number[] = [];
        let left = 6000;
        const two = new Promise<void>((resolve) => {
          ch.onReceive = (data) => {
            cut.push(data.length);
            left -= data.length;
            if (left <= 0) resolve();
            return "continue";
          };
        });
        await writeAll(peer, pattern(6000, 4));
        await two;
        expect(cut[0]).toBe(slots === 4 ? 4032 : 3744);
        expect(device.stderr()).not.toMatch(/halting/);
      } finally {
        ch.close();
        native.close(peer);
      }
    });

    it("refuses a guest fixed to the other layout with the counts in the message", async () => {
      const other: IdentifierArraySize = slots === 4 ? 28 : 4;
      const opened = CrossDomainChannel.open({
        gpu: openEmulatedVirtGpu(device.socket),
        channelType: ChannelType.WAYLAND,
        config: { ...DEFAULT_CONFIG, maxIdentifiers: other },
        probeLayout: "verify",
      });
      await expect(opened).rejects.toMatchObject({
        code: "CW_CROSSDOMAIN_LAYOUT",
        message: expect.stringContaining(
          `the host parses ${slots} identifier slots per SEND/RECEIVE, the guest is set to ${other}`,
        ),
      });
      // The device's connection to the peer was opened by INIT; the failed open closed the context again.
      native.close(await host.next());
    });
  });
}
