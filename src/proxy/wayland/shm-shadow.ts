// wl_shm shadowing for one guest client: its pools live in host blobs, buffers are views of them, and each commit
// copies the damaged part of the attached buffer from the client's memory into the host blob (split out of the
// session, issue 12). The session routes the wl_shm, wl_shm_pool, wl_buffer, wl_surface and wp_viewport hooks here.
import type { CrossDomainChannel, SendItem } from "../../crossdomain/channel.ts";
import { createUnmappedLinearBlob, linearBlobBucket } from "../../crossdomain/linear-blob.ts";
import type { RecentBlobSizes } from "../../crossdomain/recent-blob-sizes.ts";
import { native } from "../../native.ts";
import { DisplayErrorCode, type WireProtocolError } from "../../wire/wayland/errors.ts";
import type { MessageWriter } from "../../wire/wayland/message-writer.ts";
import type { ObjectMap } from "../../wire/wayland/object-map.ts";
import type { InterfaceDesc, MessageDesc, ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";
import type { DecodedMessage } from "../../wire/wayland/wire-connection.ts";
import type { GuestConfig } from "./guest-config.ts";
import { msg } from "./message-desc.ts";
import { PoolBlob, ShmBuffer, ShmPool } from "./shm-pools.ts";
import { SurfaceShadow } from "./surface-shadow.ts";

/** wl_shm.error values (wayland.xml). */
const ShmError = { INVALID_FORMAT: 0, INVALID_STRIDE: 1, INVALID_FD: 2 } as const;

/** Largest wl_shm pool a guest client may create (host memory is the VMM's, and not ours to waste). */
const MAX_POOL_SIZE = 1 << 30;

/** How long an idle pool blob waits for the client's next pool before its host memory is given back. */
const SPARE_KEEP_MS = 2000;

/** What the shadow needs of its session. */
export interface ShmHost {
  readonly closed: boolean;
  readonly channel: CrossDomainChannel;
  readonly registry: ProtocolRegistry;
  readonly config: GuestConfig;
  readonly objects: ObjectMap;
  /** The guest's recent pool sizes, for channels that ask their requirements ahead (recent-blob-sizes.ts). */
  readonly blobSizes: RecentBlobSizes;
  /** The session's request writer towards the host. */
  readonly toHost: MessageWriter;
  /** An item for the message just written to toHost. */
  pushItem(item: SendItem): void;
  clientError(objectId: number, code: number, message: string): WireProtocolError;
  /** Forwards the current request unchanged. */
  forwardRaw(m: DecodedMessage): void;
  /** Sends the client wl_buffer.release for `bufferId` now. */
  releaseBuffer(bufferId: number): void;
}

type Hook = (m: DecodedMessage) => Promise<void> | undefined | "drop";

/** The wl_shm state of one client. */
export class ShmShadow {
  private readonly pools = new Map<number, ShmPool>();
  private readonly buffers = new Map<number, ShmBuffer>();
  private readonly surfaces = new Map<number, SurfaceShadow>();
  private readonly viewports = new Map<number, SurfaceShadow>();
  /** Pools the proxy destroyed and recreated on the host: their host delete_id must not reach the client. */
  private readonly recreated = new Map<number, { iface: InterfaceDesc; version: number; pending: number }>();

  /** Bytes of host blob memory this client's pools hold (checked against config.maxShmBytes), the spare included. */
  shmBytes = 0;
  /**
   * The client's last idle pool blob, kept for a while for its next pool of the same size bucket. Clients replace
   * their pool on every resize (foot: destroy, then create_pool of the same size): reusing the blob saves two host
   * round trips, a mapping, and the first-touch page faults of fresh host memory, which on a VM cost more than the
   * copy itself (measured here: 70-108 ms for foot's first 800x600 frame into a new blob, 0.1 ms into a used one).
   * Only this client's own pools ever reuse it, and a new buffer is always copied whole before the host sees it.
   */
  private spare: PoolBlob | null = null;
  private spareTimer: ReturnType<typeof setTimeout> | null = null;
  private closing = false;

  constructor(private readonly host: ShmHost) {}

  /** Registers the request and event hooks of wl_shm shadowing with the session. */
  install(
    req: (iface: string, name: string, hook: Hook) => void,
    ev: (iface: string, name: string, hook: Hook) => void,
  ): void {
    req("wl_shm", "create_pool", (m) => this.onCreatePool(m));
    req("wl_shm_pool", "create_buffer", (m) => this.onCreateBuffer(m));
    req("wl_shm_pool", "resize", (m) => this.onResizePool(m));
    req("wl_shm_pool", "destroy", (m) => {
      this.pools.get(m.objectId)?.unref();
      this.pools.delete(m.objectId);
      return undefined;
    });
    req("wl_buffer", "destroy", (m) => {
      const b = this.buffers.get(m.objectId);
      if (b !== undefined) {
        for (const s of this.surfaces.values()) s.forgetBuffer(b);
        b.release();
        this.buffers.delete(m.objectId);
      }
      return undefined;
    });
    ev("wl_buffer", "release", (m) => (this.buffers.has(m.objectId) ? "drop" : undefined));
    req("wl_compositor", "create_surface", (m) => {
      this.surfaces.set(m.args.id(0), new SurfaceShadow());
      return undefined;
    });
    req("wl_surface", "destroy", (m) => {
      this.surfaces.delete(m.objectId);
      return undefined;
    });
    req("wl_surface", "attach", (m) => {
      this.surfaces.get(m.objectId)?.attach(this.buffers.get(m.args.id(0)) ?? null);
      return undefined;
    });
    req("wl_surface", "damage", (m) => this.damage(m, false));
    req("wl_surface", "damage_buffer", (m) => this.damage(m, true));
    req("wl_surface", "set_buffer_scale", (m) => {
      this.surfaces.get(m.objectId)?.setScale(Math.max(1, m.args.int(0)));
      return undefined;
    });
    req("wl_surface", "set_buffer_transform", (m) => {
      this.surfaces.get(m.objectId)?.setTransform(m.args.int(0) & 7);
      return undefined;
    });
    req("wl_surface", "commit", (m) => this.onCommit(m));
    req("wp_viewporter", "get_viewport", (m) => {
      const s = this.surfaces.get(m.args.id(1));
      if (s !== undefined) this.viewports.set(m.args.id(0), s);
      return undefined;
    });
    req("wp_viewport", "set_source", (m) => {
      const [x, y, w, h] = [m.args.fixed(0), m.args.fixed(1), m.args.fixed(2), m.args.fixed(3)];
      const unset = x === -1 && y === -1 && w === -1 && h === -1;
      this.viewports.get(m.objectId)?.setViewportSource(unset ? null : { x, y, width: w, height: h });
      return undefined;
    });
    req("wp_viewport", "set_destination", (m) => {
      const [w, h] = [m.args.int(0), m.args.int(1)];
      this.viewports
        .get(m.objectId)
        ?.setViewportDestination(w === -1 && h === -1 ? null : { width: w, height: h });
      return undefined;
    });
    req("wp_viewport", "destroy", (m) => {
      const s = this.viewports.get(m.objectId);
      s?.setViewportSource(null);
      s?.setViewportDestination(null);
      this.viewports.delete(m.objectId);
      return undefined;
    });
    // The host frees a pool id the proxy recreated: the client's object lives on.
    ev("wl_display", "delete_id", (m) => this.onDeleteId(m));
  }

  private onCreatePool(m: DecodedMessage): Promise<void> {
    const shmId = m.objectId;
    const id = m.args.id(0);
    const fd = m.args.fd(1);
    const size = m.args.int(2);
    const bytes = m.view.retain();
    if (size <= 0 || size > MAX_POOL_SIZE) {
      native.close(fd);
      throw this.host.clientError(shmId, ShmError.INVALID_STRIDE, `invalid size (${size})`);
    }
    try {
      this.checkShmQuota(m, size);
    } catch (err) {
      native.close(fd);
      throw err;
    }
    return this.newPoolBlob(size).then(
      (blob) => {
        if (this.host.closed) {
          native.close(fd);
          blob.unref();
          return;
        }
        this.pools.set(id, new ShmPool(id, shmId, fd, size, blob));
        this.host.toHost.rawBytes(bytes);
        this.host.pushItem({ kind: "blob", resourceId: blob.blob.resourceId });
      },
      (err: unknown) => {
        native.close(fd);
        throw err;
      },
    );
  }

  /**
   * Refuses a pool that would bring this client's host shm memory past the configured limit, the way a
   * compositor answers an allocation it cannot make (wl_display.error no_memory), with the figures in the message.
   */
  private checkShmQuota(m: DecodedMessage, size: number): void {
    // The spare is reused or released by the pool being made, so it does not count against it.
    const wanted = this.shmBytes - (this.spare?.capacity ?? 0) + linearBlobBucket(size);
    if (wanted <= this.host.config.maxShmBytes) return;
    const desc = m.desc as MessageDesc;
    throw this.host.clientError(
      1,
      DisplayErrorCode.NO_MEMORY,
      `no memory: ${desc.iface.name}@${m.objectId}.${desc.name}(size ${size}) would bring this client's host shm to ${wanted} bytes (limit ${this.host.config.maxShmBytes})`,
    );
  }

  private async newPoolBlob(size: number): Promise<PoolBlob> {
    const bucket = linearBlobBucket(size);
    const spare = this.takeSpare();
    if (spare !== null) {
      if (spare.bucket === bucket && spare.capacity >= size) {
        spare.revive();
        return spare;
      }
      this.disposeBlob(spare);
    }
    const blob = await createUnmappedLinearBlob(this.host.channel, size, this.host.blobSizes);
    this.shmBytes += blob.size;
    return new PoolBlob(blob, bucket, (idle) => this.onBlobIdle(idle));
  }

  private onCreateBuffer(m: DecodedMessage): Promise<void> | undefined {
    const pool = this.pools.get(m.objectId);
    if (pool === undefined) return undefined;
    const [id, offset, width, height, stride, format] = [
      m.args.id(0),
      m.args.int(1),
      m.args.int(2),
      m.args.int(3),
      m.args.int(4),
      m.args.uint(5),
    ];
    // wayland-shm.c shm_pool_create_buffer's checks and wording; they also keep our copies inside the pool.
    if (
      offset < 0 ||
      width <= 0 ||
      height <= 0 ||
      stride < width ||
      Math.floor(0x7fffffff / stride) <= height ||
      offset > pool.size - stride * height
    ) {
      throw this.host.clientError(
        m.objectId,
        ShmError.INVALID_STRIDE,
        `invalid width, height or stride (${width}x${height}, ${stride})`,
      );
    }
    this.buffers.set(id, new ShmBuffer(id, pool, pool.current, offset, width, height, stride, format));
    const end = offset + stride * height;
    if (pool.current.covers(offset, end)) return undefined;
    // Map the blob's window for this buffer before the client's next request (its attach and commit) is read.
    this.host.forwardRaw(m);
    return pool.current.cover(offset, end);
  }

  private onResizePool(m: DecodedMessage): Promise<void> | undefined {
    const pool = this.pools.get(m.objectId);
    if (pool === undefined) return undefined;
    const size = m.args.int(0);
    if (size < pool.size)
      throw this.host.clientError(m.objectId, ShmError.INVALID_FD, "shrinking pool invalid");
    if (size > MAX_POOL_SIZE)
      throw this.host.clientError(m.objectId, ShmError.INVALID_STRIDE, `invalid size (${size})`);
    if (size <= pool.current.capacity) {
      pool.grow(size);
      return undefined;
    }
    // The host blob cannot grow: give the host a new pool under the same id (destroy, then create_pool again).
    // Buffers made before keep their old blob; the host's delete_id for the old pool is kept from the client.
    this.checkShmQuota(m, size);
    const shm = this.host.objects.live(pool.shmId);
    if (shm === null) {
      throw this.host.clientError(
        m.objectId,
        ShmError.INVALID_FD,
        "cannot grow a pool after wl_shm was released",
      );
    }
    const poolIface = this.host.objects.live(pool.id) as InterfaceDesc;
    const version = this.host.objects.version(pool.id);
    const createPool = msg(this.host.registry, "wl_shm", "create_pool", false) as MessageDesc;
    const destroy = msg(this.host.registry, "wl_shm_pool", "destroy", false) as MessageDesc;
    return this.newPoolBlob(size).then((blob) => {
      if (this.host.closed) {
        blob.unref();
        return;
      }
      this.host.toHost.begin(pool.id, destroy.opcode).end();
      this.host.toHost.begin(pool.shmId, createPool.opcode).uint(pool.id).int(size).end();
      this.host.pushItem({ kind: "blob", resourceId: blob.blob.resourceId });
      const r = this.recreated.get(pool.id);
      this.recreated.set(pool.id, { iface: poolIface, version, pending: (r?.pending ?? 0) + 1 });
      pool.current.unref();
      pool.current = blob;
      pool.grow(size);
    });
  }

  /** wl_display.delete_id of a pool the proxy recreated: dropped, the client's object lives on. */
  /** How many ids {@link onDeleteId} acts on now (0: every delete_id passes untouched). */
  get watchedDeleteIds(): number {
    return this.recreated.size;
  }

  onDeleteId(m: DecodedMessage): "drop" | undefined {
    const id = m.args.uint(0);
    const r = this.recreated.get(id);
    if (r === undefined) return undefined;
    if (--r.pending === 0) this.recreated.delete(id);
    // The wire layer freed the id; the client's object is still alive (or a zombie awaiting its own delete_id).
    this.host.objects.insert(id, r.iface, r.version);
    if (!this.pools.has(id)) this.host.objects.destroy(id);
    return "drop";
  }

  private damage(m: DecodedMessage, buffer: boolean): undefined {
    const s = this.surfaces.get(m.objectId);
    if (s === undefined) return undefined;
    const r = { x: m.args.int(0), y: m.args.int(1), width: m.args.int(2), height: m.args.int(3) };
    if (buffer) s.damageBuffer(r);
    else s.damage(r);
    return undefined;
  }

  private onCommit(m: DecodedMessage): "drop" | undefined {
    const s = this.surfaces.get(m.objectId);
    if (s === undefined) return undefined;
    const { plan, attached } = s.commit();
    if (plan === null) return undefined;
    const b = plan.buffer as ShmBuffer;
    const res = b.copy(plan.rects);
    if (!res.ok) {
      // What libwayland's wl_shm SIGBUS handler reports (wayland-shm.c wl_shm_buffer_end_access).
      throw this.host.clientError(b.id, ShmError.INVALID_FD, "error accessing SHM buffer");
    }
    // A first copy that went file to file leaves the mappings' pages untouched: touch them once the commit has left
    // (setImmediate runs after this batch's flush to the host), off the first frame's path.
    if (b.cold) setImmediate(() => b.warm());
    if (attached) {
      // The copy is all the host will read: the client may reuse its buffer now (Sommelier does the same).
      this.host.forwardRaw(m);
      this.host.releaseBuffer(b.id);
      return "drop";
    }
    return undefined;
  }

  /** A blob lost its last pool and buffer: it becomes the spare (the previous spare goes), unless closing. */
  private onBlobIdle(b: PoolBlob): void {
    if (this.closing || this.host.closed) {
      this.disposeBlob(b);
      return;
    }
    const old = this.takeSpare();
    if (old !== null) this.disposeBlob(old);
    this.spare = b;
    this.spareTimer = setTimeout(() => {
      this.spareTimer = null;
      const s = this.takeSpare();
      if (s !== null) this.disposeBlob(s);
    }, SPARE_KEEP_MS);
    this.spareTimer.unref();
  }

  private takeSpare(): PoolBlob | null {
    const s = this.spare;
    this.spare = null;
    if (this.spareTimer !== null) clearTimeout(this.spareTimer);
    this.spareTimer = null;
    return s;
  }

  private disposeBlob(b: PoolBlob): void {
    this.shmBytes -= b.capacity;
    b.dispose();
  }

  /** Releases every pool and buffer (the session ended). */
  close(): void {
    this.closing = true;
    for (const b of this.buffers.values()) b.release();
    this.buffers.clear();
    for (const p of this.pools.values()) p.unref();
    this.pools.clear();
    this.surfaces.clear();
    this.viewports.clear();
    const s = this.takeSpare();
    if (s !== null) this.disposeBlob(s);
  }
}
