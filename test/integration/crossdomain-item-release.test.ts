// Item release as each host accepts it (issue 11): the guest's releaseItem frees a host eventfd and a host write pipe
// on both device flavours without an error response, the device really closes its copy of the fd, and the channel
// goes on. The WRITE a host takes for it is checked against the device's flavours (rutabaga: an eventfd WRITE is
// exactly 8 bytes, a failed WRITE drops the item; libkrun: any length, dropped only on hang_up).
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CrossDomainChannel, type ReceivedItem } from "../../src/crossdomain/channel.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { ChannelType, type CrossDomainConfig } from "../../src/crossdomain/protocol.ts";
import { waitFor } from "../../src/harness/processes.ts";
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

useFdLeakCheck();

/** How many of a process's fds are eventfds, and how many are pipes (/proc/<pid>/fd link targets). */
function fdKinds(pid: number): { eventfd: number; pipe: number } {
  const out = { eventfd: 0, pipe: 0 };
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${name}`);
    } catch {
      continue; // closed while listing
    }
    if (target === "anon_inode:[eventfd]") out.eventfd++;
    else if (target.startsWith("pipe:")) out.pipe++;
  }
  return out;
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function setUp(flavor: "crosvm" | "libkrun") {
  const tmp = tempDir(`crossway-release-${flavor}-`);
  const host = new HostServer(join(tmp.dir, "wayland-host"));
  const device: DeviceProcess = await startDeviceProcess(tmp.dir, [
    "--wayland",
    host.path,
    "--flavor",
    flavor,
  ]);
  cleanup.push(async () => {
    await device.stop();
    host.close();
    tmp.remove();
  });
  const config: CrossDomainConfig = { flavor, maxIdentifiers: 28 };
  const ch = await CrossDomainChannel.open({
    gpu: openEmulatedVirtGpu(device.socket),
    channelType: ChannelType.WAYLAND,
    config,
    initForm: flavor === "libkrun" ? "libkrun" : "v1",
  });
  const peer = await host.next();
  let closedWith: unknown;
  ch.onClose = (reason) => {
    closedWith = reason;
  };
  cleanup.push(() => {
    ch.close();
    native.close(peer);
  });
  const next = () =>
    new Promise<{ data: Uint8Array; items: readonly ReceivedItem[] }>((resolve) => {
      ch.onReceive = (data, items) => {
        resolve({ data: data.slice(), items });
        return "continue";
      };
    });
  /** A round trip both ways, proving the channel is alive. */
  const roundTrip = async (tag: string) => {
    const got = readPeer(peer, tag.length);
    expect(ch.send(new TextEncoder().encode(tag), [])).not.toBe("closed");
    expect(new TextDecoder().decode((await got).data)).toBe(tag);
    const back = next();
    await writeAll(peer, new TextEncoder().encode(`${tag}!`));
    expect(new TextDecoder().decode((await back).data)).toBe(`${tag}!`);
  };
  return { ch, peer, device, next, roundTrip, closed: () => closedWith };
}

describe.each(["crosvm", "libkrun"] as const)("%s flavour", (flavor) => {
  it("releaseItem frees a host eventfd: the device closes its copy, no error, the channel goes on", async () => {
    const s = await setUp(flavor);
    const efd = native.eventfd(0, 0);
    cleanup.push(() => native.close(efd));
    const before = fdKinds(s.device.pid).eventfd;
    const got = s.next();
    await writeAll(s.peer, Uint8Array.of(7), [efd]);
    const { items } = await got;
    expect(items).toEqual([{ kind: "eventfd", id: expect.any(Number) }]);
    expect(fdKinds(s.device.pid).eventfd, "the device holds the host eventfd as an item").toBeGreaterThan(
      before,
    );

    s.ch.releaseItem((items[0] as { id: number }).id);
    await waitFor(`the ${flavor} device to close the released eventfd`, () =>
      fdKinds(s.device.pid).eventfd === before ? true : undefined,
    );
    await s.roundTrip("after-eventfd-release");
    expect(s.closed(), "no error response ended the channel").toBeUndefined();
    expect(s.device.stderr()).not.toMatch(/InvalidCrossDomain|EINVAL/);
  });

  it("releaseItem frees a bound host→guest eventfd too, and a host write pipe (the peer sees EOF)", async () => {
    const s = await setUp(flavor);
    const efd = native.eventfd(0, 0);
    const [r, w] = native.pipe2();
    cleanup.push(() => {
      native.close(efd);
      native.close(r);
    });
    const before = fdKinds(s.device.pid).eventfd;
    const got = s.next();
    await writeAll(s.peer, Uint8Array.of(1), [efd, w]);
    native.close(w);
    const { items } = await got;
    expect(items.map((i) => i.kind)).toEqual(["eventfd", "write-pipe"]);
    const [ev, wp] = items as [
      { kind: "eventfd"; id: number },
      { kind: "write-pipe"; id: number; fd: number },
    ];
    native.close(s.ch.eventfdFromHost(ev.id));

    s.ch.releaseItem(ev.id);
    // Released before the client's EOF: closing the client's end afterwards must not hang it up a second time.
    s.ch.releaseItem(wp.id);
    native.close(wp.fd);
    await waitFor(`the ${flavor} device to close the eventfd and the pipe`, () => {
      if (fdKinds(s.device.pid).eventfd !== before) return undefined;
      // EOF on the host pipe: the device closed its write end.
      const n = native.read(r, new Uint8Array(8), 0, 8);
      return n === 0 ? true : undefined;
    });
    await s.roundTrip("after-release");
    expect(s.closed()).toBeUndefined();
    expect(s.device.stderr()).not.toMatch(/InvalidCrossDomain|EINVAL/);
  });
});
