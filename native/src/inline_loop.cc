// The inline loop of a connection's fast path: a private epoll over its two sockets and libuv's epoll fd.
#include "inline_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common.h"
#include "deadline_timer.h"
#include "fast_path.h"

namespace crossway {
namespace {

// The back-off's ceiling, in skipped entries: a connection that keeps losing its stays to others tries again after
// at most this many of its own wake-ups.
constexpr uint32_t kMaxBackoff = 64;
// A stay pays for itself after about this many wake-ups handled without JavaScript: each saves a turn of Node's loop
// (about 1 µs here), and going in and out costs six to nine epoll_ctl calls. A shorter one (a burst whose host
// socket fills after every few kilobytes, each time a notice to JavaScript) backs off.
constexpr uint32_t kUsefulStay = 8;
// The private epoll's tags for libuv's epoll fd and the hook's timer (the sockets are tagged with their role, 0 and 1).
constexpr uint32_t kLibuvTag = 2;
constexpr uint32_t kTimerTag = 3;

}  // namespace

bool InlineLoopEnabled() {
  static const bool enabled = [] {
    const char* v = getenv("CROSSWAY_INLINE_LOOP");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  return enabled;
}

uint64_t& JsEntries() {
  static thread_local uint64_t entries = 0;
  return entries;
}

InlineLoopStats& InlineStats() {
  static thread_local InlineLoopStats stats;
  return stats;
}

void InlineLoop::Open(uv_loop_t* loop, int fd0, int fd1, DeadlineTimer* timer) {
  if (!InlineLoopEnabled() || epfd_ >= 0 || loop == nullptr) return;
  const int backend = uv_backend_fd(loop);
  if (backend < 0) return;
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return;
  const int fds[3] = {fd0, fd1, backend};
  for (uint32_t tag = 0; tag < 3; tag++) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[tag], &ev) != 0) {
      close(epfd);
      return;
    }
  }
  if (timer != nullptr && timer->Fd() >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = kTimerTag;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, timer->Fd(), &ev) == 0) timer_ = timer;
  }
  loop_ = loop;
  epfd_ = epfd;
}

void InlineLoop::Close() {
  if (epfd_ < 0) return;
  close(epfd_);
  epfd_ = -1;
  // The hook closes its timer with this loop (or after it): forget it.
  timer_ = nullptr;
}

void InlineLoop::Bind(int role, InlineWatcher* watcher) {
  if (role == 0 || role == 1) watchers_[role] = watcher;
}

void InlineLoop::Unbind(InlineWatcher* watcher) {
  for (auto& w : watchers_) {
    if (w == watcher) w = nullptr;
  }
}

void InlineLoop::Run(ReadyHook* hook) {
  if (epfd_ < 0 || running_ || watchers_[0] == nullptr || watchers_[1] == nullptr) return;
  InlineLoopStats& stats = InlineStats();
  if (skip_ > 0) {
    skip_--;
    stats.skipped += 1;
    return;
  }
  // Both or neither: a stopped and restarted watcher costs libuv three epoll_ctl calls.
  if (!watchers_[0]->InlineEligible() || !watchers_[1]->InlineEligible()) return;
  if (!watchers_[0]->SuspendForInline()) return;
  if (!watchers_[1]->SuspendForInline()) {
    watchers_[0]->ResumeAfterInline();
    return;
  }
  // The hook's timer, when it waits on a timerfd, is served here too; a libuv timer shows in libuv's timeout.
  DeadlineTimer* timer = timer_ != nullptr && timer_->SuspendWatch() ? timer_ : nullptr;
  running_ = true;
  hook->Pin();
  stats.stays += 1;
  uint32_t handled = 0;
  uint64_t& js = JsEntries();
  bool leave = false;
  while (!leave) {
    // libuv's own timeout, from a fresh clock: the loop's time stands still while this runs inside its callback.
    uv_update_time(loop_);
    const int timeout = uv_backend_timeout(loop_);
    if (timeout == 0) break;
    epoll_event events[4];
    const int n = epoll_wait(epfd_, events, 4, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a timer is due (or the epoll failed): libuv's turn
    for (int i = 0; i < n; i++) {
      if (events[i].data.u32 == kLibuvTag) leave = true;
    }
    // libuv has work: it goes first, and a socket that is also ready stays so (level-triggered) for its watcher.
    for (int i = 0; i < n && !leave; i++) {
      if (events[i].events != EPOLLIN) {
        leave = true;  // hang-up or error: JavaScript's, through the watcher
        break;
      }
      const uint64_t before = js;
      const uint32_t tag = events[i].data.u32;
      if (tag == kTimerTag) {
        // Its callback is the hook's (a fast path's deadline); a timer this stay did not take out stays libuv's.
        if (timer == nullptr) {
          leave = true;
          break;
        }
        timer->ExpireFromFd();
        stats.timers += 1;
      } else if (!hook->OnReady(static_cast<int>(tag), UV_READABLE)) {
        leave = true;  // declined, nothing consumed: the watcher's callback reads it
        break;
      }
      // A wake-up that ended in JavaScript saved no turn of the loop: libuv's comes right after.
      if (js != before)
        leave = true;
      else
        handled++;
    }
  }
  // JavaScript may have unbound or closed a watcher meanwhile (then it resumed itself or is gone).
  for (auto* w : watchers_) {
    if (w != nullptr) w->ResumeAfterInline();
  }
  // Closed meanwhile (the hook detached in a notice), it has no handle left and ResumeWatch does nothing.
  if (timer != nullptr) timer->ResumeWatch();
  running_ = false;
  stats.wakeups += handled;
  if (handled < kUsefulStay) {
    backoff_ = backoff_ == 0 ? 1 : (backoff_ * 2 > kMaxBackoff ? kMaxBackoff : backoff_ * 2);
    skip_ = backoff_;
  } else {
    backoff_ = 0;
  }
  hook->Unpin();
}

namespace {

// inlineLoopStats(): this thread's InlineStats, and whether the loop is on (CROSSWAY_INLINE_LOOP).
Napi::Value InlineLoopStatsValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const InlineLoopStats& stats = InlineStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("enabled", Napi::Boolean::New(env, InlineLoopEnabled()));
  o.Set("stays", Napi::Number::New(env, stats.stays));
  o.Set("wakeups", Napi::Number::New(env, stats.wakeups));
  o.Set("skipped", Napi::Number::New(env, stats.skipped));
  o.Set("timers", Napi::Number::New(env, stats.timers));
  return o;
}

}  // namespace

void InitInlineLoop(Napi::Env env, Napi::Object exports) {
  exports.Set("inlineLoopStats", Napi::Function::New(env, InlineLoopStatsValue, "inlineLoopStats"));
}

}  // namespace crossway
