// mmap/munmap for the native addon: mappings are handed out as external ArrayBuffers and unmapped explicitly.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "common.h"

namespace crossway {
namespace {

// Mappings are a process-wide resource (every thread and worker shares the address space), so the table of
// live ones is process-wide too; the mutex covers ArrayBuffer finalizers that may run off the main thread.
//
// Each mmap gets its own record, which is also the ArrayBuffer's finalizer hint. The finalizer must never look a
// mapping up by address: Node runs it later (from a SetImmediate after V8 frees the backing store), and by then
// munmap may have released the address and a new mmap may have got it back; unmapping "whatever is at that
// address" would then pull the pages from under a live ArrayBuffer (SIGSEGV on the next access).
struct Mapping {
  void* addr;
  size_t length;
  bool live;  // false once munmap'd explicitly; guarded by g_mutex
};

std::mutex g_mutex;
std::unordered_map<void*, Mapping*>* g_live = new std::unordered_map<void*, Mapping*>();

// Runs when V8 frees the ArrayBuffer's backing store: after an explicit munmap only the record is freed;
// otherwise this is the safety net for a mapping JS forgot to unmap.
void Release(Napi::Env /*env*/, void* /*data*/, Mapping* m) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (m->live) {
    munmap(m->addr, m->length);
    g_live->erase(m->addr);
  }
  delete m;
}

// mmap(fd, length, prot, flags, offset) from a call's arguments; throws the errno as a JS error.
struct MapRequest {
  void* addr;
  size_t length;
};

MapRequest MapFromArgs(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  size_t length = static_cast<size_t>(IntArg(info, 1, "length"));
  int prot = static_cast<int>(IntArg(info, 2, "prot"));
  int flags = static_cast<int>(IntArg(info, 3, "flags"));
  off_t offset = static_cast<off_t>(IntArg(info, 4, "offset"));
  void* addr = mmap(nullptr, length, prot, flags, fd, offset);
  if (addr == MAP_FAILED) ThrowErrno(info.Env(), errno, "mmap");
  return {addr, length};
}

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  MapRequest r = MapFromArgs(info);
  Mapping* m = new Mapping{r.addr, r.length, true};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    (*g_live)[r.addr] = m;
  }
  return Napi::ArrayBuffer::New(info.Env(), r.addr, r.length, Release, m);
}

// mmap then munmap at once: whether a mapping with this access would succeed, without handing JS an ArrayBuffer.
// A big external ArrayBuffer makes V8 count its length as external memory and start a full GC to make room.
Napi::Value MmapProbe(const Napi::CallbackInfo& info) {
  MapRequest r = MapFromArgs(info);
  munmap(r.addr, r.length);
  return info.Env().Undefined();
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "munmap needs an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* addr = ab.Data();
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_live->find(addr);
    // A detached buffer has no data and a zero length; an ordinary ArrayBuffer is not in the table.
    if (addr == nullptr || it == g_live->end() || ab.ByteLength() != it->second->length) {
      throw Napi::Error::New(env, "munmap: not a live mapping of this addon (already unmapped?)");
    }
    Mapping* m = it->second;
    if (munmap(addr, m->length) < 0) ThrowErrno(env, errno, "munmap");
    m->live = false;
    g_live->erase(it);
  }
  // Detaching makes every view on the buffer zero-length, so no JS code can touch the unmapped pages.
  ab.Detach();
  return env.Undefined();
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

// Bytes [offset, offset + length) of a mapping given as (buffer, offset, length) arguments 0-2: an ArrayBuffer from
// mmap or a typed array on one. Throws a TypeError or RangeError naming `fn`; empty (start == end) when length is 0.
struct MappedRange {
  uint8_t* start;
  uint8_t* end;
};

MappedRange RangeArg(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (!info[1].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, std::string(fn) + ": offset and length must be numbers");
  uint8_t* base;
  size_t len;
  if (info[0].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
    base = static_cast<uint8_t*>(ab.Data());
    len = ab.ByteLength();
  } else if (info[0].IsTypedArray()) {
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    len = ta.ByteLength();
  } else {
    throw Napi::TypeError::New(env, std::string(fn) + " needs an ArrayBuffer or a typed array");
  }
  double off = info[1].As<Napi::Number>().DoubleValue();
  double n = info[2].As<Napi::Number>().DoubleValue();
  if (!(off >= 0) || !(n >= 0) || off + n > static_cast<double>(len))
    throw Napi::RangeError::New(env, std::string(fn) + ": range outside the buffer");
  if (n == 0 || base == nullptr) return {base, base};
  return {base + static_cast<size_t>(off), base + static_cast<size_t>(off) + static_cast<size_t>(n)};
}

// populate(buffer, offset, length, write): MADV_POPULATE_READ/WRITE over the pages holding those bytes of a mapping
// (an ArrayBuffer from mmap, or a view on one). One call faults every page in, where touching them one by one takes
// one page fault each: on a VM a fault costs about 10 us, ten times the populate's per-page cost. Advisory: returns
// 0 or the errno (EINVAL before Linux 5.14 or on a PFN mapping, EFAULT past a shrunk file), never throws for those.
Napi::Value Populate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw Napi::TypeError::New(env, "populate(buffer, offset, length, write)");
  const MappedRange r = RangeArg(info, "populate");
  if (r.start == r.end) return Napi::Number::New(env, 0);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t start = reinterpret_cast<uintptr_t>(r.start);
  uintptr_t end = reinterpret_cast<uintptr_t>(r.end);
  start &= ~(page - 1);
  end = (end + page - 1) & ~(page - 1);
  int advice = info[3].ToBoolean().Value() ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
  int rc = madvise(reinterpret_cast<void*>(start), end - start, advice);
  return Napi::Number::New(env, rc < 0 ? errno : 0);
}

// touchPages(buffer, offset, length): a write access to every page holding those bytes of a mapping, changing
// nothing (an atomic OR of zero, so a concurrent writer's byte is never lost). On a VM whose hypervisor shadows page
// tables, the first access to each page of a new mapping costs an exit (10-20 us here); this pays it at a moment
// of the caller's choosing instead of inside a later copy. Only for mappings that cannot SIGBUS (memory the caller
// owns, like a host blob), never for a client's file.
Napi::Value TouchPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw Napi::TypeError::New(env, "touchPages(buffer, offset, length)");
  const MappedRange r = RangeArg(info, "touchPages");
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  uint8_t* p = r.start;
  uint8_t* end = r.end;
  while (p < end) {
    __atomic_fetch_or(p, static_cast<uint8_t>(0), __ATOMIC_RELAXED);
    // The first byte of the next page.
    p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) | (page - 1)) + 1);
  }
  return env.Undefined();
}

Napi::Value LiveMappings(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(g_live->size()));
}

}  // namespace

Napi::ArrayBuffer WrapMapping(Napi::Env env, void* addr, size_t length) {
  Mapping* m = new Mapping{addr, length, true};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    (*g_live)[addr] = m;
  }
  return Napi::ArrayBuffer::New(env, addr, length, Release, m);
}

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("mmapProbe", Napi::Function::New(env, MmapProbe));
  exports.Set("liveMappings", Napi::Function::New(env, LiveMappings));
  exports.Set("populate", Napi::Function::New(env, Populate));
  exports.Set("touchPages", Napi::Function::New(env, TouchPages));
}

}  // namespace crossway
