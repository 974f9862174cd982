// PipeWire buffers a guest client allocated itself (memfds in ClientNode.PortBuffers), carried as host blobs and
// copied in the direction the data flows on every signal of their node, with the wl_shm pools' copy engine.
//
//   output port (the client produces): client memfd ──copy, before each signal of the node leaves──▶ host blob
//   input port (the client consumes):  host blob ──copy, when the host signals the node, before the client wakes──▶ memfd
//
// The host (filter, daemon) sees only the blob: a guest client can neither shrink it under the daemon nor write it
// outside a cycle. A memfd is the only kind that can be mirrored this way: a guest dmabuf's memory and layout are the
// guest driver's, MemPtr has no fd, and the rest name no memory at all (refused, naming the type).
import type { CrossDomainChannel, HostBlob, SendItem } from "../../crossdomain/channel.ts";
import { createLinearBlob } from "../../crossdomain/linear-blob.ts";
import type { BlobMapping } from "../../crossdomain/virtgpu.ts";
import { CrosswayError } from "../../errors.ts";
import { MAP_SHARED, PROT_READ } from "../../fd/constants.ts";
import { native } from "../../native.ts";
import type { Pod } from "../../wire/pipewire/pod-types.ts";
import { expectInt } from "../../wire/pipewire/protocol.ts";
import { copyRects, type ShmBufferLayout, type ShmSource } from "../wayland/shm-copy.ts";

/** spa_data_type (spa/buffer/buffer.h). */
const DATA_TYPES = ["Invalid", "MemPtr", "MemFd", "DmaBuf", "MemId", "SyncObj"];
const DATA_MEMFD = 2;
/** SPA_DIRECTION_INPUT / OUTPUT (spa/utils/defs.h). */
const DIRECTION_INPUT = 0;
const DIRECTION_OUTPUT = 1;
/** PipeWire's own cap on buffers per port (module-client-node/protocol-native.c). */
const MAX_BUFFERS = 64;
/** Datas per buffer: planes (video) or channels (planar audio). */
const MAX_DATAS = 64;
/** Host memory one client's carried buffers may hold (pipewire.md §7.7 suggests 256 MiB per connection). */
export const MAX_CARRIED_BYTES = 256 * 1024 * 1024;

/** One client memfd and the host blob that mirrors it byte for byte, up to the end of its last data range. */
interface CarriedFd {
  readonly source: ShmSource;
  /** The memfd's size (fstat), which every data range must lie in. */
  readonly fileSize: number;
  /** Bytes mirrored: the end of the furthest data range in this fd (the host blob needs no more). */
  readonly size: number;
  blob: HostBlob | null;
  mapping: BlobMapping | null;
}

/** One spa_data: where it lives in its fd. */
interface CarriedData {
  readonly fd: CarriedFd;
  readonly layout: ShmBufferLayout;
}

interface CarriedPort {
  readonly nodeId: number;
  readonly direction: number;
  readonly fds: CarriedFd[];
  readonly datas: CarriedData[];
}

/** A copy that could not complete: the client shrank its memfd under its own buffer. */
export interface CarryFailure {
  readonly nodeId: number;
  readonly message: string;
}

/** The client-allocated buffers of one guest PipeWire client, by "node/direction/port/mix". */
export class ClientBuffers {
  private readonly ports = new Map<string, CarriedPort>();
  /** Host blob bytes held (capacity, checked against {@link MAX_CARRIED_BYTES}). */
  bytes = 0;
  /** Copies done and bytes moved, for the session's end-of-session counters. */
  readonly stats = { copies: 0, copiedBytes: 0 };
  private closed = false;

  constructor(private readonly channel: CrossDomainChannel) {}

