// Checks the TS virtgpu struct layouts and ioctl numbers against the kernel uAPI header, compiled with `cc`.
// The header is libdrm-dev's /usr/include/libdrm/virtgpu_drm.h (Debian's linux-libc-dev has no drm/ headers).
// libdrm 2.4.114's copy predates blobs, context init and ring_idx: for what it lacks, the C program declares the
// structs exactly as mainline does and the check says "fallback", so the TS offsets still meet a C compiler; any
// struct the installed header does define with all our fields is taken from the header instead.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ALL_STRUCTS, Ioctl, type StructLayout } from "../../../src/crossdomain/structs.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const HEADER = "/usr/include/libdrm/virtgpu_drm.h";

// Mainline definitions of what old headers lack (include/uapi/drm/virtgpu_drm.h), under cw_ names.
const FALLBACK = `
struct cw_drm_virtgpu_execbuffer {
  __u32 flags; __u32 size; __u64 command; __u64 bo_handles; __u32 num_bo_handles; __s32 fence_fd;
  __u32 ring_idx; __u32 syncobj_stride; __u32 num_in_syncobjs; __u32 num_out_syncobjs;
  __u64 in_syncobjs; __u64 out_syncobjs;
};
struct cw_drm_virtgpu_resource_info { __u32 bo_handle; __u32 res_handle; __u32 size; __u32 blob_mem; };
struct cw_drm_virtgpu_resource_create_blob {
  __u32 blob_mem; __u32 blob_flags; __u32 bo_handle; __u32 res_handle; __u64 size; __u32 pad; __u32 cmd_size;
  __u64 cmd; __u64 blob_id;
};
struct cw_drm_virtgpu_context_set_param { __u64 param; __u64 value; };
struct cw_drm_virtgpu_context_init { __u32 num_params; __u32 pad; __u64 ctx_set_params; };
`;

/** Structs whose full layout the system header must provide (so the check cannot silently degrade). */
const REQUIRED_FROM_HEADER = new Set([
  "drm_virtgpu_map",
  "drm_virtgpu_getparam",
  "drm_virtgpu_3d_wait",
  "drm_virtgpu_get_caps",
  "drm_gem_close",
  "drm_prime_handle",
  "drm_event",
]);

/**
 * Every struct the system header defines with all of our fields is checked against the header itself, so a newer
 * libdrm-dev (Debian 13's has blobs and context init) retires the fallback without a change here.
 */
const FROM_HEADER = new Set(REQUIRED_FROM_HEADER);
if (existsSync(HEADER)) {
  const text = readFileSync(HEADER, "utf8");
  for (const st of ALL_STRUCTS) {
    const body = new RegExp(`struct ${st.cName} \\{([^}]*)\\}`).exec(text)?.[1];
    if (body !== undefined && Object.keys(st.fields).every((f) => new RegExp(`\\b${f}\\b`).test(body)))
      FROM_HEADER.add(st.cName);
  }
}

function cProgram(): string {
  const lines = [
    "#include <stdio.h>",
    "#include <stddef.h>",
    "#include <virtgpu_drm.h>",
    FALLBACK,
    "int main(void) {",
    '  printf("{\\n");',
  ];
  for (const s of ALL_STRUCTS) {
    // Structs the old header has only partly (execbuffer, resource_info) or not at all use the fallback, and the
    // header's own copy is checked separately on the fields it has.
    const header = FROM_HEADER.has(s.cName);
    const t = header ? `struct ${s.cName}` : `struct cw_${s.cName}`;
    lines.push(
      `  printf("\\"${s.cName}\\": {\\"source\\": \\"${header ? "header" : "fallback"}\\", \\"size\\": %zu", sizeof(${t}));`,
    );
    for (const [name] of Object.entries(s.fields)) {
      lines.push(
        `  printf(", \\"${name}\\": [%zu, %zu]", offsetof(${t}, ${name}), sizeof(((${t}*)0)->${name}));`,
      );
    }
    lines.push('  printf("},\\n");');
  }
  // The 5.x execbuffer and pre-blob resource_info of the header: the fields they share with ours.
  lines.push(
    '  printf("\\"header_execbuffer\\": [%zu, %zu, %zu, %zu, %zu, %zu, %zu],\\n", sizeof(struct drm_virtgpu_execbuffer), offsetof(struct drm_virtgpu_execbuffer, flags), offsetof(struct drm_virtgpu_execbuffer, size), offsetof(struct drm_virtgpu_execbuffer, command), offsetof(struct drm_virtgpu_execbuffer, bo_handles), offsetof(struct drm_virtgpu_execbuffer, num_bo_handles), offsetof(struct drm_virtgpu_execbuffer, fence_fd));',
    '  printf("\\"header_resource_info\\": [%zu, %zu, %zu, %zu],\\n", sizeof(struct drm_virtgpu_resource_info), offsetof(struct drm_virtgpu_resource_info, bo_handle), offsetof(struct drm_virtgpu_resource_info, res_handle), offsetof(struct drm_virtgpu_resource_info, size));',
  );
  const req = (name: string, expr: string) =>
    lines.push(`  printf("\\"${name}\\": %lu,\\n", (unsigned long)(${expr}));`);
  req("GEM_CLOSE", "DRM_IOCTL_GEM_CLOSE");
  req("PRIME_HANDLE_TO_FD", "DRM_IOCTL_PRIME_HANDLE_TO_FD");
  req("PRIME_FD_TO_HANDLE", "DRM_IOCTL_PRIME_FD_TO_HANDLE");
  req("VIRTGPU_MAP", "DRM_IOCTL_VIRTGPU_MAP");
  req("VIRTGPU_GETPARAM", "DRM_IOCTL_VIRTGPU_GETPARAM");
  req("VIRTGPU_RESOURCE_INFO", "DRM_IOCTL_VIRTGPU_RESOURCE_INFO");
  req("VIRTGPU_WAIT", "DRM_IOCTL_VIRTGPU_WAIT");
  req("VIRTGPU_GET_CAPS", "DRM_IOCTL_VIRTGPU_GET_CAPS");
  req("HEADER_EXECBUFFER", "DRM_IOCTL_VIRTGPU_EXECBUFFER");
  // Newer numbers from the header when it has them, else from its DRM_IOWR macro and the mainline struct.
  for (const [name, nr, st] of [
    ["VIRTGPU_EXECBUFFER", "0x02", "cw_drm_virtgpu_execbuffer"],
    ["VIRTGPU_RESOURCE_CREATE_BLOB", "0x0a", "cw_drm_virtgpu_resource_create_blob"],
    ["VIRTGPU_CONTEXT_INIT", "0x0b", "cw_drm_virtgpu_context_init"],
  ]) {
    req(name!, `DRM_IOWR(DRM_COMMAND_BASE + ${nr}, struct ${st})`);
  }
  lines.push(
    "#ifdef DRM_IOCTL_VIRTGPU_CONTEXT_INIT",
    '  printf("\\"HEADER_CONTEXT_INIT\\": %lu,\\n", (unsigned long)DRM_IOCTL_VIRTGPU_CONTEXT_INIT);',
    "#endif",
    '  printf("\\"end\\": 0}\\n");',
    "  return 0;",
    "}",
  );
  return lines.join("\n");
}

