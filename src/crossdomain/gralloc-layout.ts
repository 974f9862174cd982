// The emulated host's gralloc (rutabaga's memfd "system" allocator): image layouts for GET_IMAGE_REQUIREMENTS. Pure.
import type { ImageRequirements } from "./codec.ts";
import { DrmFormat, MapInfo } from "./protocol.ts";

/** The host page: HOST3D sizes and image sizes are rounded to it. */
export const HOST_PAGE = 4096;

/** Bytes per pixel of the formats the memfd "system" gralloc supports ([KR] rutabaga_gralloc/formats.rs). */
const PACKED_BPP = new Map<number, number>([
  [DrmFormat.R8, 1],
  [DrmFormat.RGB565, 2],
  [0x34324742, 3], // BGR888 'BG24'
  [DrmFormat.XRGB8888, 4],
  [DrmFormat.ARGB8888, 4],
  [DrmFormat.XBGR8888, 4],
  [DrmFormat.ABGR8888, 4],
  [0x30335258, 4], // XRGB2101010
  [0x30335241, 4], // ARGB2101010
  [0x30334258, 4], // XBGR2101010
  [0x30334241, 4], // ABGR2101010
  [0x48344241, 8], // ABGR16161616F
]);
const NV12 = 0x3231564e;
const YVU420 = 0x32315659;

export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** The image requirements of the memfd gralloc: tight strides, planes one after another, size rounded to the host page (canonical_image_requirements). */
export function imageLayout(
  width: number,
  height: number,
  format: number,
): Omit<ImageRequirements, "blobId"> | null {
  const bpp = PACKED_BPP.get(format);
  const base = { modifier: 0n, mapInfo: MapInfo.CACHED, memoryIdx: -1, physicalDeviceIdx: -1 };
  if (bpp !== undefined) {
    return {
      ...base,
      strides: [width * bpp, 0, 0, 0],
      offsets: [0, 0, 0, 0],
      size: roundUp(width * bpp * height, HOST_PAGE),
    };
  }
  if (format === NV12) {
    const y = width * height;
    const uvStride = 2 * Math.ceil(width / 2);
    return {
      ...base,
      strides: [width, uvStride, 0, 0],
      offsets: [0, y, 0, 0],
      size: roundUp(y + uvStride * Math.ceil(height / 2), HOST_PAGE),
    };
  }
  if (format === YVU420) {
    const y = width * height;
    const c = Math.ceil(width / 2);
    const ch = Math.ceil(height / 2);
    return {
      ...base,
      strides: [width, c, c, 0],
      offsets: [0, y, y + c * ch, 0],
      size: roundUp(y + 2 * c * ch, HOST_PAGE),
    };
  }
  return null;
}
