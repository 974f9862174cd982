// A guest connection's steady state in C, run from the libuv watchers of its two sockets (fast_path.cc).
#pragma once
#include <napi.h>

namespace crossway {

class FastPath;

// Which socket a watcher watches, for FastPath::OnReady.
enum class FastPathRole { kClient = 0, kDevice = 1 };

// Called by a Watcher before its JavaScript callback: true when the fast path handled the wake-up, so the callback
// must not run; false to run it as usual (nothing was consumed, or only a prefix the callback will not see again).
bool FastPathOnReady(FastPath* fast, FastPathRole role, int events);

// The FastPath behind a JavaScript object, or null if it is not one.
FastPath* UnwrapFastPath(Napi::Value value);

}  // namespace crossway