  /**
   * Checks a PortBuffers(direction, port_id, mix_id, n_buffers, (n_datas, (type, fd, flags, mapoffset, maxsize)*)*)
   * that answers the daemon's ALLOC request for `requested` buffers, and makes one host blob per fd. Takes `fds`
   * (closed here on error). Resolves to the items to send in place of the fds, in fd-index order, so every Fd index
   * of the forwarded payload keeps its meaning.
   */
  async carry(
    what: string,
    nodeId: number,
    fields: readonly Pod[],
    fds: number[],
    requested: number,
  ): Promise<SendItem[]> {
    const carried: CarriedFd[] = fds.map((fd) => ({
      source: { fd, mapping: null, base: 0 },
      fileSize: -1,
      size: 0,
      blob: null,
      mapping: null,
    }));
    try {
      const direction = expectInt(fields[0], `${what} direction`);
      if (direction !== DIRECTION_INPUT && direction !== DIRECTION_OUTPUT)
        throw refuse(`${what}: direction ${direction}`, direction);
      const key = `${nodeId}/${direction}/${expectInt(fields[1], `${what} port_id`)}/${expectInt(fields[2], `${what} mix_id`)}`;
      const nBuffers = expectInt(fields[3], `${what} n_buffers`);
      if (nBuffers !== requested || nBuffers > MAX_BUFFERS)
        throw refuse(`${what}: ${nBuffers} buffers, the daemon asked for ${requested}`, nBuffers);
      const datas = this.readDatas(what, fields, nBuffers, carried);
      if (carried.some((c) => c.size === 0))
        throw refuse(`${what}: ${fds.length} fds, but not every one is named by a data`, fds.length);
      const wanted = carried.reduce((n, c) => n + c.size, 0);
      if (this.bytes + wanted > MAX_CARRIED_BYTES) {
        throw refuse(
          `${what}: ${wanted} bytes of client buffers would bring this client's host memory to ${this.bytes + wanted} (limit ${MAX_CARRIED_BYTES})`,
          wanted,
        );
      }
      for (const c of carried) {
        const { blob, mapping } = await createLinearBlob(this.channel, c.size);
        c.blob = blob;
        c.mapping = mapping;
        this.bytes += mapping.bytes.byteLength;
        // Mapped from the file's start, as the blob mirrors it (base 0).
        (c as { source: ShmSource }).source = {
          fd: c.source.fd,
          mapping: mapRead(c.source.fd, c.size),
          base: 0,
        };
      }
      if (this.closed) throw refuse(`${what}: the connection ended while its buffers were being made`, -1);
      this.dropPort(key);
      const port: CarriedPort = { nodeId, direction, fds: carried, datas };
      this.ports.set(key, port);
      // The daemon reads what the client prepared before its first cycle too.
      if (direction === DIRECTION_OUTPUT) this.copyPort(port);
      return carried.map((c) => ({ kind: "blob", resourceId: (c.blob as HostBlob).resourceId }));
    } catch (err) {
      for (const c of carried) this.release(c);
      throw err;
    }
  }

  /** Reads the data entries, sizing each fd (fstat) and checking every range lies inside it. */
  private readDatas(
    what: string,
    fields: readonly Pod[],
    nBuffers: number,
    carried: CarriedFd[],
  ): CarriedData[] {
    const out: CarriedData[] = [];
    let at = 4;
    for (let b = 0; b < nBuffers; b++) {
      const nDatas = expectInt(fields[at++], `${what} buffer ${b} n_datas`);
      if (nDatas < 0 || nDatas > MAX_DATAS) throw refuse(`${what}: buffer ${b} with ${nDatas} datas`, nDatas);
      for (let i = 0; i < nDatas; i++, at += 5) {
        const where = `${what} buffer ${b} data ${i}`;
        const t = fields[at];
        const type = t?.t === "id" ? t.v : -1;
        const fdPod = fields[at + 1];
        if (type !== DATA_MEMFD) {
          throw refuse(
            `${where}: data type ${DATA_TYPES[type] ?? type} cannot be carried to the host (only MemFd can be ` +
              "mirrored into a host blob: a guest DmaBuf's memory and layout are the guest driver's, MemPtr has no fd)",
            type,
          );
        }
        if (fdPod?.t !== "fd" || fdPod.v < 0n || fdPod.v >= BigInt(carried.length))
          throw refuse(
            `${where}: fd index ${fdPod?.t === "fd" ? fdPod.v : "missing"} of ${carried.length}`,
            -1,
          );
        const c = carried[Number(fdPod.v)] as CarriedFd;
        const offset = expectInt(fields[at + 3], `${where} mapoffset`);
        const size = expectInt(fields[at + 4], `${where} maxsize`);
        if (c.fileSize < 0) (c as { fileSize: number }).fileSize = native.fstat(c.source.fd).size;
        if (offset < 0 || size <= 0 || offset + size > c.fileSize) {
          throw refuse(
            `${where}: mapoffset ${offset} + maxsize ${size} lies outside its memfd of ${c.fileSize} bytes`,
            offset + size,
          );
        }
        (c as { size: number }).size = Math.max(c.size, offset + size);
        out.push({ fd: c, layout: { offset, width: size, height: 1, stride: size, bpp: 1 } });
      }
    }
    if (at !== fields.length) throw refuse(`${what}: ${fields.length - at} trailing fields`, fields.length);
    return out;
  }

