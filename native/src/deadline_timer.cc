// DeadlineTimer (deadline_timer.h): a timerfd watched by libuv, so the loop sleeps without a timeout while it waits.
#include "deadline_timer.h"

#include "common.h"

#include <errno.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace crossway {
namespace {

// The watched timerfd travels with its handle, so the close callback can close it (uv_fileno refuses a closing
// handle).
struct TimerFdPoll {
  uv_poll_t handle;
  int fd;
};

}  // namespace

void DeadlineTimer::Init(uv_loop_t* loop, Callback callback, void* data) {
  callback_ = callback;
  data_ = data;
  fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd_ >= 0) {
    TimerFdPoll* box = new TimerFdPoll{};
    box->fd = fd_;
    poll_ = &box->handle;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete box;  // never joined the loop
      poll_ = nullptr;
      close(fd_);
      fd_ = -1;
    } else {
      poll_->data = this;
      uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
      // Started once for its whole life: libuv's uv_poll_start re-registers the fd with epoll each time it is called.
      if (uv_poll_start(poll_, UV_READABLE, OnReadable) == 0) return;
      ClosePoll();
    }
  }
  StartFallback(loop);
}

void DeadlineTimer::StartFallback(uv_loop_t* loop) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop, timer_);
  timer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

void DeadlineTimer::Start(double ms) {
  if (!(ms >= 0)) ms = 0;
  armed_ = true;
  if (poll_ != nullptr) {
    // it_value 0 would disarm the timerfd: a deadline already due is 1 ns away.
    const double ns = std::max(1.0, std::ceil(ms * 1e6));
    struct itimerspec spec = {};
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1e9);
    spec.it_value.tv_nsec = static_cast<long>(ns - static_cast<double>(spec.it_value.tv_sec) * 1e9);
    if (timerfd_settime(fd_, 0, &spec, nullptr) == 0) return;
    // EINVAL, for a value out of range, is the only failure: that deadline is as good as passed.
    Expired();
    return;
  }
  if (timer_ != nullptr) uv_timer_start(timer_, OnTimer, static_cast<uint64_t>(std::ceil(ms)), 0);
}

void DeadlineTimer::Close() {
  armed_ = false;
  ClosePoll();
  if (timer_ != nullptr) {
    timer_->data = nullptr;
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void DeadlineTimer::ClosePoll() {
  suspended_ = false;
  if (poll_ == nullptr) return;
  poll_->data = nullptr;
  // The fd is closed only once libuv has let go of the handle, so no event of a reused fd number reaches it.
  uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) {
    TimerFdPoll* box = reinterpret_cast<TimerFdPoll*>(h);
    close(box->fd);
    delete box;
  });
  poll_ = nullptr;
  fd_ = -1;
}

void DeadlineTimer::OnReadable(uv_poll_t* handle, int status, int events) {
  (void)events;
  DeadlineTimer* self = static_cast<DeadlineTimer*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    // libuv stopped the handle on the error: go on with a libuv timer, and let this deadline pass now (callers
    // re-check what they wait for, so an early expiry is only an early look).
    uv_loop_t* loop = handle->loop;
    self->ClosePoll();
    self->StartFallback(loop);
    self->Expired();
    return;
  }
  self->ExpireFromFd();
}

void DeadlineTimer::ExpireFromFd() {
  if (fd_ < 0) return;
  uint64_t expirations = 0;
  ssize_t n;
  do {
    n = read(fd_, &expirations, sizeof expirations);
  } while (n < 0 && errno == EINTR);
  // EAGAIN: re-armed or stopped between the expiry and this read, so nothing is due.
  if (n == static_cast<ssize_t>(sizeof expirations)) Expired();
}

bool DeadlineTimer::SuspendWatch() {
  if (poll_ == nullptr || suspended_) return false;
  uv_poll_stop(poll_);
  suspended_ = true;
  return true;
}

void DeadlineTimer::ResumeWatch() {
  if (!suspended_) return;
  suspended_ = false;
  // A timer closed meanwhile has no handle left to start.
  if (poll_ != nullptr) uv_poll_start(poll_, UV_READABLE, OnReadable);
}

void DeadlineTimer::OnTimer(uv_timer_t* handle) {
  DeadlineTimer* self = static_cast<DeadlineTimer*>(handle->data);
  if (self != nullptr) self->Expired();
}

void DeadlineTimer::Expired() {
  if (!armed_) return;
  armed_ = false;
  callback_(data_);
}

}  // namespace crossway

namespace crossway {
namespace {

// new DeadlineTimer(callback): the same timer for JavaScript (LoopDeadline, for channel.ts's riding POLL). Owned
// by the object; close() (or the object's collection) gives it back to libuv.
class DeadlineTimerObject : public Napi::ObjectWrap<DeadlineTimerObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DeadlineTimer",
                       {InstanceMethod("start", &DeadlineTimerObject::Start),
                        InstanceMethod("close", &DeadlineTimerObject::Close),
                        InstanceMethod("usesTimerFd", &DeadlineTimerObject::UsesTimerFd)});
  }

  explicit DeadlineTimerObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeadlineTimerObject>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "no libuv loop");
    timer_.Init(loop, OnExpired, this);
  }

 private:
  void Start(const Napi::CallbackInfo& info) {
    if (closed_) throw Napi::Error::New(info.Env(), "deadline timer is closed");
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "ms must be a number");
    timer_.Start(info[0].As<Napi::Number>().DoubleValue());
  }

  void Close(const Napi::CallbackInfo& info) {
    (void)info;
    if (closed_) return;
    closed_ = true;
    timer_.Close();
    // A strong reference: kept after close, the callback would keep its owner (a channel) alive.
    callback_.Reset();
  }

  Napi::Value UsesTimerFd(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), timer_.UsesTimerFd()); }

  static void OnExpired(void* data) {
    DeadlineTimerObject* self = static_cast<DeadlineTimerObject*>(data);
    if (self->closed_ || self->callback_.IsEmpty()) return;
    Napi::Env env = self->callback_.Env();
    Napi::HandleScope scope(env);
    try {
      self->callback_.MakeCallback(self->Value(), {});
    } catch (const Napi::Error& e) {
      // A C++ exception must not unwind into libuv: hand the JS error to Node's uncaught-exception path.
      napi_fatal_exception(env, e.Value());
    }
  }

  Napi::FunctionReference callback_;
  DeadlineTimer timer_;
  bool closed_ = false;
};

}  // namespace

void InitDeadlineTimer(Napi::Env env, Napi::Object exports) {
  exports.Set("DeadlineTimer", DeadlineTimerObject::Define(env));
}

}  // namespace crossway
