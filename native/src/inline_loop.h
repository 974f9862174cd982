// Keeps a connection's thread waiting on the connection's own two sockets while every wake-up is handled natively.
//
// A fast path (fast_path.h) handles a wake-up without JavaScript, but the thread still goes back through a whole turn
// of Node's loop before the next one: libuv's timers, prepare and check phases, and Node's check handle, which in
// Node 20 makes a V8 object and a callback scope on every turn, work or not. A proxy wakes twice per round trip, and
// skipping those turns saves each process 2 µs of CPU per round trip pinned and 3-4 µs unpinned on the benchmark
// machine (README.md, Performance, eleventh round). After a wake-up its fast path handled without calling into
// JavaScript, the InlineLoop takes the connection's two sockets (and the hook's own timer) out of libuv's epoll and
// waits on a private one that holds them and libuv's own epoll fd, with libuv's own timeout. It goes back to libuv, with both sockets watched again, as soon as libuv's epoll fd is readable (anything
// else is ready: another connection, a timer fd, a signal, a thread's wake-up), libuv's next timer is due, a socket
// reports more than readability, the fast path declines a wake-up (JavaScript reads it then, as always), or the
// fast path called into JavaScript (which may have started watchers or timers libuv has not yet told the kernel
// about). So nothing waits longer than it would have, and JavaScript never runs while the sockets are out of
// libuv's epoll except inside the fast path's own notices.
//
// A stay costs two epoll_ctl calls going in and four coming out (libuv's uv_poll_start deletes before it adds), one
// and two more for a hook's timer. A stay that handled fewer wake-ups without JavaScript than pay for that (two busy
// connections taking turns, a burst whose host keeps filling) makes the next ones skip the loop, with a back-off
// that doubles up to kMaxBackoff.
#pragma once
#include <uv.h>

#include <cstdint>

namespace crossway {

// What the inline loop needs of a socket's libuv watcher (watcher.cc): take it out of libuv's epoll and put it back.
class InlineWatcher {
 public:
  virtual ~InlineWatcher() = default;
  // Whether the loop may take it: open and started for exactly UV_READABLE (a writable watch means JavaScript has
  // queued output, and a stopped one means it paused reading).
  virtual bool InlineEligible() const = 0;
  // Stops the watcher's poll handle for the loop. False (nothing changed) unless it is eligible.
  virtual bool SuspendForInline() = 0;
  // Starts it again with whatever mask JavaScript gave it meanwhile (none: it stays stopped). Idempotent.
  virtual void ResumeAfterInline() = 0;
};

// Counts this thread's calls from native code into JavaScript (fast path notices): a wake-up that made one ends the
// inline loop.
uint64_t& JsEntries();

// Process-wide figures, for tests and `crossway status`: stays, wake-ups handled inside them, and stays skipped by
// the back-off.
struct InlineLoopStats {
  double stays = 0;
  double wakeups = 0;
  double skipped = 0;
  // Expiries of a hook's timer served inside stays (counted in wakeups too).
  double timers = 0;
};
InlineLoopStats& InlineStats();

// False when CROSSWAY_INLINE_LOOP=0 was in the environment at the first use: no loop opens (for comparisons).
bool InlineLoopEnabled();

class ReadyHook;
class DeadlineTimer;

class InlineLoop {
 public:
  InlineLoop() = default;
  InlineLoop(const InlineLoop&) = delete;
  InlineLoop& operator=(const InlineLoop&) = delete;
  ~InlineLoop() { Close(); }

  // Makes the private epoll over `fd0` (role 0), `fd1` (role 1) and `loop`'s epoll fd, and the timerfd of `timer`
  // when given (the hook's own deadline, which would otherwise end every stay it expires in). When it cannot (the fd
  // limit, or the loop is off: CROSSWAY_INLINE_LOOP=0), the loop stays off and nothing else changes.
  void Open(uv_loop_t* loop, int fd0, int fd1, DeadlineTimer* timer = nullptr);
  // Gives the epoll fd back. Idempotent; safe from inside Run (which then only resumes the watchers).
  void Close();
  // The watcher of role 0 or 1, or null to forget it (a watcher that leaves while suspended resumes itself).
  void Bind(int role, InlineWatcher* watcher);
  void Unbind(InlineWatcher* watcher);
  // Runs after `hook` handled a wake-up of one of its sockets without calling into JavaScript.
  void Run(ReadyHook* hook);

 private:
  uv_loop_t* loop_ = nullptr;
  int epfd_ = -1;
  InlineWatcher* watchers_[2] = {nullptr, nullptr};
  DeadlineTimer* timer_ = nullptr;
  bool running_ = false;
  // Entries still to skip, and the next back-off.
  uint32_t skip_ = 0;
  uint32_t backoff_ = 0;
};

}  // namespace crossway
