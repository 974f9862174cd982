// Readiness watchers on any fd for the native addon, built on libuv's uv_poll so the event loop never blocks.
#include <uv.h>

#include "common.h"
#include "fast_path.h"

namespace crossway {
namespace {

class Watcher : public Napi::ObjectWrap<Watcher>, public InlineWatcher {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watcher",
                       {InstanceMethod("start", &Watcher::Start), InstanceMethod("stop", &Watcher::Stop),
                        InstanceMethod("close", &Watcher::Close), InstanceMethod("ref", &Watcher::Ref),
                        InstanceMethod("unref", &Watcher::Unref),
                        InstanceMethod("setFastPath", &Watcher::SetFastPath)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    int fd = FdArg(info, 0);
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no libuv loop");
    handle_ = new uv_poll_t();
    int r = uv_poll_init(loop, handle_, fd);
    if (r < 0) {
      delete handle_;
      handle_ = nullptr;
      ThrowErrno(env, -r, "uv_poll_init");
    }
    handle_->data = this;
    // The JS object must outlive an active handle: a reference is held while the handle is open.
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
  }

  ~Watcher() override {
    // If the JS object is collected with the handle still open (only possible after close()), nothing is left.
  }

 private:
  void Start(const Napi::CallbackInfo& info) {
    if (handle_ == nullptr) throw Napi::Error::New(info.Env(), "watcher is closed");
    int events = static_cast<int>(IntArg(info, 0, "events"));
    // Out of libuv's epoll for a fast path's inline loop: the mask is applied when the loop gives the handle back.
    if (suspended_) {
      events_ = events;
      return;
    }
    // uv_poll_start always stops first, and on Linux that deletes the fd from epoll (an EPOLL_CTL_DEL now and an
    // ADD on the next tick): re-arming an unchanged mask per message would cost two syscalls each time.
    if (events == events_) return;
    if (events == 0) {
      uv_poll_stop(handle_);
      events_ = 0;
      return;
    }
    int r = uv_poll_start(handle_, events, OnPoll);
    if (r < 0) ThrowErrno(info.Env(), -r, "uv_poll_start");
    events_ = events;
  }

  void Stop(const Napi::CallbackInfo& info) {
    (void)info;
    if (suspended_) {
      events_ = 0;
      return;
    }
    if (handle_ == nullptr || events_ == 0) return;
    uv_poll_stop(handle_);
    events_ = 0;
  }

  void Close(const Napi::CallbackInfo& info) {
    (void)info;
    if (handle_ == nullptr) return;
    LeaveFastPath();
    uv_poll_stop(handle_);
    events_ = 0;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), OnClosed);
    handle_ = nullptr;
  }

  // setFastPath(hook | null, role): a FastPath or DeviceFastPath (fast_path.h) sees each wake-up before the callback, and the
  // callback runs only when it declines. Held by reference while set.
  void SetFastPath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
      LeaveFastPath();
      return;
    }
    ReadyHook* fast = UnwrapReadyHook(info[0]);
    if (fast == nullptr) throw Napi::TypeError::New(env, "not a FastPath or DeviceFastPath");
    const int64_t role = IntArg(info, 1, "role");
    if (role != 0 && role != 1) throw Napi::RangeError::New(env, "role must be 0 or 1 (which of its sockets)");
    LeaveFastPath();
    fast_ = fast;
    fast_role_ = static_cast<int>(role);
    fast_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    if (handle_ != nullptr) fast->Inline().Bind(fast_role_, this);
  }

  // Forgets the fast path, back in libuv's epoll first if its inline loop had this watcher out of it.
  void LeaveFastPath() {
    if (fast_ != nullptr) fast_->Inline().Unbind(this);
    ResumeAfterInline();
    fast_ = nullptr;
    fast_ref_.Reset();
  }

  bool InlineEligible() const override { return handle_ != nullptr && !suspended_ && events_ == UV_READABLE; }

  bool SuspendForInline() override {
    if (!InlineEligible()) return false;
    uv_poll_stop(handle_);
    suspended_ = true;
    return true;
  }

  void ResumeAfterInline() override {
    if (!suspended_) return;
    suspended_ = false;
    // uv_poll_start on Linux only queues the fd for libuv's next epoll_ctl; it does not fail for an open handle.
    if (handle_ != nullptr && events_ != 0) uv_poll_start(handle_, events_, OnPoll);
  }

  void Ref(const Napi::CallbackInfo& info) {
    (void)info;
    if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
  }

  void Unref(const Napi::CallbackInfo& info) {
    (void)info;
    if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  }

  static void OnClosed(uv_handle_t* h) {
    Watcher* self = static_cast<Watcher*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    if (self == nullptr) return;
    self->self_.Reset();
    self->fast_ = nullptr;
    self->fast_ref_.Reset();
    // The callback is a strong persistent reference (a GC root). It usually closes over the object that owns this
    // watcher, so keeping it after close would keep the whole owner (sessions, channels and their buffers) alive
    // forever: the guest proxy leaked ~240 KiB per client this way. No callback runs after close.
    self->callback_.Reset();
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    Watcher* self = static_cast<Watcher*>(h->data);
    // A fast path first, before any JavaScript handle is made: a wake-up it handles costs no call into V8.
    if (status >= 0 && self->fast_ != nullptr) {
      ReadyHook* fast = self->fast_;
      const uint64_t entries = JsEntries();
      if (fast->OnReady(self->fast_role_, events)) {
        // Handled without JavaScript: the connection may keep the thread for its next wake-ups (inline_loop.h).
        // After a notice, JavaScript may have changed what the loop relies on, so libuv takes its turn first.
        if (JsEntries() == entries) fast->Inline().Run(fast);
        return;
      }
    }
    Napi::Env env = self->callback_.Env();
    Napi::HandleScope scope(env);
    // libuv stops a poll handle itself when it reports an error (uv__poll_io on POLLERR): forget the mask so the
    // next start() really re-arms it.
    if (status < 0) self->events_ = 0;
    // MakeCallback runs microtasks and reports exceptions through Node's usual uncaught-exception path.
    try {
      self->callback_.MakeCallback(self->self_.Value(),
                                   {Napi::Number::New(env, status), Napi::Number::New(env, events)});
    } catch (const Napi::Error& e) {
      // A C++ exception must not unwind into libuv: hand the JS error to Node's uncaught-exception path.
      napi_fatal_exception(env, e.Value());
    }
  }

  uv_poll_t* handle_ = nullptr;
  /** The mask the handle is started with (0 = stopped), so an unchanged start is a no-op. */
  int events_ = 0;
  Napi::FunctionReference callback_;
  Napi::ObjectReference self_;
  ReadyHook* fast_ = nullptr;
  int fast_role_ = 0;
  // Stopped for the fast path's inline loop, which starts it again with events_ when it ends.
  bool suspended_ = false;
  Napi::ObjectReference fast_ref_;
};

Napi::Value CreateWatcher(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::FunctionReference* ctor = env.GetInstanceData<Napi::FunctionReference>();
  return ctor->New({info[0], info[1]});
}

}  // namespace

void InitWatcher(Napi::Env env, Napi::Object exports) {
  Napi::FunctionReference* ctor = new Napi::FunctionReference(Napi::Persistent(Watcher::Define(env)));
  env.SetInstanceData(ctor);
  exports.Set("createWatcher", Napi::Function::New(env, CreateWatcher));
}

}  // namespace crossway
