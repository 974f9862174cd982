// Unix stream sockets and SCM_RIGHTS message passing for the native addon.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "common.h"

namespace crossway {
ssize_t RecvWithFds(int fd, uint8_t* buf, size_t length, int* fds, int* nfds) {
  *nfds = 0;
  iovec iov{buf, length};
  // Room for more than we accept, so an over-limit sender is seen (and its fds closed) rather than truncated.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFds * 2))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  int count = 0;
  bool overflow = false;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(cm);
    for (size_t i = 0; i < k; i++) {
      int rfd;
      std::memcpy(&rfd, p + i * sizeof(int), sizeof(int));
      if (count < kMaxFds) {
        fds[count++] = rfd;
      } else {
        close(rfd);
        overflow = true;
      }
    }
  }
  const bool ctrunc = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (ctrunc || overflow) {
    for (int i = 0; i < count; i++) close(fds[i]);
    // A truncated control message always overflows our limit too; report the truncation, the more specific fact.
    *nfds = ctrunc ? kFdsTruncated : kFdsTooMany;
    return n;
  }
  *nfds = count;
  return n;
}

ssize_t RecvRest(int fd, uint8_t* buf, size_t cap, size_t* start, size_t* got, size_t want, int* fds, int* nfds) {
  if (*got + want > cap) {
    std::memmove(buf, buf + *start, *got - *start);
    *got -= *start;
    *start = 0;
  }
  const ssize_t n = RecvWithFds(fd, buf + *got, want, fds, nfds);
  if (n > 0) *got += static_cast<size_t>(n);
  return n;
}

Napi::Error FdLimitError(Napi::Env env, int nfds) {
  Napi::Error e = Napi::Error::New(
      env, nfds == kFdsTruncated ? "EMSGSIZE: control data truncated (MSG_CTRUNC), received fds closed, recvmsg"
                                 : "EMSGSIZE: more than 28 fds in one message, received fds closed, recvmsg");
  e.Set("code", Napi::String::New(env, "EMSGSIZE"));
  e.Set("errno", Napi::Number::New(env, -EMSGSIZE));
  e.Set("syscall", Napi::String::New(env, "recvmsg"));
  return e;
}

namespace {

sockaddr_un MakeAddr(Napi::Env env, const std::string& path, socklen_t* len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) ThrowErrno(env, ENAMETOOLONG, "bind");
  std::memcpy(addr.sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return addr;
}

std::string PathArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), "path must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, 0);
  int backlog = static_cast<int>(IntArg(info, 1, "backlog"));
  socklen_t len;
  sockaddr_un addr = MakeAddr(env, path, &len);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "bind");
  }
  if (listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "listen");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int lfd = FdArg(info, 0);
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) return Napi::Number::New(env, fd);
    if (errno == EINTR) continue;
    // ECONNABORTED: the peer left before we accepted; nothing to hand out.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return Napi::Number::New(env, kAgain);
    ThrowErrno(env, errno, "accept4");
  }
}

Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, 0);
  socklen_t len;
  sockaddr_un addr = MakeAddr(env, path, &len);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "connect");
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "fcntl");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) ThrowErrno(env, errno, "socketpair");
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, sv[0]));
  out.Set(1u, Napi::Number::New(env, sv[1]));
  return out;
}

Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  size_t offset = static_cast<size_t>(IntArg(info, 2, "offset"));
  size_t length = static_cast<size_t>(IntArg(info, 3, "length"));
  uint8_t* data = BytesArg(info, 1, offset, length);
  int fds[kMaxFds];
  size_t nfds = 0;
  if (info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined()) {
    if (!info[4].IsArray()) throw Napi::TypeError::New(env, "fds must be an array or null");
    Napi::Array arr = info[4].As<Napi::Array>();
    nfds = arr.Length();
    if (nfds > static_cast<size_t>(kMaxFds)) {
      throw Napi::RangeError::New(env, "sendmsg carries at most 28 fds, got " + std::to_string(nfds));
    }
    for (size_t i = 0; i < nfds; i++) {
      Napi::Value v = arr.Get(static_cast<uint32_t>(i));
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "fds must be numbers");
      double d = v.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d <= 2147483647) || d != std::trunc(d)) throw Napi::TypeError::New(env, "invalid fd in fds");
      fds[i] = static_cast<int>(d);
    }
  }
  // A stream socket drops ancillary data sent with zero bytes, so fds always travel with at least one byte.
  if (nfds > 0 && length == 0) throw Napi::RangeError::New(env, "fds need at least one byte of data");
  iovec iov{data, length};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    std::memset(control, 0, msg.msg_controllen);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return Napi::Number::New(env, static_cast<double>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, kAgain);
    ThrowErrno(env, errno, "sendmsg");
  }
}

Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  size_t offset = static_cast<size_t>(IntArg(info, 2, "offset"));
  size_t length = static_cast<size_t>(IntArg(info, 3, "length"));
  uint8_t* data = BytesArg(info, 1, offset, length);
  if (info.Length() <= 4 || !info[4].IsTypedArray() ||
      info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[4].As<Napi::Int32Array>().ElementLength() < static_cast<size_t>(kMaxFds + 1)) {
    throw Napi::TypeError::New(env, "fdsOut must be an Int32Array of at least 29 elements");
  }
  int32_t* out = info[4].As<Napi::Int32Array>().Data();
  out[0] = 0;
  int nfds = 0;
  const ssize_t n = RecvWithFds(fd, data, length, out + 1, &nfds);
  if (n == -EAGAIN) return Napi::Number::New(env, kAgain);
  if (n < 0) ThrowErrno(env, static_cast<int>(-n), "recvmsg");
  if (nfds < 0) throw FdLimitError(env, nfds);
  out[0] = nfds;
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int how = static_cast<int>(IntArg(info, 1, "how"));
  if (shutdown(fd, how) < 0 && errno != ENOTCONN) ThrowErrno(info.Env(), errno, "shutdown");
  return info.Env().Undefined();
}

}  // namespace

void InitSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("sendmsg", Napi::Function::New(env, SendMsg));
  exports.Set("recvmsg", Napi::Function::New(env, RecvMsg));
  exports.Set("shutdown", Napi::Function::New(env, Shutdown));
}

}  // namespace crossway