const dir = mkdtempSync(join(tmpdir(), "crossway-structs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function compileAndRun(): Record<string, unknown> {
  if (!existsSync(HEADER)) {
    throw new Error(`${HEADER} is missing: install the Debian package libdrm-dev`);
  }
  writeFileSync(join(dir, "layout.c"), cProgram());
  execFileSync("cc", [
    "-Wall",
    "-Werror",
    "-I/usr/include/libdrm",
    "-o",
    join(dir, "layout"),
    join(dir, "layout.c"),
  ]);
  return JSON.parse(execFileSync(join(dir, "layout"), { encoding: "utf8" })) as Record<string, unknown>;
}

describe("virtgpu uAPI layouts against the C compiler", () => {
  const c = compileAndRun();

  for (const s of ALL_STRUCTS) {
    it(`struct ${s.cName}`, () => {
      const got = c[s.cName] as Record<string, unknown>;
      const want: Record<string, unknown> = {
        source: FROM_HEADER.has(s.cName) ? "header" : "fallback",
        size: s.size,
      };
      for (const [name, fl] of Object.entries((s as StructLayout).fields)) want[name] = [fl.offset, fl.size];
      expect(got).toEqual(want);
    });
  }

  it("the header's 5.x execbuffer and resource_info agree with our prefix", () => {
    const e = ALL_STRUCTS.find((s) => s.cName === "drm_virtgpu_execbuffer")!.fields;
    expect(c.header_execbuffer).toEqual([
      32,
      e.flags!.offset,
      e.size!.offset,
      e.command!.offset,
      e.bo_handles!.offset,
      e.num_bo_handles!.offset,
      e.fence_fd!.offset,
    ]);
    expect(c.header_resource_info).toEqual([16, 0, 4, 8]);
  });

  it("ioctl request numbers", () => {
    for (const name of [
      "GEM_CLOSE",
      "PRIME_HANDLE_TO_FD",
      "PRIME_FD_TO_HANDLE",
      "VIRTGPU_MAP",
      "VIRTGPU_GETPARAM",
      "VIRTGPU_RESOURCE_INFO",
      "VIRTGPU_WAIT",
      "VIRTGPU_GET_CAPS",
      "VIRTGPU_EXECBUFFER",
      "VIRTGPU_RESOURCE_CREATE_BLOB",
      "VIRTGPU_CONTEXT_INIT",
    ] as const) {
      expect(c[name], name).toBe(Ioctl[name]);
    }
    // The spec's table (§5), for the record.
    expect(Ioctl.VIRTGPU_EXECBUFFER).toBe(0xc0406442);
    expect(Ioctl.VIRTGPU_RESOURCE_CREATE_BLOB).toBe(0xc030644a);
    expect(Ioctl.VIRTGPU_CONTEXT_INIT).toBe(0xc010644b);
    expect(Ioctl.GEM_CLOSE).toBe(0x40086409);
    // The header's older 32-byte execbuffer has its own number; the kernel accepts both sizes (drm_ioctl.c).
    expect(c.HEADER_EXECBUFFER).toBe(0xc0206442);
    if (c.HEADER_CONTEXT_INIT !== undefined) expect(c.HEADER_CONTEXT_INIT).toBe(Ioctl.VIRTGPU_CONTEXT_INIT);
  });
});
