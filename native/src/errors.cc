// errno to JS error conversion and argument checking for the native addon.
#include <uv.h>

#include <cmath>
#include <cstring>
#include <string>

#include "common.h"

namespace crossway {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* code = uv_err_name(-err);
  std::string msg = std::string(code) + ": " + std::strerror(err) + ", " + syscall;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) { throw ErrnoError(env, err, syscall); }

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an fd number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 2147483647) || v != std::trunc(v)) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " is not a valid fd");
  }
  return static_cast<int>(v);
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  // Range first: converting NaN, an infinity or a double beyond int64 to int64_t is undefined behaviour.
  if (!(v >= -9007199254740991.0 && v <= 9007199254740991.0) || v != std::trunc(v)) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a safe integer");
  }
  return static_cast<int64_t>(v);
}

uint8_t* BytesArg(const Napi::CallbackInfo& info, size_t i, size_t offset, size_t length) {
  if (info.Length() <= i || !info[i].IsTypedArray()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Uint8Array");
  }
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Uint8Array");
  }
  Napi::Uint8Array arr = ta.As<Napi::Uint8Array>();
  if (offset > arr.ByteLength() || length > arr.ByteLength() - offset) {
    throw Napi::RangeError::New(info.Env(), "byte range outside the buffer");
  }
  return arr.Data() + offset;
}

}  // namespace crossway