  /** The node's client is about to signal the host: its output buffers reach the host blobs first. */
  toHost(nodeId: number): CarryFailure | null {
    for (const p of this.ports.values()) {
      if (p.nodeId !== nodeId || p.direction !== DIRECTION_OUTPUT) continue;
      const failure = this.copyPort(p);
      if (failure !== null) return failure;
    }
    return null;
  }

  /** The host signalled the node: its input buffers reach the client's memory before the client wakes. */
  fromHost(nodeId: number): CarryFailure | null {
    for (const p of this.ports.values()) {
      if (p.nodeId !== nodeId || p.direction !== DIRECTION_INPUT) continue;
      for (const d of p.datas) {
        const { offset, width } = d.layout;
        const src = (d.fd.mapping as BlobMapping).bytes;
        // pwrite, not a store into a mapping: a client that shrank its memfd gets a longer file, never our SIGBUS.
        let done = 0;
        while (done < width) {
          const n = native.pwrite(d.fd.source.fd, src, offset + done, width - done, offset + done);
          if (n <= 0) return { nodeId, message: `write into the client's buffer failed at ${offset + done}` };
          done += n;
        }
        this.stats.copies++;
        this.stats.copiedBytes += width;
      }
    }
    return null;
  }

  private copyPort(p: CarriedPort): CarryFailure | null {
    for (const d of p.datas) {
      const r = copyRects(d.fd.source, d.fd.mapping as BlobMapping, d.layout, [
        { x: 0, y: 0, width: d.layout.width, height: 1 },
      ]);
      if (!r.ok) {
        return {
          nodeId: p.nodeId,
          message: `the client's buffer memfd ends before byte ${r.at} (it shrank its own buffer)`,
        };
      }
      this.stats.copies++;
      this.stats.copiedBytes += r.bytes;
    }
    return null;
  }

  /** Whether the node has carried buffers (its eventfds then need the copy hooks). */
  has(nodeId: number): boolean {
    for (const p of this.ports.values()) if (p.nodeId === nodeId) return true;
    return false;
  }

  /** New buffers (or none) for a port: the carried ones are released (the host keeps its own fds of the blobs). */
  dropPort(key: string): void {
    const p = this.ports.get(key);
    if (p === undefined) return;
    this.ports.delete(key);
    for (const c of p.fds) this.release(c);
  }

  /** The node's id was removed. */
  forgetNode(nodeId: number): void {
    for (const [k, p] of this.ports) if (p.nodeId === nodeId) this.dropPort(k);
  }

  close(): void {
    this.closed = true;
    for (const k of [...this.ports.keys()]) this.dropPort(k);
  }

  private release(c: CarriedFd): void {
    if (c.source.mapping !== null) native.munmap(c.source.mapping);
    native.close(c.source.fd);
    if (c.mapping !== null) {
      this.bytes -= c.mapping.bytes.byteLength;
      c.mapping.unmap();
    }
    c.blob?.close();
  }
}

/** The client's memfd mapped read-only once (a mapping per copy would fault in every page per cycle), else null. */
function mapRead(fd: number, size: number): ArrayBuffer | null {
  try {
    return native.mmap(fd, size, PROT_READ, MAP_SHARED, 0);
  } catch {
    return null;
  }
}

function refuse(message: string, value: number): CrosswayError {
  return new CrosswayError("CW_PWG_CLIENT_FD", message, { iface: "ClientNode", value });
}
