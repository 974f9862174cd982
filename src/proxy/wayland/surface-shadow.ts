// Tracks wl_surface double-buffered state and decides, per commit, which buffer pixels must be copied to the host.
import { type BufferGeometry, DamageAccumulator, type Rect } from "./damage.ts";

/**
 * What the proxy knows of one wl_buffer from wl_shm: its size, and the damage its host mirror has missed.
 * The mirror is only correct where it was copied, so damage committed on other buffers of the same surface
 * accumulates here until this buffer is attached again (clients with buffer age repaint exactly that).
 */
export class ShadowBuffer {
  readonly missed = new DamageAccumulator();
  /** False until the first full copy: a new mirror holds nothing of the client's pixels. */
  copiedOnce = false;

  constructor(
    readonly id: number,
    readonly width: number,
    readonly height: number,
  ) {}
}

/** A commit's copy work: which buffer, and which buffer-pixel rectangles of it. */
export interface CopyPlan {
  readonly buffer: ShadowBuffer;
  readonly rects: Rect[];
}

interface Viewport {
  source: { x: number; y: number; width: number; height: number } | null;
  destination: { width: number; height: number } | null;
}

/** One wl_surface's state as far as copying is concerned (wl_surface's double-buffered attach/damage/scale...). */
export class SurfaceShadow {
  // Pending state, applied on commit (wl_surface.commit semantics).
  private pendingBuffer: ShadowBuffer | null | undefined = undefined; // undefined = no attach this commit
  private pendingScale: number | undefined;
  private pendingTransform: number | undefined;
  private readonly pendingViewport: Viewport = { source: null, destination: null };
  private viewportDirty = false;
  private readonly surfaceDamage: Rect[] = [];
  private readonly bufferDamage: Rect[] = [];
  private damageOverflow = false;

  // Current state.
  private buffer: ShadowBuffer | null = null;
  private scale = 1;
  private transform = 0;
  private readonly viewport: Viewport = { source: null, destination: null };
  /** Buffers ever attached here whose mirrors must hear about this surface's damage. */
  private readonly seen = new Set<ShadowBuffer>();

  /** wl_surface.attach: null detaches. */
  attach(buffer: ShadowBuffer | null): void {
    this.pendingBuffer = buffer;
  }

  /** wl_surface.damage (surface coordinates). */
  damage(r: Rect): void {
    this.pushDamage(this.surfaceDamage, r);
  }

  /** wl_surface.damage_buffer (buffer pixels). */
  damageBuffer(r: Rect): void {
    this.pushDamage(this.bufferDamage, r);
  }

  setScale(scale: number): void {
    this.pendingScale = scale;
  }

  setTransform(transform: number): void {
    this.pendingTransform = transform;
  }

  /** wp_viewport.set_source; null when the client unsets it (all -1). */
  setViewportSource(src: Viewport["source"]): void {
    this.pendingViewport.source = src;
    this.viewportDirty = true;
  }

  /** wp_viewport.set_destination; null when unset (-1, -1). */
  setViewportDestination(dst: Viewport["destination"]): void {
    this.pendingViewport.destination = dst;
    this.viewportDirty = true;
  }

  /** The buffer's wl_buffer was destroyed: forget it so no damage is kept for it. */
  forgetBuffer(buffer: ShadowBuffer): void {
    this.seen.delete(buffer);
    if (this.buffer === buffer) this.buffer = null;
    if (this.pendingBuffer === buffer) this.pendingBuffer = null;
  }

  /**
   * wl_surface.commit: applies pending state and returns the copy to do before forwarding the commit, or null
   * when there is no buffer. `attached` says whether this commit attached a buffer (the client then expects a
   * wl_buffer.release for it).
   */
  commit(): { plan: CopyPlan | null; attached: boolean } {
    const attached = this.pendingBuffer !== undefined;
    let geometryChanged = false;
    if (this.pendingBuffer !== undefined) {
      const prev = this.buffer;
      this.buffer = this.pendingBuffer;
      if (
        prev !== null &&
        this.buffer !== null &&
        (prev.width !== this.buffer.width || prev.height !== this.buffer.height)
      ) {
        geometryChanged = true;
      }
      this.pendingBuffer = undefined;
    }
    if (this.pendingScale !== undefined && this.pendingScale !== this.scale) {
      this.scale = this.pendingScale;
      geometryChanged = true;
    }
    this.pendingScale = undefined;
    if (this.pendingTransform !== undefined && this.pendingTransform !== this.transform) {
      this.transform = this.pendingTransform;
      geometryChanged = true;
    }
    this.pendingTransform = undefined;
    if (this.viewportDirty) {
      this.viewport.source = this.pendingViewport.source;
      this.viewport.destination = this.pendingViewport.destination;
      this.viewportDirty = false;
      geometryChanged = true;
    }
    const current = this.buffer;
    if (current === null) {
      this.clearPendingDamage();
      return { plan: null, attached };
    }
    // This commit's damage in the current buffer's pixels.
    const commitDamage = new DamageAccumulator();
    if (this.damageOverflow || geometryChanged) {
      commitDamage.setFull();
    } else {
      const g = this.geometry(current);
      for (const r of this.surfaceDamage) commitDamage.addSurface(g, r);
      for (const r of this.bufferDamage) commitDamage.addBuffer(r, current.width, current.height);
    }
    this.clearPendingDamage();
    const rects = commitDamage.take(current.width, current.height);
    // Every other mirror of this surface missed these pixels.
    for (const other of this.seen) {
      if (other === current) continue;
      if (other.width !== current.width || other.height !== current.height) other.missed.setFull();
      else for (const r of rects) other.missed.addBuffer(r, other.width, other.height);
    }
    this.seen.add(current);
    if (!attached && rects.length === 0) return { plan: null, attached };
    if (!current.copiedOnce) current.missed.setFull();
    for (const r of rects) current.missed.addBuffer(r, current.width, current.height);
    current.copiedOnce = true;
    return { plan: { buffer: current, rects: current.missed.take(current.width, current.height) }, attached };
  }

  private geometry(b: ShadowBuffer): BufferGeometry {
    return {
      bufferWidth: b.width,
      bufferHeight: b.height,
      scale: this.scale,
      transform: this.transform,
      viewportSource: this.viewport.source,
      viewportDestination: this.viewport.destination,
    };
  }

  private pushDamage(list: Rect[], r: Rect): void {
    // A client may send any number of damage requests; past a bound the commit is simply a full copy.
    if (list.length >= 64) {
      this.damageOverflow = true;
      return;
    }
    list.push(r);
  }

  private clearPendingDamage(): void {
    this.surfaceDamage.length = 0;
    this.bufferDamage.length = 0;
    this.damageOverflow = false;
  }
}
