// ioctl whose argument struct holds user pointers (virtgpu GET_CAPS, CONTEXT_INIT, EXECBUFFER, GETPARAM): the
// addon writes the addresses of the given Uint8Arrays into the struct right before the call, so JS never holds a
// raw address that could outlive its buffer.
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common.h"

namespace crossway {
namespace {

// ioctlPointers(fd, request, arg, offsets, buffers): for each i, stores the address of buffers[i] (u64, native
// endian) at arg[offsets[i]], then ioctl(fd, request, arg). Restarts on EINTR/EAGAIN like drmIoctl.
Napi::Value IoctlPointers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  unsigned long request = static_cast<unsigned long>(IntArg(info, 1, "request"));
  uint8_t* arg = PatchPointers(info, 2);
  for (;;) {
    int r = ioctl(fd, request, arg);
    if (r >= 0) return Napi::Number::New(env, r);
    if (errno == EINTR || errno == EAGAIN) continue;
    ThrowErrno(env, errno, "ioctl");
  }
}

}  // namespace

uint8_t* PatchPointers(const Napi::CallbackInfo& info, size_t first) {
  Napi::Env env = info.Env();
  if (info.Length() < first + 3 || !info[first].IsTypedArray() || !info[first + 1].IsArray() ||
      !info[first + 2].IsArray()) {
    throw Napi::TypeError::New(env, "expected (arg: Uint8Array, offsets: number[], buffers: Uint8Array[])");
  }
  Napi::TypedArray argTa = info[first].As<Napi::TypedArray>();
  uint8_t* arg = static_cast<uint8_t*>(argTa.ArrayBuffer().Data()) + argTa.ByteOffset();
  size_t argLen = argTa.ByteLength();
  Napi::Array offsets = info[first + 1].As<Napi::Array>();
  Napi::Array buffers = info[first + 2].As<Napi::Array>();
  if (offsets.Length() != buffers.Length()) throw Napi::TypeError::New(env, "offsets and buffers differ in length");
  for (uint32_t i = 0; i < offsets.Length(); i++) {
    Napi::Value off = offsets.Get(i);
    Napi::Value buf = buffers.Get(i);
    if (!off.IsNumber() || !buf.IsTypedArray()) throw Napi::TypeError::New(env, "bad pointer patch entry");
    int64_t o = off.As<Napi::Number>().Int64Value();
    if (o < 0 || static_cast<size_t>(o) + 8 > argLen) throw Napi::RangeError::New(env, "pointer offset out of range");
    Napi::TypedArray ta = buf.As<Napi::TypedArray>();
    // ArrayBuffer() externalises on-heap typed arrays, so the address stays valid while the array is alive.
    uint64_t addr = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
    memcpy(arg + o, &addr, sizeof addr);
  }
  return arg;
}

void InitIoctlPointers(Napi::Env env, Napi::Object exports) {
  exports.Set("ioctlPointers", Napi::Function::New(env, IoctlPointers));
}

}  // namespace crossway
