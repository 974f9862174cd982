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

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Copies from this size up store with non-temporal writes. A frame (8.3 MB at 1080p) is written once here and
// read next by the compositor, from another process: stores through the cache first read every destination line
// (a third memory transfer per line) and evict the client's and compositor's lines from a shared cache the frame
// copy alone fills a quarter of. A/B on this project's VM (1080p full frames, sealed pool, weston headless, 6 runs
// of 300 frames each way): the guest's CPU per frame about 0.82 ms against 1.10 ms pinned, 0.87 against 1.15 ms
// unpinned, and 15-30% more frames per second (README, fourteenth round).
constexpr size_t kStreamMin = 1 << 20;

// memcpy, or with `stream` the same bytes stored around the cache (SSE2, in every x86-64; elsewhere memcpy). A
// streamed copy must be followed by EndStream before anything else may see the bytes.
void CopyBytes(uint8_t* dst, const uint8_t* src, size_t n, bool stream) {
#if defined(__SSE2__)
  if (stream && n >= 64) {
    // Aligns the destination to 16 bytes (the streaming store needs it), streams 64 bytes a step, then the tail.
    const size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
    memcpy(dst, src, head);
    size_t i = head;
    for (; i + 64 <= n; i += 64) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
      const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
    }
    memcpy(dst + i, src + i, n - i);
    return;
  }
#endif
  (void)stream;
  memcpy(dst, src, n);
}

// Streaming stores are weakly ordered: fenced before anything (a SEND naming the buffer) can follow them.
void EndStream(bool stream) {
#if defined(__SSE2__)
  if (stream) _mm_sfence();
#endif
  (void)stream;
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
  // A large copy goes around the cache on its way out: nobody in this process reads the host blob again.
  const bool stream = rows * rowBytes >= kStreamMin;
  if (srcStride == rowBytes && dstStride == rowBytes) {
    CopyBytes(dst, s, rows * rowBytes, stream);
  } else {
    for (size_t r = 0; r < rows; r++) CopyBytes(dst + r * dstStride, s + r * srcStride, rowBytes, stream);
  }
  EndStream(stream);
  g_start = 0;
  g_end = 0;
  return Napi::Boolean::New(env, g_hit == 0);
}

}  // namespace

void InitGuardedCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("copyGuarded", Napi::Function::New(env, CopyGuarded));
}

}  // namespace crossway
