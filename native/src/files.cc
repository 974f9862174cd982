// File-descriptor syscalls for the native addon: I/O, memfd and seals, eventfd, pipes, fstat, flock, ioctl,
// userfaultfd.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace crossway {
namespace {

// read/write/pread/pwrite share one shape: (fd, buf, offset, length[, position]).
template <bool kWrite, bool kPositional>
Napi::Value Io(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  size_t offset = static_cast<size_t>(IntArg(info, 2, "offset"));
  size_t length = static_cast<size_t>(IntArg(info, 3, "length"));
  uint8_t* data = BytesArg(info, 1, offset, length);
  off_t pos = kPositional ? static_cast<off_t>(IntArg(info, 4, "position")) : 0;
  const char* name = kWrite ? (kPositional ? "pwrite" : "write") : (kPositional ? "pread" : "read");
  for (;;) {
    ssize_t n;
    if (kWrite) {
      n = kPositional ? pwrite(fd, data, length, pos) : write(fd, data, length);
    } else {
      n = kPositional ? pread(fd, data, length, pos) : read(fd, data, length);
    }
    if (n >= 0) return Napi::Number::New(env, static_cast<double>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, kAgain);
    ThrowErrno(env, errno, name);
  }
}

// copyFileRange(inFd, inPos, outFd, outPos, length): copy_file_range(2) until `length` bytes are copied or the input
// ends. Returns the bytes copied (short only at the input's end), or minus the errno when a call fails (EXDEV,
// EINVAL or EOPNOTSUPP for files it cannot copy between: the caller copies another way). The kernel copies page to
// page, so no user mapping takes a page fault per page.
Napi::Value CopyFileRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int in = FdArg(info, 0);
  loff_t inPos = static_cast<loff_t>(IntArg(info, 1, "inPos"));
  int out = FdArg(info, 2);
  loff_t outPos = static_cast<loff_t>(IntArg(info, 3, "outPos"));
  size_t left = static_cast<size_t>(IntArg(info, 4, "length"));
  double done = 0;
  while (left > 0) {
    ssize_t n = copy_file_range(in, &inPos, out, &outPos, left, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Napi::Number::New(env, -errno);
    if (n == 0) break;
    left -= static_cast<size_t>(n);
    done += static_cast<double>(n);
  }
  return Napi::Number::New(env, done);
}

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  unsigned flags = static_cast<unsigned>(IntArg(info, 1, "flags"));
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | flags);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create");
  return Napi::Number::New(env, fd);
}

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  off_t size = static_cast<off_t>(IntArg(info, 1, "size"));
  int r;
  do {
    r = ftruncate(fd, size);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(info.Env(), errno, "ftruncate");
  return info.Env().Undefined();
}

Napi::Value AddSeals(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int seals = static_cast<int>(IntArg(info, 1, "seals"));
  if (fcntl(fd, F_ADD_SEALS, seals) < 0) ThrowErrno(info.Env(), errno, "fcntl(F_ADD_SEALS)");
  return info.Env().Undefined();
}

Napi::Value GetSeals(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int r = fcntl(fd, F_GET_SEALS);
  if (r < 0) ThrowErrno(info.Env(), errno, "fcntl(F_GET_SEALS)");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Fstat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  struct stat st;
  if (fstat(fd, &st) < 0) ThrowErrno(env, errno, "fstat");
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", Napi::Number::New(env, st.st_mode));
  o.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
  o.Set("dev", Napi::Number::New(env, static_cast<double>(st.st_dev)));
  o.Set("ino", Napi::Number::New(env, static_cast<double>(st.st_ino)));
  o.Set("rdev", Napi::Number::New(env, static_cast<double>(st.st_rdev)));
  return o;
}

