// Shared declarations of the crossway native addon: syscalls only, errors shaped like Node's SystemError.
#pragma once
#include <napi.h>
#include <sys/types.h>

#include <string>

namespace crossway {

// Throws a JS Error with code/errno/syscall like Node's SystemError (message "ECODE: strerror, syscall").
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);
// The same error as a value (to reject a promise with).
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);

// Hands a mapping made by mmap(2) to JS as an external ArrayBuffer that munmap() (memory.cc) accepts.
Napi::ArrayBuffer WrapMapping(Napi::Env env, void* addr, size_t length);

// Returned to JS instead of throwing when the kernel says EAGAIN/EWOULDBLOCK.
constexpr int kAgain = -1;

// SCM_RIGHTS limit per message, as libwayland's MAX_FDS_OUT and the cross-domain identifier array.
constexpr int kMaxFds = 28;

// One non-blocking recvmsg of up to `length` bytes with up to kMaxFds fds (sockets.cc): the byte count (0 at EOF),
// -EAGAIN when nothing waits, or -errno. `*nfds` is the number of fds stored in `fds`, or kFdsTruncated /
// kFdsTooMany when the peer sent more than a message may carry (then every fd that arrived is already closed).
constexpr int kFdsTruncated = -1;
constexpr int kFdsTooMany = -2;
ssize_t RecvWithFds(int fd, uint8_t* buf, size_t length, int* fds, int* nfds);
// RecvWithFds of up to `want` more bytes after buf[*start, *got), the part of a message or frame a read cut, which
// is first moved to the front of buf when `want` would not fit in its `cap` bytes; *got grows by what was read.
ssize_t RecvRest(int fd, uint8_t* buf, size_t cap, size_t* start, size_t* got, size_t want, int* fds, int* nfds);
// The EMSGSIZE error native.recvmsg throws for kFdsTruncated or kFdsTooMany.
Napi::Error FdLimitError(Napi::Env env, int nfds);

// Argument helpers that throw TypeError on misuse.
// A typed array argument of element type `type` (TypeError otherwise): its data, and its length in elements.
template <typename T>
T* TypedArrayArg(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* what,
                 size_t* length) {
  if (info.Length() <= i || !info[i].IsTypedArray()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a typed array");
  }
  Napi::TypedArray a = info[i].As<Napi::TypedArray>();
  if (a.TypedArrayType() != type) throw Napi::TypeError::New(info.Env(), std::string(what) + " has the wrong element type");
  *length = a.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}
int FdArg(const Napi::CallbackInfo& info, size_t i);
int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* what);
// Bounds-checked byte range [offset, offset+length) of a Uint8Array argument.
uint8_t* BytesArg(const Napi::CallbackInfo& info, size_t i, size_t offset, size_t length);

// Validates (arg: Uint8Array, offsets: number[], buffers: Uint8Array[]) at info[first..first+2], stores the
// address of buffers[i] as a u64 at arg[offsets[i]] and returns arg's bytes (ioctl_pointers.cc).
uint8_t* PatchPointers(const Napi::CallbackInfo& info, size_t first);

void InitSockets(Napi::Env env, Napi::Object exports);
void InitFiles(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitWatcher(Napi::Env env, Napi::Object exports);
void InitIoctlPointers(Napi::Env env, Napi::Object exports);
void InitGuardedCopy(Napi::Env env, Napi::Object exports);
void InitIoctlQueue(Napi::Env env, Napi::Object exports);
void InitEventLoop(Napi::Env env, Napi::Object exports);
void InitWaylandScan(Napi::Env env, Napi::Object exports);
void InitFastPath(Napi::Env env, Napi::Object exports);
void InitDeviceFastPath(Napi::Env env, Napi::Object exports);
void InitDeadlineTimer(Napi::Env env, Napi::Object exports);
void InitInlineLoop(Napi::Env env, Napi::Object exports);

}  // namespace crossway
