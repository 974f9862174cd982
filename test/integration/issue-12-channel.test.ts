// Regression tests for issue 12 (outside review): the cross-domain channel and the emulated device, each against a
// real `crossway device` process, a real host peer socket, and the kernel's SCM_RIGHTS delivery.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrossDomainChannel, type ReceivedItem } from "../../src/crossdomain/channel.ts";
import { encodeInit, encodePoll } from "../../src/crossdomain/codec.ts";
import { openEmulatedVirtGpu } from "../../src/crossdomain/emulated-virtgpu.ts";
import { CAPSET_CROSS_DOMAIN, CHANNEL_RING, ChannelType, DrmFormat } from "../../src/crossdomain/protocol.ts";
import { BlobFlags, BlobMem } from "../../src/crossdomain/structs.ts";
import type { VirtGpu } from "../../src/crossdomain/virtgpu.ts";
import { CrosswayError } from "../../src/errors.ts";
import { AGAIN, MAX_FDS_PER_MSG, native, POLL_READABLE } from "../../src/native.ts";
import {
  type DeviceProcess,
  HostServer,
  pattern,
  readToEof,
  sameBytes,
  startDeviceProcess,
  tempDir,
  writeAll,
} from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { unreadBytes } from "../helpers/unread-bytes.ts";

useFdLeakCheck();

/** How long a test waits for a protocol answer before it names what did not come (generous: shared 2-core box). */
const ANSWER_TIMEOUT_MS = 15_000;

let tmp: ReturnType<typeof tempDir>;
let device: DeviceProcess;
let host: HostServer;

beforeAll(async () => {
  tmp = tempDir("crossway-i12-");
  host = new HostServer(join(tmp.dir, "wayland-host"));
  device = await startDeviceProcess(tmp.dir, ["--wayland", host.path]);
});

afterAll(async () => {
  await device?.stop();
  host?.close();
  tmp?.remove();
});

/** Rejects with a message naming `what` unless `p` settles within ANSWER_TIMEOUT_MS. */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ANSWER_TIMEOUT_MS);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function open(gpu: VirtGpu = openEmulatedVirtGpu(device.socket), ringSize?: number) {
  const ch = await CrossDomainChannel.open({
    gpu,
    channelType: ChannelType.WAYLAND,
    ...(ringSize !== undefined ? { ringSize } : {}),
  });
  const peer = await host.next();
  native.setNonblockCloexec(peer);
  const closed = new Promise<unknown>((resolve) => {
    ch.onClose = resolve;
  });
  return { ch, peer, closed };
}

/** Collects RECEIVEs until `bytes` bytes arrived. */
function collect(
  ch: CrossDomainChannel,
  bytes: number,
): Promise<{ data: Uint8Array; items: ReceivedItem[] }> {
  return new Promise((resolve) => {
    const data = new Uint8Array(bytes);
    let got = 0;
    const items: ReceivedItem[] = [];
    ch.onReceive = (d, its) => {
      data.set(d, got);
      got += d.length;
      items.push(...its);
      if (got >= bytes) resolve({ data, items });
      return "continue";
    };
  });
}

/**
 * Reads `bytes` from a peer socket as libwayland's wl_connection_read does, and after each recvmsg checks
 * libwayland's demarshalling condition: every message complete in the buffer finds its fds already queued.
 * `needs[k]` = [end offset of message k, fds needed by messages up to and including k]. Returns the fds.
 */
function readAsLibwayland(fd: number, bytes: number, needs: Array<[number, number]>): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const data = new Uint8Array(bytes);
    let got = 0;
    const fds: number[] = [];
    const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
    const w = native.createWatcher(fd, () => {
      for (;;) {
        const n = native.recvmsg(fd, data, got, bytes - got, fdsOut);
        for (let i = 0; i < fdsOut[0]!; i++) fds.push(fdsOut[1 + i]!);
        if (n === AGAIN) return;
        got += n;
        for (const [end, need] of needs) {
          if (end <= got && fds.length < need) {
            w.stop();
            w.close();
            for (const f of fds) native.close(f);
            reject(
              new Error(
                `file descriptor expected: the message ending at byte ${end} needs ${need} fds, ${fds.length} arrived with ${got} bytes`,
              ),
            );
            return;
          }
        }
        if (n === 0 || got === bytes) {
          w.stop();
          w.close();
          resolve(fds);
          return;
        }
      }
    });
    w.start(POLL_READABLE);
  });
}