Napi::Value GetFl(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int r = fcntl(fd, F_GETFL);
  if (r < 0) ThrowErrno(info.Env(), errno, "fcntl(F_GETFL)");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value SetNonblockCloexec(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ThrowErrno(info.Env(), errno, "fcntl(F_SETFL)");
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) ThrowErrno(info.Env(), errno, "fcntl(F_SETFD)");
  return info.Env().Undefined();
}

Napi::Value FdPath(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  char buf[PATH_MAX];
  ssize_t n = readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) ThrowErrno(info.Env(), errno, "readlink");
  return Napi::String::New(info.Env(), buf, static_cast<size_t>(n));
}

Napi::Value EventFd(const Napi::CallbackInfo& info) {
  unsigned initval = static_cast<unsigned>(IntArg(info, 0, "initval"));
  int flags = static_cast<int>(IntArg(info, 1, "flags"));
  int fd = eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK | flags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Pipe2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) ThrowErrno(env, errno, "pipe2");
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, p[0]));
  out.Set(1u, Napi::Number::New(env, p[1]));
  return out;
}

Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) ThrowErrno(info.Env(), errno, "fcntl(F_DUPFD_CLOEXEC)");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  // Linux releases the fd even when close reports EINTR, so it is never retried (that could close a reused fd).
  if (close(fd) < 0 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int op = static_cast<int>(IntArg(info, 1, "op"));
  for (;;) {
    if (flock(fd, op) == 0) return Napi::Boolean::New(info.Env(), true);
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
    ThrowErrno(info.Env(), errno, "flock");
  }
}

Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  unsigned long request = static_cast<unsigned long>(IntArg(info, 1, "request"));
  void* arg = nullptr;
  if (info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined()) {
    if (!info[2].IsTypedArray()) throw Napi::TypeError::New(env, "ioctl argument must be a Uint8Array or null");
    Napi::TypedArray ta = info[2].As<Napi::TypedArray>();
    arg = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  }
  for (;;) {
    int r = ioctl(fd, request, arg);
    if (r >= 0) return Napi::Number::New(env, r);
    if (errno == EINTR || errno == EAGAIN) continue;  // DRM ioctls are restarted on EINTR/EAGAIN, as libdrm does.
    ThrowErrno(env, errno, "ioctl");
  }
}

// userfaultfd(O_CLOEXEC | O_NONBLOCK | flags): glibc has no wrapper. The tests use it to make a syscall sleep in
// the kernel until they let it go (a page the kernel reads that nobody has filled yet), as a host that has not
// answered yet does.
Napi::Value Userfaultfd(const Napi::CallbackInfo& info) {
  int flags = static_cast<int>(IntArg(info, 0, "flags"));
  long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | flags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "userfaultfd");
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

}  // namespace

void InitFiles(Napi::Env env, Napi::Object exports) {
  exports.Set("read", Napi::Function::New(env, Io<false, false>));
  exports.Set("write", Napi::Function::New(env, Io<true, false>));
  exports.Set("pread", Napi::Function::New(env, Io<false, true>));
  exports.Set("pwrite", Napi::Function::New(env, Io<true, true>));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("copyFileRange", Napi::Function::New(env, CopyFileRange));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate));
  exports.Set("addSeals", Napi::Function::New(env, AddSeals));
  exports.Set("getSeals", Napi::Function::New(env, GetSeals));
  exports.Set("fstat", Napi::Function::New(env, Fstat));
  exports.Set("getFl", Napi::Function::New(env, GetFl));
  exports.Set("setNonblockCloexec", Napi::Function::New(env, SetNonblockCloexec));
  exports.Set("fdPath", Napi::Function::New(env, FdPath));
  exports.Set("eventfd", Napi::Function::New(env, EventFd));
  exports.Set("pipe2", Napi::Function::New(env, Pipe2));
  exports.Set("dup", Napi::Function::New(env, Dup));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("ioctl", Napi::Function::New(env, Ioctl));
  exports.Set("userfaultfd", Napi::Function::New(env, Userfaultfd));
}

}  // namespace crossway
