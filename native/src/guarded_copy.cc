// Strided copies out of a client's shared-memory mapping that survive the client shrinking the file (SIGBUS).
//
// A client can ftruncate its wl_shm pool while the proxy copies from it; touching a page past the new end raises
// SIGBUS. libwayland's compositors handle this in wayland-shm.c (wl_shm_buffer_begin_access / sigbus_handler):
// while a copy runs, a SIGBUS inside the pool maps anonymous zero pages over the pool and the copy finishes on
// them; the proxy then reports the broken buffer to that client. This file does the same for one copy call.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>

#include "common.h"

namespace crossway {
namespace {

// The range being copied from, and whether a fault hit it. Copies run on the JS thread only; the handler reads
// these, so they are plain volatile words (async-signal-safe access), not locks.
volatile uintptr_t g_start = 0;
volatile uintptr_t g_end = 0;
volatile sig_atomic_t g_hit = 0;

struct sigaction g_previous;
std::once_flag g_installed;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (g_start != 0 && addr >= g_start && addr < g_end) {
    // Replace the whole guarded range (as libwayland does for the pool): later pages will not fault again.
    void* r = mmap(reinterpret_cast<void*>(g_start), g_end - g_start, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r != MAP_FAILED) {
      g_hit = 1;
      return;  // the faulting read is retried on the zero pages
    }
  }
  // Not ours: behave as if we were never installed.
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler == SIG_IGN) return;
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  signal(SIGBUS, SIG_DFL);
  raise(SIGBUS);
}

void Install(Napi::Env env) {
  int err = 0;
  std::call_once(g_installed, [&err]() {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_previous) < 0) err = errno;
  });
  if (err != 0) ThrowErrno(env, err, "sigaction");
}

// copyGuarded(src: ArrayBuffer, srcOffset, dst: Uint8Array, dstOffset, rowBytes, rows, srcStride, dstStride)
// Returns true when every byte came from the file, false when a SIGBUS was absorbed (the source is now zeros).
Napi::Value CopyGuarded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "src must be an ArrayBuffer");
  Napi::ArrayBuffer src = info[0].As<Napi::ArrayBuffer>();
  const size_t srcOffset = static_cast<size_t>(IntArg(info, 1, "srcOffset"));
  const size_t rowBytes = static_cast<size_t>(IntArg(info, 4, "rowBytes"));
  const size_t rows = static_cast<size_t>(IntArg(info, 5, "rows"));
  const size_t srcStride = static_cast<size_t>(IntArg(info, 6, "srcStride"));
  const size_t dstStride = static_cast<size_t>(IntArg(info, 7, "dstStride"));
  const size_t dstOffset = static_cast<size_t>(IntArg(info, 3, "dstOffset"));
  if (rows == 0 || rowBytes == 0) return Napi::Boolean::New(env, true);
  // Bounds: the last row must end inside both buffers (checked without overflow).
  const size_t srcLen = src.ByteLength();
  if (srcStride < rowBytes || dstStride < rowBytes || rows - 1 > (SIZE_MAX - rowBytes) / srcStride ||
      rows - 1 > (SIZE_MAX - rowBytes) / dstStride) {
    throw Napi::RangeError::New(env, "copyGuarded: bad strides");
  }
  const size_t srcSpan = (rows - 1) * srcStride + rowBytes;
  const size_t dstSpan = (rows - 1) * dstStride + rowBytes;
  if (srcOffset > srcLen || srcSpan > srcLen - srcOffset) throw Napi::RangeError::New(env, "copyGuarded: source range");
  uint8_t* dst = BytesArg(info, 2, dstOffset, dstSpan);
  Install(env);
  const uint8_t* base = static_cast<const uint8_t*>(src.Data());
  g_hit = 0;
  g_start = reinterpret_cast<uintptr_t>(base);
  g_end = g_start + srcLen;
  const uint8_t* s = base + srcOffset;
  if (srcStride == rowBytes && dstStride == rowBytes) {
    memcpy(dst, s, rows * rowBytes);
  } else {
    for (size_t r = 0; r < rows; r++) memcpy(dst + r * dstStride, s + r * srcStride, rowBytes);
  }
  g_start = 0;
  g_end = 0;
  return Napi::Boolean::New(env, g_hit == 0);
}

}  // namespace

void InitGuardedCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("copyGuarded", Napi::Function::New(env, CopyGuarded));
}

}  // namespace crossway
