// The native handlers a libuv Watcher asks first on each wake-up: a guest connection's steady state (fast_path.cc)
// and the emulated device's (device_fast_path.cc).
#pragma once
#include <napi.h>
#include <unistd.h>

#include "inline_loop.h"

namespace crossway {

// A handler that sees a watcher's wake-ups before its JavaScript callback. `role` says which of the handler's
// sockets the watcher watches (0 or 1, the handler's own meaning); OnReady returns true when it handled the wake-up,
// so the callback must not run, and false to run the callback as usual (nothing was consumed).
class ReadyHook {
 public:
  virtual ~ReadyHook() = default;
  virtual bool OnReady(int role, int events) = 0;
  // Holds the hook's JavaScript object while its inline loop runs: a notice's JavaScript may drop the last reference.
  virtual void Pin() = 0;
  virtual void Unpin() = 0;
  // The private wait its watchers hand it after a wake-up it handled without JavaScript (inline_loop.h).
  InlineLoop& Inline() { return inline_; }

 protected:
  InlineLoop inline_;
};

// Roles of a guest connection's FastPath.
enum FastPathRole { kFastPathClient = 0, kFastPathDevice = 1 };
// Roles of the device's DeviceFastPath.
enum DeviceFastPathRole { kDeviceFastPathGuest = 0, kDeviceFastPathHost = 1 };

// What a notice hands JavaScript as `arg`: bytes (copied into a new Uint8Array), a message, or the error
// native.recvmsg throws (`fd_limit`: kFdsTruncated or kFdsTooMany; `recv_errno`: an errno). Nothing: undefined.
struct NoticeArg {
  const uint8_t* bytes = nullptr;
  size_t length = 0;
  const char* message = nullptr;
  int fd_limit = 0;
  int recv_errno = 0;
};

// Calls `notify(what, arg, fds)` with `self` as receiver and the fds (when any) as a new Int32Array, inside the
// caller's HandleScope. A JavaScript exception goes to Node's uncaught-exception path: it must not unwind into libuv.
void CallNotifyInScope(Napi::FunctionReference& notify, Napi::Value self, int what, const NoticeArg& arg,
                       const int* fds, int nfds);

// CallNotifyInScope in a HandleScope of its own, with the fast path object as receiver (a handle to it is made inside
// the scope: fast paths run from libuv callbacks, outside any). A `detached` fast path calls nothing and closes the
// fds, which are no one's now.
template <typename T>
void CallNotify(bool detached, Napi::FunctionReference& notify, Napi::ObjectWrap<T>& self, int what,
                const NoticeArg& arg, const int* fds, int nfds) {
  if (detached) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return;
  }
  Napi::HandleScope scope(notify.Env());
  CallNotifyInScope(notify, self.Value(), what, arg, fds, nfds);
}

// The ReadyHook behind a JavaScript object (a FastPath or a DeviceFastPath), or null if it is neither.
ReadyHook* UnwrapReadyHook(Napi::Value value);
// The DeviceFastPath behind a JavaScript object, or null (device_fast_path.cc).
ReadyHook* UnwrapDeviceFastPath(Napi::Value value);

}  // namespace crossway