/**
 * The real emulated backend with fault injection: after fail(), every EXECBUFFER throws CW_VIRTGPU_IOCTL, as the
 * kernel backend does on any failed ioctl.
 */
function failingGpu(): { gpu: VirtGpu; fail(): void } {
  const real = openEmulatedVirtGpu(device.socket);
  let failing = false;
  const gpu = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "execbuffer") {
        return (cmd: Uint8Array, opts?: { ring?: number }) => {
          if (failing) throw new CrosswayError("CW_VIRTGPU_IOCTL", "EXECBUFFER: EIO (injected)");
          return target.execbuffer(cmd, opts);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return {
    gpu,
    fail: () => {
      failing = true;
    },
  };
}

/** More bytes than 15 pages hold: all 16 buffers of a default pipe are in use, so it takes no further write. */
const PIPE_ALL_SLOTS_USED = 15 * 4096 + 1;

/**
 * Resolves once the kernel reports a full default-sized pipe behind `readEnd` (FIONREAD), checking every 5 ms.
 * (Writes of 4072-byte READ chunks take one page buffer each, so a full pipe holds 16 x 4072, not 65536 bytes.)
 */
async function pipeFull(readEnd: number): Promise<void> {
  for (;;) {
    if (unreadBytes(readEnd) >= PIPE_ALL_SLOTS_USED) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

function deviceFdCount(): number {
  return readdirSync(`/proc/${device.pid}/fd`).length;
}

describe("issue 12 regressions: channel and emulated device", () => {
  it("defect 1: every fd reaches the host at or before the bytes of its message", async () => {
    const { ch, peer, closed } = await open();
    // wl_data_offer.receive (48 B, pipe A), another receive (40 B, pipe B), then 200 B of other requests.
    const data = pattern(288, 3);
    const [ar, aw] = native.pipe2();
    const [br, bw] = native.pipe2();
    const reading = readAsLibwayland(peer, data.length, [
      [48, 1],
      [88, 2],
    ]);
    ch.send(data, [
      { kind: "read-pipe", fd: aw, end: 48 },
      { kind: "read-pipe", fd: bw, end: 88 },
    ]);
    const fds = await within(reading, "288 bytes at the host peer");
    expect(fds.length).toBe(2);
    for (const f of [...fds, ar, br, peer]) native.close(f);
    ch.close();
    await closed;
  });

  it("defect 1: 29 blob items in the first 29 messages of a batch: each blob at or before its message", async () => {
    const { ch, peer, closed } = await open();
    const blob = await ch.createHostBlob(await ch.imageRequirements(4096, 1, DrmFormat.R8));
    // 29 wl_shm.create_pool-sized requests with one blob each, then 3000 bytes of other requests.
    const data = pattern(29 * 12 + 3000, 5);
    const needs: Array<[number, number]> = [];
    for (let k = 0; k < 29; k++) needs.push([12 * (k + 1), k + 1]);
    const reading = readAsLibwayland(peer, data.length, needs);
    ch.send(
      data,
      needs.map(([end]) => ({ kind: "blob" as const, resourceId: blob.resourceId, end })),
    );
    const fds = await within(reading, `${data.length} bytes at the host peer`);
    expect(fds.length).toBe(29);
    for (const f of [...fds, peer]) native.close(f);
    blob.close();
    ch.close();
    await closed;
  });

  it("defect 3: host blobs lent to the guest are released; the device's fd count stays flat", async () => {
    const { ch, peer, closed } = await open();
    const before = deviceFdCount();
    const N = 120;
    const got = collect(ch, N);
    for (let sent = 0; sent < N; sent += 20) {
      const memfds: number[] = [];
      for (let i = 0; i < 20; i++) {
        const m = native.memfdCreate("keymap", 0);
        native.ftruncate(m, 48 * 1024);
        memfds.push(m);
      }
      await writeAll(peer, pattern(20, sent + 1), memfds);
      for (const m of memfds) native.close(m);
    }
    const r = await within(got, `${N} keymap-sized blobs at the guest`);
    expect(r.items.length).toBe(N);
    for (const it of r.items) if (it.kind === "blob") native.close(it.fd);
    // A query the device answers after it has handled every CLOSE_RESOURCE sent before it.
    await within(ch.imageRequirements(8, 8, DrmFormat.R8), "a query answered after the releases");
    expect(deviceFdCount() - before).toBeLessThanOrEqual(2);
    native.close(peer);
    ch.close();
    await closed;
  });

  it("defect 4: a released channel ring is never written again (no host bytes in another resource)", async () => {
    const gpu = openEmulatedVirtGpu(device.socket);
    const hostErrors: string[] = [];
    gpu.onHostError = (m) => hostErrors.push(m);
    let fenced = 0;
    gpu.onFence = () => {
      fenced++;
    };
    await gpu.initContext({ capsetId: CAPSET_CROSS_DOMAIN, numRings: 2, pollRingsMask: 1 << CHANNEL_RING });
    const ring = () =>
      gpu.createBlob({ blobMem: BlobMem.GUEST, blobFlags: BlobFlags.USE_MAPPABLE, size: 4096, blobId: 0 });
    const query = await ring();
    const channel = await ring();
    const init = new Uint8Array(20);
    encodeInit(init, 0, {
      form: "v1",
      queryRingId: query.resourceId,
      channelRingId: channel.resourceId,
      channelType: ChannelType.WAYLAND,
    });
    gpu.execbuffer(init);
    const peer = await host.next();
    native.setNonblockCloexec(peer);
    // The guest drops the channel ring; a new guest blob may now get the device's old fd number.
    gpu.closeBlob(channel);
    const victim = await ring();
    const victimMap = await gpu.mapBlob(victim);
    const poll = new Uint8Array(16);
    encodePoll(poll, 0);
    gpu.execbuffer(poll, { ring: CHANNEL_RING });
    await writeAll(peer, pattern(64, 11));
    const answered = new Promise<void>((resolve) => {
      const prevFence = gpu.onFence;
      gpu.onFence = () => {
        prevFence();
        resolve();
      };
      gpu.onHostError = (m) => {
        hostErrors.push(m);
        resolve();
      };
    });
    await within(answered, "a fence or a host error after the POLL");
    expect(victimMap.bytes.every((b) => b === 0)).toBe(true);
    expect(fenced).toBe(0);
    expect(hostErrors.join("\n")).toMatch(/ring resource \d+ was released/);
    victimMap.unmap();
    native.close(peer);
    gpu.close();
  });

  it("defect 5: a 16 KiB ring carries READs of up to 16 KiB − 24 bytes without halting the worker", async () => {
    const { ch, peer, closed } = await open(undefined, 16384);
    const [clientR, clientW] = native.pipe2();
    const atPeer = new Promise<number[]>((resolve) => {
      const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
      const buf = new Uint8Array(64);
      const w = native.createWatcher(peer, () => {
        const n = native.recvmsg(peer, buf, 0, buf.length, fdsOut);
        if (n === AGAIN) return;
        w.stop();
        w.close();
        resolve(Array.from(fdsOut.subarray(1, 1 + fdsOut[0]!)));
      });
      w.start(POLL_READABLE);
    });
    ch.send(pattern(4, 1), [{ kind: "read-pipe", fd: clientW }]);
    const [hostW] = await within(atPeer, "the host end of the read pipe");
    const payload = pattern(16000, 4);
    await writeAll(hostW!, payload);
    native.close(hostW!);
    const got = await within(readToEof(clientR), "the pasted bytes at the guest client");
    expect(sameBytes(got, payload)).toBe("equal");
    expect(ch.isClosed).toBe(false);
    native.close(clientR);
    native.close(peer);
    ch.close();
    await closed;
  });

  it("defect 6: a failing EXECBUFFER after dispatch ends that channel, never the process", async () => {
    const faulty = failingGpu();
    const { ch, peer, closed } = await open(faulty.gpu);
    const got = collect(ch, 8);
    faulty.fail();
    await writeAll(peer, pattern(8, 2));
    await within(got, "8 bytes at the guest");
    const reason = (await within(closed, "the channel to close")) as { kind: string; error?: CrosswayError };
    expect(reason.kind).toBe("error");
    expect(reason.error?.code).toBe("CW_VIRTGPU_IOCTL");
    native.close(peer);
  });

  it("defect 6: a failing EXECBUFFER from a write-pipe watcher ends that channel, never the process", async () => {
    const faulty = failingGpu();
    const { ch, peer, closed } = await open(faulty.gpu);
    const [hostR, hostW] = native.pipe2();
    const got = collect(ch, 1);
    await writeAll(peer, Uint8Array.of(1), [hostW]);
    native.close(hostW);
    const r = await within(got, "the write-pipe item");
    const wp = r.items[0];
    if (wp?.kind !== "write-pipe") throw new Error("expected a write pipe");
    faulty.fail();
    await writeAll(wp.fd, pattern(100, 9));
    native.close(wp.fd);
    const reason = (await within(closed, "the channel to close")) as { kind: string; error?: CrosswayError };
    expect(reason.kind).toBe("error");
    expect(reason.error?.code).toBe("CW_VIRTGPU_IOCTL");
    native.close(hostR);
    native.close(peer);
  });

  it("defect 7: a refused SEND leaves the caller's read-pipe fds to the caller (closed exactly once)", async () => {
    const { ch, peer, closed } = await open();
    const [r, w] = native.pipe2();
    // Two read pipes in one 1-byte message: they need two SENDs, but one byte can only start one.
    const [r2, w2] = native.pipe2();
    expect(() =>
      ch.send(Uint8Array.of(1), [
        { kind: "read-pipe", fd: w, end: 1 },
        { kind: "read-pipe", fd: w2, end: 1 },
      ]),
    ).toThrow(/CW_CROSSDOMAIN_LIMIT|items need/);
    // The caller (the session) still owns and closes them: this close must not fail with EBADF.
    for (const fd of [w, w2, r, r2, peer]) native.close(fd);
    ch.close();
    await closed;
  });

  it("defect 8: a full paste sink does not stop the Wayland stream", async () => {
    const { ch, peer, closed } = await open();
    const [clientR, clientW] = native.pipe2();
    const atPeer = new Promise<number[]>((resolve) => {
      const fdsOut = new Int32Array(MAX_FDS_PER_MSG + 1);
      const buf = new Uint8Array(64);
      const w = native.createWatcher(peer, () => {
        const n = native.recvmsg(peer, buf, 0, buf.length, fdsOut);
        if (n === AGAIN) return;
        w.stop();
        w.close();
        resolve(Array.from(fdsOut.subarray(1, 1 + fdsOut[0]!)));
      });
      w.start(POLL_READABLE);
    });
    ch.send(pattern(4, 1), [{ kind: "read-pipe", fd: clientW }]);
    const [hostW] = await within(atPeer, "the host end of the read pipe");
    // 256 KiB into the paste pipe, which the client does not read yet (its pipe holds 64 KiB).
    const paste = pattern(256 * 1024, 8);
    const pasting = writeAll(hostW!, paste).then(() => native.close(hostW!));
    // The client's pipe is full (the kernel's FIONREAD says so): the sink is now blocked.
    await within(pipeFull(clientR), "the client's paste pipe to fill");
    // Meanwhile the compositor answers a roundtrip: the client must get it before it drains the paste.
    const events = collect(ch, 12);
    await writeAll(peer, pattern(12, 6));
    const e = await within(events, "the compositor's events while the paste sink is full");
    expect(sameBytes(e.data, pattern(12, 6))).toBe("equal");
    const got = await within(readToEof(clientR), "the whole paste");
    await pasting;
    expect(sameBytes(got, paste)).toBe("equal");
    native.close(clientR);
    native.close(peer);
    ch.close();
    await closed;
  });
});
