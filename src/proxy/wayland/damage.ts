// Maps surface and buffer damage to the buffer-pixel rectangles a commit must copy (scale, transform, viewport).

/** An axis-aligned rectangle in integer pixels; width and height are > 0 once clamped. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** wl_output.transform values (core protocol): rotations counter-clockwise, then the flipped variants. */
export const Transform = {
  normal: 0,
  rot90: 1,
  rot180: 2,
  rot270: 3,
  flipped: 4,
  flipped90: 5,
  flipped180: 6,
  flipped270: 7,
} as const;

/** The surface state that decides how surface coordinates map onto buffer pixels. */
export interface BufferGeometry {
  /** Buffer size in pixels. */
  readonly bufferWidth: number;
  readonly bufferHeight: number;
  /** wl_surface.set_buffer_scale (>= 1). */
  readonly scale: number;
  /** wl_surface.set_buffer_transform (0..7). */
  readonly transform: number;
  /** wp_viewport.set_source in post-transform, post-scale buffer coordinates (wl_fixed as doubles), or null. */
  readonly viewportSource: { x: number; y: number; width: number; height: number } | null;
  /** wp_viewport.set_destination in surface coordinates, or null. */
  readonly viewportDestination: { width: number; height: number } | null;
}

/** Most rectangles kept per commit before they are merged into their bounding box (copy cost stays bounded). */
export const MAX_DAMAGE_RECTS = 16;

/**
 * Converts one surface-coordinate damage rectangle to buffer pixels, rounding outwards. The inverse of the
 * buffer-to-surface chain (wl_surface's spec: transform, then scale, then viewport crop and scale). A viewport
 * that scales adds one pixel of margin on each side, because the compositor's filter reads neighbours.
 */
export function surfaceToBuffer(g: BufferGeometry, r: Rect): Rect {
  const swapped = (g.transform & 1) === 1;
  // Size of the buffer after transform and scale: the "surface-space" size before the viewport applies.
  const tw = (swapped ? g.bufferHeight : g.bufferWidth) / g.scale;
  const th = (swapped ? g.bufferWidth : g.bufferHeight) / g.scale;
  let x0 = r.x;
  let y0 = r.y;
  let x1 = r.x + r.width;
  let y1 = r.y + r.height;
  let margin = 0;
  const src = g.viewportSource ?? { x: 0, y: 0, width: tw, height: th };
  const dst =
    g.viewportDestination ?? (g.viewportSource !== null ? { width: src.width, height: src.height } : null);
  if (dst !== null && dst.width > 0 && dst.height > 0) {
    const sx = src.width / dst.width;
    const sy = src.height / dst.height;
    x0 = src.x + x0 * sx;
    x1 = src.x + x1 * sx;
    y0 = src.y + y0 * sy;
    y1 = src.y + y1 * sy;
    if (sx !== 1 || sy !== 1) margin = 1;
  }
  // Into transformed buffer pixels.
  x0 *= g.scale;
  x1 *= g.scale;
  y0 *= g.scale;
  y1 *= g.scale;
  const W = tw * g.scale; // transformed width in pixels
  const H = th * g.scale;
  // Undo the transform: map the rectangle's corners from transformed space back to buffer space. The point
  // formulas are libweston's weston_transformed_coord after its fix of swapped 90/270 cases (older weston had
  // them the other way round, which is why this cites the corrected version).
  let bx0: number;
  let by0: number;
  let bx1: number;
  let by1: number;
  switch (g.transform & 7) {
    case Transform.normal:
      [bx0, by0, bx1, by1] = [x0, y0, x1, y1];
      break;
    case Transform.rot90: // buffer rotated 90° ccw to make the surface: surface (x,y) = buffer (y, W'-x)
      [bx0, by0, bx1, by1] = [y0, W - x1, y1, W - x0];
      break;
    case Transform.rot180:
      [bx0, by0, bx1, by1] = [W - x1, H - y1, W - x0, H - y0];
      break;
    case Transform.rot270:
      [bx0, by0, bx1, by1] = [H - y1, x0, H - y0, x1];
      break;
    case Transform.flipped:
      [bx0, by0, bx1, by1] = [W - x1, y0, W - x0, y1];
      break;
    case Transform.flipped90:
      [bx0, by0, bx1, by1] = [y0, x0, y1, x1];
      break;
    case Transform.flipped180:
      [bx0, by0, bx1, by1] = [x0, H - y1, x1, H - y0];
      break;
    default: // flipped270
      [bx0, by0, bx1, by1] = [H - y1, W - x1, H - y0, W - x0];
      break;
  }
  return clamp(
    {
      x: Math.floor(bx0) - margin,
      y: Math.floor(by0) - margin,
      width: Math.ceil(bx1) - Math.floor(bx0) + 2 * margin,
      height: Math.ceil(by1) - Math.floor(by0) + 2 * margin,
    },
    g.bufferWidth,
    g.bufferHeight,
  );
}

