// Entry point of the crossway native addon: registers the syscall wrappers.
#include "common.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  crossway::InitSockets(env, exports);
  crossway::InitFiles(env, exports);
  crossway::InitMemory(env, exports);
  crossway::InitWatcher(env, exports);
  crossway::InitIoctlPointers(env, exports);
  crossway::InitGuardedCopy(env, exports);
  crossway::InitIoctlQueue(env, exports);
  crossway::InitEventLoop(env, exports);
  crossway::InitWaylandScan(env, exports);
  crossway::InitFastPath(env, exports);
  crossway::InitDeviceFastPath(env, exports);
  crossway::InitDeadlineTimer(env, exports);
  crossway::InitInlineLoop(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(crossway_native, Init)
