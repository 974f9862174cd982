// Shared declarations of the crossway native addon: syscalls only, errors shaped like Node's SystemError.
#pragma once
#include <napi.h>

namespace crossway {

// Throws a JS Error with code/errno/syscall like Node's SystemError (message "ECODE: strerror, syscall").
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);

// Returned to JS instead of throwing when the kernel says EAGAIN/EWOULDBLOCK.
constexpr int kAgain = -1;

// SCM_RIGHTS limit per message, as libwayland's MAX_FDS_OUT and the cross-domain identifier array.
constexpr int kMaxFds = 28;

// Argument helpers that throw TypeError on misuse.
int FdArg(const Napi::CallbackInfo& info, size_t i);
int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* what);
// Bounds-checked byte range [offset, offset+length) of a Uint8Array argument.
uint8_t* BytesArg(const Napi::CallbackInfo& info, size_t i, size_t offset, size_t length);

void InitSockets(Napi::Env env, Napi::Object exports);
void InitFiles(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitWatcher(Napi::Env env, Napi::Object exports);
void InitIoctlPointers(Napi::Env env, Napi::Object exports);
void InitGuardedCopy(Napi::Env env, Napi::Object exports);

}  // namespace crossway