/** Clamps a rectangle to [0, width) x [0, height); the result may be empty (width or height 0). */
export function clamp(r: Rect, width: number, height: number): Rect {
  const x0 = Math.max(0, Math.min(width, r.x));
  const y0 = Math.max(0, Math.min(height, r.y));
  // Damage coordinates come from a client as int32: huge values must not overflow into a wrong rectangle.
  const x1 = Math.max(0, Math.min(width, r.x + Math.max(0, r.width)));
  const y1 = Math.max(0, Math.min(height, r.y + Math.max(0, r.height)));
  return { x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0) };
}

/**
 * Accumulates a commit's damage in buffer pixels. Bounded: past MAX_DAMAGE_RECTS rectangles, or when the union
 * covers most of the buffer, everything collapses to one bounding box, so a hostile client cannot make a
 * commit cost more than one full copy.
 */
export class DamageAccumulator {
  private readonly rects: Rect[] = [];
  private full = false;

  /** Adds a rectangle already in buffer pixels (it is clamped here). */
  addBuffer(r: Rect, bufferWidth: number, bufferHeight: number): void {
    if (this.full) return;
    const c = clamp(r, bufferWidth, bufferHeight);
    if (c.width === 0 || c.height === 0) return;
    if (c.width === bufferWidth && c.height === bufferHeight) {
      this.setFull();
      return;
    }
    for (const e of this.rects) {
      if (contains(e, c)) return;
    }
    this.rects.push(c);
    if (this.rects.length > MAX_DAMAGE_RECTS) this.collapse();
  }

  /** Adds a rectangle in surface coordinates, converted with the surface's geometry at commit time. */
  addSurface(g: BufferGeometry, r: Rect): void {
    this.addBuffer(surfaceToBuffer(g, r), g.bufferWidth, g.bufferHeight);
  }

  /** Marks the whole buffer damaged (new buffer size, new attach with no prior copy, ...). */
  setFull(): void {
    this.full = true;
    this.rects.length = 0;
  }

  get isFull(): boolean {
    return this.full;
  }

  get isEmpty(): boolean {
    return !this.full && this.rects.length === 0;
  }

  /** The rectangles to copy (whole buffer when full), then resets the accumulator. */
  take(bufferWidth: number, bufferHeight: number): Rect[] {
    const out = this.full ? [{ x: 0, y: 0, width: bufferWidth, height: bufferHeight }] : this.rects.slice();
    this.full = false;
    this.rects.length = 0;
    return out;
  }

  private collapse(): void {
    let x0 = Number.POSITIVE_INFINITY;
    let y0 = Number.POSITIVE_INFINITY;
    let x1 = 0;
    let y1 = 0;
    for (const r of this.rects) {
      x0 = Math.min(x0, r.x);
      y0 = Math.min(y0, r.y);
      x1 = Math.max(x1, r.x + r.width);
      y1 = Math.max(y1, r.y + r.height);
    }
    this.rects.length = 0;
    this.rects.push({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
  }
}

function contains(outer: Rect, inner: Rect): boolean {
  return (
    inner.x >= outer.x &&
    inner.y >= outer.y &&
    inner.x + inner.width <= outer.x + outer.width &&
    inner.y + inner.height <= outer.y + outer.height
  );
}
