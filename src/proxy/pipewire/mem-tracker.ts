// The memory the PipeWire daemon lends a filtered client (AddMem/RemoveMem), and the checks that every range the
// daemon later names (Transport, SetIO, PortSetIO, SetActivation, PortUseBuffers) lies inside it (pipewire.md §7.4).
import { native } from "../../native.ts";
import type { Pod } from "../../wire/pipewire/pod-types.ts";
import { expectInt } from "../../wire/pipewire/protocol.ts";
import { Violation } from "./violation.ts";

interface MemEntry {
  type: number;
  size: number;
}

/** What an fd is, from its /proc/self/fd link (the libkrun technique, §7.7). */
export function fdKind(fd: number): string {
  const path = native.fdPath(fd);
  if (path.startsWith("/memfd:")) return "memfd";
  if (path.startsWith("/dmabuf:")) return "dmabuf";
  if (path === "anon_inode:[eventfd]") return "eventfd";
  if (path.startsWith("anon_inode:sync_file")) return "syncobj";
  return path;
}

/** The mems of one connection, by mem id, with their total size. */
export class MemTracker {
  private readonly mems = new Map<number, MemEntry>();
  private bytes = 0;

  /** `maxBytes`: the most memfd memory one connection may hold (FilterLimits.maxMemBytes). */
  constructor(private readonly maxBytes: number) {}

  /** AddMem (§7.4 S→C): the fd must be what the type says, flags known, the total within the limit. */
  add(a: readonly Pod[], fd: number): void {
    const memId = expectInt(a[0], "AddMem id");
    const type = a[1]?.t === "id" ? a[1].v : -1;
    const flags = expectInt(a[3], "AddMem flags");
    const want = type === 2 ? "memfd" : type === 3 ? "dmabuf" : type === 5 ? "syncobj" : "";
    const kind = fdKind(fd);
    if (want === "" || kind !== want)
      throw new Violation("upstream-mem", `AddMem type ${type} with a ${kind} fd`);
    if ((flags & ~0x7f) !== 0) throw new Violation("upstream-mem", `AddMem flags ${flags}`);
    const size = kind === "memfd" ? native.fstat(fd).size : 0;
    const old = this.mems.get(memId);
    if (old !== undefined) this.bytes -= old.size;
    this.mems.set(memId, { type, size });
    this.bytes += size;
    if (this.bytes > this.maxBytes)
      throw new Violation("upstream-mem", `${this.bytes} bytes of shared memory`);
  }

  /** RemoveMem: forgets the mem (an unknown id is the daemon's business, not a violation). */
  remove(memId: number): void {
    const m = this.mems.get(memId);
    if (m === undefined) return;
    this.bytes -= m.size;
    this.mems.delete(memId);
  }

  /** mem_id −1 means "unset"; otherwise offset + size must lie inside a known memfd (§7.4 S→C). */
  checkRange(memId: number, offset: number, size: number, what: string): void {
    if (memId === -1) return;
    const m = this.mems.get(memId);
    if (m === undefined) throw new Violation("upstream-mem", `${what}: unknown mem ${memId}`);
    if (offset < 0 || size < 0 || (m.type === 2 && offset + size > m.size)) {
      throw new Violation(
        "upstream-mem",
        `${what}: [${offset}, +${size}) outside mem ${memId} of ${m.size} bytes`,
      );
    }
  }

  /** PortUseBuffers (§7.4 S→C): ≤ 64 buffers, ranges inside known memory, MemId data naming known mems. */
  checkUseBuffers(a: readonly Pod[]): void {
    let i = 4;
    const next = (what: string): number => expectInt(a[i++], what);
    const nBuffers = next("n_buffers");
    if (nBuffers < 0 || nBuffers > 64) throw new Violation("upstream-buffers", `${nBuffers} buffers`);
    for (let b = 0; b < nBuffers; b++) {
      const mem = next("mem_id");
      const off = next("offset");
      const size = next("size");
      this.checkRange(mem, off, size, `buffer ${b}`);
      const nMetas = next("n_metas");
      if (nMetas < 0 || nMetas > 64) throw new Violation("upstream-buffers", `${nMetas} metas`);
      for (let k = 0; k < nMetas; k++) {
        if (a[i++]?.t !== "id") throw new Violation("upstream-buffers", "meta type");
        next("meta size");
      }
      const nDatas = next("n_datas");
      if (nDatas < 0 || nDatas > 256) throw new Violation("upstream-buffers", `${nDatas} datas`);
      for (let k = 0; k < nDatas; k++) {
        const t = a[i++];
        const data = next("data");
        next("flags");
        next("mapoffset");
        next("maxsize");
        if (t?.t !== "id") throw new Violation("upstream-buffers", "data type");
        if (t.v === 4 && !this.mems.has(data))
          throw new Violation("upstream-buffers", `MemId data names unknown mem ${data}`);
      }
    }
    if (i !== a.length) throw new Violation("upstream-buffers", "trailing fields");
  }
}
