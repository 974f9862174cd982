// mmap/munmap for the native addon: mappings are handed out as external ArrayBuffers and unmapped explicitly.
#include <errno.h>
#include <sys/mman.h>

#include <mutex>
#include <unordered_map>

#include "common.h"

namespace crossway {
namespace {

// Mappings are a process-wide resource (every thread and worker shares the address space), so the table of
// live ones is process-wide too; the mutex covers ArrayBuffer deleters that V8 may run off the main thread.
std::mutex g_mutex;
std::unordered_map<void*, size_t>* g_live = new std::unordered_map<void*, size_t>();

// Called when V8 frees the ArrayBuffer's backing store. After an explicit munmap the address is no longer in
// the table and nothing happens; otherwise this is the safety net for a mapping JS forgot to unmap.
void Release(Napi::Env /*env*/, void* addr) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_live->find(addr);
  if (it == g_live->end()) return;
  munmap(addr, it->second);
  g_live->erase(it);
}

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  size_t length = static_cast<size_t>(IntArg(info, 1, "length"));
  int prot = static_cast<int>(IntArg(info, 2, "prot"));
  int flags = static_cast<int>(IntArg(info, 3, "flags"));
  off_t offset = static_cast<off_t>(IntArg(info, 4, "offset"));
  void* addr = mmap(nullptr, length, prot, flags, fd, offset);
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    (*g_live)[addr] = length;
  }
  return Napi::ArrayBuffer::New(env, addr, length, Release);
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "munmap needs an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* addr = ab.Data();
  size_t length;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_live->find(addr);
    if (addr == nullptr || it == g_live->end()) {
      throw Napi::Error::New(env, "munmap: not a live mapping of this addon (already unmapped?)");
    }
    length = it->second;
    if (munmap(addr, length) < 0) ThrowErrno(env, errno, "munmap");
    g_live->erase(it);
  }
  // Detaching makes every view on the buffer zero-length, so no JS code can touch the unmapped pages.
  ab.Detach();
  return env.Undefined();
}

Napi::Value LiveMappings(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(g_live->size()));
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("liveMappings", Napi::Function::New(env, LiveMappings));
}

}  // namespace crossway
