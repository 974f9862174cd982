// The native handlers a libuv Watcher asks first on each wake-up: a guest connection's steady state (fast_path.cc)
// and the emulated device's (device_fast_path.cc).
#pragma once
#include <napi.h>

namespace crossway {

// A handler that sees a watcher's wake-ups before its JavaScript callback. `role` says which of the handler's
// sockets the watcher watches (0 or 1, the handler's own meaning); OnReady returns true when it handled the wake-up,
// so the callback must not run, and false to run the callback as usual (nothing was consumed).
class ReadyHook {
 public:
  virtual ~ReadyHook() = default;
  virtual bool OnReady(int role, int events) = 0;
};

// Roles of a guest connection's FastPath.
enum FastPathRole { kFastPathClient = 0, kFastPathDevice = 1 };
// Roles of the device's DeviceFastPath.
enum DeviceFastPathRole { kDeviceFastPathGuest = 0, kDeviceFastPathHost = 1 };

// Calls `notify(what, arg, fds)` with `self` as receiver, the fds (when any) as a new Int32Array and `bytes` (when
// not null) copied into a new Uint8Array as `arg`. A JavaScript exception goes to Node's uncaught-exception path: it
// must not unwind into libuv. The caller holds a HandleScope.
void CallNotify(Napi::FunctionReference& notify, Napi::Value self, int what, Napi::Value arg, const uint8_t* bytes,
                size_t length, const int* fds, int nfds);

// The ReadyHook behind a JavaScript object (a FastPath or a DeviceFastPath), or null if it is neither.
ReadyHook* UnwrapReadyHook(Napi::Value value);
// The DeviceFastPath behind a JavaScript object, or null (device_fast_path.cc).
ReadyHook* UnwrapDeviceFastPath(Napi::Value value);

}  // namespace crossway
