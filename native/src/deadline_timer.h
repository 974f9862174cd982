// A one-shot timer for Node's libuv loop that does not make the loop's every sleep carry a timeout.
//
// While any libuv timer is pending, each epoll_pwait of the loop gets the time left to it as its timeout, and the
// kernel arms and cancels a high-resolution timer around every such sleep. For a timeout shorter than the
// scheduler tick that means reprogramming the CPU's timer device twice per sleep, a trap to the hypervisor each in a
// VM: on the benchmark machine a 1 ms timeout costs about 2.2 µs per sleep against an infinite one (README.md,
// Performance, tenth round). A timer re-armed about once per round trip (the riding POLL's) keeps one pending all
// the time, and a proxy sleeps twice per round trip. This timer is a timerfd the loop watches instead: the kernel
// arms it once per start(), and the loop sleeps without a timeout. Where no timerfd can be made (the fd limit), it
// falls back to a libuv timer, which costs that time again but works the same.
#pragma once
#include <uv.h>

namespace crossway {

class DeadlineTimer {
 public:
  using Callback = void (*)(void* data);

  // Watches nothing yet: Init must come first. Unref'd, like an unref'd libuv timer: it never keeps the loop alive.
  DeadlineTimer() = default;
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;
  ~DeadlineTimer() { Close(); }

  // Creates the timer on `loop`; `callback(data)` runs on the loop when a start()ed timer expires.
  void Init(uv_loop_t* loop, Callback callback, void* data);
  // Arms the timer to expire once, `ms` milliseconds from now (re-arming replaces the previous deadline).
  void Start(double ms);
  // Stops it for good and gives its handle (and timerfd) back to libuv. Idempotent.
  void Close();
  // Whether a Start waits to expire.
  bool Armed() const { return armed_; }
  // Whether it waits on a timerfd (false: libuv's timer, or not initialized).
  bool UsesTimerFd() const { return poll_ != nullptr; }

  // For a fast path's inline loop (inline_loop.h), which waits on the timerfd itself while it holds the thread:
  // the timerfd (-1 without one), taking it out of libuv's epoll and back, and the expiry it saw (a read of the
  // timerfd, then the callback if the deadline really passed).
  int Fd() const { return fd_; }
  bool SuspendWatch();
  void ResumeWatch();
  void ExpireFromFd();

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* handle);
  void Expired();
  void StartFallback(uv_loop_t* loop);
  void ClosePoll();

  Callback callback_ = nullptr;
  void* data_ = nullptr;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  bool armed_ = false;
  bool suspended_ = false;
};

}  // namespace crossway
