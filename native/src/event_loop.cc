// Turns off libuv's idle-time metrics on Node's event loop, which cost a second epoll_pwait every time the loop sleeps.
//
// Node enables UV_METRICS_IDLE_TIME on its loop for performance.eventLoopUtilization(). With it on, libuv's
// uv__io_poll (src/unix/linux.c) first polls with timeout 0, and only when that finds nothing polls again with the
// real timeout, reading the clock around both. A proxy sleeps once or twice per round trip, so that is one empty
// syscall and two clock reads per sleep: about 4 µs of the guest's CPU and 3.5 µs of latency per Wayland round trip
// on the benchmark machine (README.md, Performance, fifth round). crossway never reads the loop's idle time.
//
// libuv offers no call to turn the option off (uv_loop_configure only sets it), so this clears its bit where libuv
// keeps it: the first member, `unsigned int flags`, of the struct behind loop->internal_fields
// (uv__loop_internal_fields_s in src/uv-common.h). That struct exists since libuv 1.39.0 and the member has stayed
// first through 1.52; the bit is set only by uv_loop_configure(UV_METRICS_IDLE_TIME) and read only by the metrics
// code and uv__io_poll. Any other libuv leaves the loop as it is.
#include <uv.h>

#include "common.h"

namespace crossway {
namespace {

// The leading member of libuv's private uv__loop_internal_fields_s, the only one this file touches.
struct LoopInternalFieldsHead {
  unsigned int flags;
};

constexpr unsigned int kFirstVersionWithInternalFields = (1u << 16) | (39u << 8);  // 1.39.0
constexpr unsigned int kLastVersionChecked = (1u << 16) | (52u << 8) | 0xffu;  // 1.52.x

// stopLoopIdleMetrics(): true when the option was on and is now off; false when it was off already or this libuv
// is one the layout above was not checked against (then nothing is changed).
Napi::Value StopLoopIdleMetrics(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const unsigned int version = uv_version();
  if (version < kFirstVersionWithInternalFields || version > kLastVersionChecked) return Napi::Boolean::New(env, false);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr || loop->internal_fields == nullptr) {
    return Napi::Boolean::New(env, false);
  }
  auto* head = static_cast<LoopInternalFieldsHead*>(loop->internal_fields);
  static_assert(UV_METRICS_IDLE_TIME == 1, "libuv keeps UV_METRICS_IDLE_TIME's value as the flag bit");
  const bool wasOn = (head->flags & UV_METRICS_IDLE_TIME) != 0;
  head->flags &= ~static_cast<unsigned int>(UV_METRICS_IDLE_TIME);
  return Napi::Boolean::New(env, wasOn);
}

}  // namespace

void InitEventLoop(Napi::Env env, Napi::Object exports) {
  exports.Set("stopLoopIdleMetrics", Napi::Function::New(env, StopLoopIdleMetrics, "stopLoopIdleMetrics"));
}

}  // namespace crossway
