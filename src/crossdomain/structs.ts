// Layouts and ioctl request numbers of the Linux virtgpu DRM uAPI (include/uapi/drm/virtgpu_drm.h, drm.h), in TS.
// Checked against the system header by test/unit/crossdomain/structs.test.ts, which compiles a C program with `cc`.

/** One field of a C struct: byte offset and size. */
export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

/** A C struct's name, size and the fields crossway touches. */
export interface StructLayout {
  readonly cName: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

function f(offset: number, size: number): FieldLayout {
  return { offset, size };
}

/** `struct drm_virtgpu_map` (§5.5). */
export const DRM_VIRTGPU_MAP: StructLayout = {
  cName: "drm_virtgpu_map",
  size: 16,
  fields: { offset: f(0, 8), handle: f(8, 4), pad: f(12, 4) },
};

/** `struct drm_virtgpu_execbuffer`, 64-byte form of Linux ≥ 6.4 (§5.6). The first 32 bytes are the 5.x layout. */
export const DRM_VIRTGPU_EXECBUFFER: StructLayout = {
  cName: "drm_virtgpu_execbuffer",
  size: 64,
  fields: {
    flags: f(0, 4),
    size: f(4, 4),
    command: f(8, 8),
    bo_handles: f(16, 8),
    num_bo_handles: f(24, 4),
    fence_fd: f(28, 4),
    ring_idx: f(32, 4),
    syncobj_stride: f(36, 4),
    num_in_syncobjs: f(40, 4),
    num_out_syncobjs: f(44, 4),
    in_syncobjs: f(48, 8),
    out_syncobjs: f(56, 8),
  },
};

/** `struct drm_virtgpu_getparam`: `value` is a pointer; the kernel writes only 4 bytes there (P22). */
export const DRM_VIRTGPU_GETPARAM: StructLayout = {
  cName: "drm_virtgpu_getparam",
  size: 16,
  fields: { param: f(0, 8), value: f(8, 8) },
};

/** `struct drm_virtgpu_resource_info` (mainline: `blob_mem` @12, formerly `stride`). */
export const DRM_VIRTGPU_RESOURCE_INFO: StructLayout = {
  cName: "drm_virtgpu_resource_info",
  size: 16,
  fields: { bo_handle: f(0, 4), res_handle: f(4, 4), size: f(8, 4), blob_mem: f(12, 4) },
};

/** `struct drm_virtgpu_3d_wait`. */
export const DRM_VIRTGPU_3D_WAIT: StructLayout = {
  cName: "drm_virtgpu_3d_wait",
  size: 8,
  fields: { handle: f(0, 4), flags: f(4, 4) },
};

/** `struct drm_virtgpu_get_caps`. */
export const DRM_VIRTGPU_GET_CAPS: StructLayout = {
  cName: "drm_virtgpu_get_caps",
  size: 24,
  fields: { cap_set_id: f(0, 4), cap_set_ver: f(4, 4), addr: f(8, 8), size: f(16, 4), pad: f(20, 4) },
};

/** `struct drm_virtgpu_resource_create_blob` (§5.4). */
export const DRM_VIRTGPU_RESOURCE_CREATE_BLOB: StructLayout = {
  cName: "drm_virtgpu_resource_create_blob",
  size: 48,
  fields: {
    blob_mem: f(0, 4),
    blob_flags: f(4, 4),
    bo_handle: f(8, 4),
    res_handle: f(12, 4),
    size: f(16, 8),
    pad: f(24, 4),
    cmd_size: f(28, 4),
    cmd: f(32, 8),
    blob_id: f(40, 8),
  },
};

/** `struct drm_virtgpu_context_set_param`. */
export const DRM_VIRTGPU_CONTEXT_SET_PARAM: StructLayout = {
  cName: "drm_virtgpu_context_set_param",
  size: 16,
  fields: { param: f(0, 8), value: f(8, 8) },
};

/** `struct drm_virtgpu_context_init`. */
export const DRM_VIRTGPU_CONTEXT_INIT: StructLayout = {
  cName: "drm_virtgpu_context_init",
  size: 16,
  fields: { num_params: f(0, 4), pad: f(4, 4), ctx_set_params: f(8, 8) },
};

/** `struct drm_gem_close` (drm.h). */
export const DRM_GEM_CLOSE: StructLayout = {
  cName: "drm_gem_close",
  size: 8,
  fields: { handle: f(0, 4), pad: f(4, 4) },
};

/** `struct drm_prime_handle` (drm.h). */
export const DRM_PRIME_HANDLE: StructLayout = {
  cName: "drm_prime_handle",
  size: 12,
  fields: { handle: f(0, 4), flags: f(4, 4), fd: f(8, 4) },
};

/** `struct drm_event` header read from the DRM fd (§5.10). */
export const DRM_EVENT: StructLayout = {
  cName: "drm_event",
  size: 8,
  fields: { type: f(0, 4), length: f(4, 4) },
};

/** All layouts, for the header check. */
export const ALL_STRUCTS: readonly StructLayout[] = [
  DRM_VIRTGPU_MAP,
  DRM_VIRTGPU_EXECBUFFER,
  DRM_VIRTGPU_GETPARAM,
  DRM_VIRTGPU_RESOURCE_INFO,
  DRM_VIRTGPU_3D_WAIT,
  DRM_VIRTGPU_GET_CAPS,
  DRM_VIRTGPU_RESOURCE_CREATE_BLOB,
  DRM_VIRTGPU_CONTEXT_SET_PARAM,
  DRM_VIRTGPU_CONTEXT_INIT,
  DRM_GEM_CLOSE,
  DRM_PRIME_HANDLE,
  DRM_EVENT,
];

// ---------------------------------------------------------------------------------------------------------------
// ioctl request numbers: the generic _IOC encoding (x86-64, AArch64, RISC-V): dir << 30 | size << 16 | type << 8 | nr.

const IOC_WRITE = 1;
const IOC_READ = 2;
/** DRM_IOCTL_BASE = 'd'. */
const DRM_IOCTL_BASE = 0x64;
/** DRM_COMMAND_BASE: driver ioctls start here. */
const DRM_COMMAND_BASE = 0x40;

/** `_IOC(dir, type, nr, size)` as an unsigned number. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

function drmIowr(nr: number, size: number): number {
  return ioc(IOC_READ | IOC_WRITE, DRM_IOCTL_BASE, nr, size);
}

/** Request numbers (§5 table). */
export const Ioctl = {
  GEM_CLOSE: ioc(IOC_WRITE, DRM_IOCTL_BASE, 0x09, DRM_GEM_CLOSE.size),
  PRIME_HANDLE_TO_FD: drmIowr(0x2d, DRM_PRIME_HANDLE.size),
  PRIME_FD_TO_HANDLE: drmIowr(0x2e, DRM_PRIME_HANDLE.size),
  VIRTGPU_MAP: drmIowr(DRM_COMMAND_BASE + 0x01, DRM_VIRTGPU_MAP.size),
  VIRTGPU_EXECBUFFER: drmIowr(DRM_COMMAND_BASE + 0x02, DRM_VIRTGPU_EXECBUFFER.size),
  VIRTGPU_GETPARAM: drmIowr(DRM_COMMAND_BASE + 0x03, DRM_VIRTGPU_GETPARAM.size),
  VIRTGPU_RESOURCE_INFO: drmIowr(DRM_COMMAND_BASE + 0x05, DRM_VIRTGPU_RESOURCE_INFO.size),
  VIRTGPU_WAIT: drmIowr(DRM_COMMAND_BASE + 0x08, DRM_VIRTGPU_3D_WAIT.size),
  VIRTGPU_GET_CAPS: drmIowr(DRM_COMMAND_BASE + 0x09, DRM_VIRTGPU_GET_CAPS.size),
  VIRTGPU_RESOURCE_CREATE_BLOB: drmIowr(DRM_COMMAND_BASE + 0x0a, DRM_VIRTGPU_RESOURCE_CREATE_BLOB.size),
  VIRTGPU_CONTEXT_INIT: drmIowr(DRM_COMMAND_BASE + 0x0b, DRM_VIRTGPU_CONTEXT_INIT.size),
} as const;

/** GETPARAM ids (§5.1). */
export const VirtgpuParam = {
  FEATURES_3D: 1,
  CAPSET_QUERY_FIX: 2,
  RESOURCE_BLOB: 3,
  HOST_VISIBLE: 4,
  CROSS_DEVICE: 5,
  CONTEXT_INIT: 6,
  SUPPORTED_CAPSET_IDS: 7,
} as const;

/** CONTEXT_INIT params (§5.3). */
export const ContextParam = { CAPSET_ID: 1, NUM_RINGS: 2, POLL_RINGS_MASK: 3, DEBUG_NAME: 4 } as const;

/** RESOURCE_CREATE_BLOB blob_mem (§5.4). */
export const BlobMem = { GUEST: 1, HOST3D: 2, HOST3D_GUEST: 3 } as const;

/** RESOURCE_CREATE_BLOB blob_flags (§5.4). */
export const BlobFlags = { USE_MAPPABLE: 1, USE_SHAREABLE: 2, USE_CROSS_DEVICE: 4 } as const;

/** EXECBUFFER flags (§5.6). */
export const ExecbufFlags = { FENCE_FD_IN: 1, FENCE_FD_OUT: 2, RING_IDX: 4 } as const;

/** `VIRTGPU_EVENT_FENCE_SIGNALED`, the drm_event type of a polled-ring fence (§5.10). */
export const VIRTGPU_EVENT_FENCE_SIGNALED = 0x90000000;

/** `DRM_CLOEXEC | DRM_RDWR` for PRIME_HANDLE_TO_FD (O_CLOEXEC | O_RDWR on Linux). */
export const PRIME_FLAGS_CLOEXEC_RDWR = 0o2000000 | 2;
