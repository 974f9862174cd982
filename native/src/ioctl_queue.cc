// An ordered syscall queue per DRM context: its ioctls, mmaps and final close run in call order on a thread of
// its own and settle promises on the event loop, so a host that is slow to answer never stalls the event loop.
//
// Why a thread per queue rather than libuv's pool: virtio_gpu sleeps in the calling thread until the host answers
// (the mmap of a host blob waits for RESOURCE_MAP_BLOB's response, any submission waits for virtqueue room, the
// first GET_CAPS for the capset), with no bound on some of them. On libuv's four shared threads, four such calls
// would also stop every other context and every fs call; one thread per context keeps a stuck context to itself
// and keeps each context's calls in order (a WAIT must see the EXECBUFFER submitted before it) without JS chaining.
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "common.h"

namespace crossway {
namespace {

struct State;

struct Job {
  enum Kind { kIoctl, kMmap, kClose, kStop };
  Job(Kind k, std::shared_ptr<State> s) : kind(k), state(std::move(s)) {}
  Kind kind;
  std::shared_ptr<State> state;
  unsigned long request = 0;
  uint8_t* arg = nullptr;
  size_t length = 0;
  int prot = 0;
  int flags = 0;
  off_t offset = 0;
  // Written by the queue's thread.
  int result = 0;
  int err = 0;
  void* addr = nullptr;
  // Touched on the main thread only: the promise, and the JS buffers the kernel reads and writes, kept alive
  // until the call has returned even if JS dropped them meanwhile.
  std::optional<Napi::Promise::Deferred> deferred;
  std::vector<Napi::Reference<Napi::Value>> keep;
};

void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Job, Settle>;

struct State {
  int fd;
  Tsfn tsfn;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Job*> jobs;  // guarded by mutex
  // Main thread only: calls not yet settled (the thread-safe function keeps the event loop alive while > 0).
  unsigned pending = 0;
  bool closed = false;
};

const char* SyscallName(const Job& j) {
  switch (j.kind) {
    case Job::kIoctl:
      return "ioctl";
    case Job::kMmap:
      return "mmap";
    default:
      return "close";
  }
}

void Execute(int fd, Job* j) {
  switch (j->kind) {
    case Job::kIoctl:
      for (;;) {
        int r = ioctl(fd, j->request, j->arg);
        if (r >= 0) {
          j->result = r;
          return;
        }
        if (errno == EINTR || errno == EAGAIN) continue;  // restarted as libdrm's drmIoctl does
        j->err = errno;
        return;
      }
    case Job::kMmap: {
      void* a = mmap(nullptr, j->length, j->prot, j->flags, fd, j->offset);
      if (a == MAP_FAILED) {
        j->err = errno;
      } else {
        j->addr = a;
      }
      return;
    }
    case Job::kClose:
      // Linux releases the fd even when close reports EINTR: never retried.
      if (close(fd) < 0) j->err = errno;
      return;
    case Job::kStop:
      return;
  }
}

void Run(std::shared_ptr<State> s) {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(s->mutex);
      s->wake.wait(lock, [&] { return !s->jobs.empty(); });
      job = s->jobs.front();
      s->jobs.pop_front();
    }
    Execute(s->fd, job);
    bool last = job->kind == Job::kClose || job->kind == Job::kStop;
    if (job->kind == Job::kStop) {
      delete job;  // nothing to settle: the queue was collected without close()
    } else if (s->tsfn.BlockingCall(job) != napi_ok) {
      // The environment is being torn down: nobody is left to settle the promise; do not leak a mapping.
      if (job->addr != nullptr) munmap(job->addr, job->length);
      job->keep.clear();
    }
    if (last) break;
  }
  s->tsfn.Release();
}

void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) {
    // Torn down with this call still queued: release what it made.
    if (job->addr != nullptr) munmap(job->addr, job->length);
    return;
  }
  Napi::HandleScope scope(env);
  if (job->err != 0) {
    job->deferred->Reject(ErrnoError(env, job->err, SyscallName(*job)).Value());
  } else if (job->kind == Job::kMmap) {
    job->deferred->Resolve(WrapMapping(env, job->addr, job->length));
  } else if (job->kind == Job::kIoctl) {
    job->deferred->Resolve(Napi::Number::New(env, job->result));
  } else {
    job->deferred->Resolve(env.Undefined());
  }
  job->keep.clear();
  if (--job->state->pending == 0) job->state->tsfn.Unref(env);
}

class IoctlQueue : public Napi::ObjectWrap<IoctlQueue> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoctlQueue",
                       {InstanceMethod("ioctl", &IoctlQueue::Ioctl), InstanceMethod("mmap", &IoctlQueue::Mmap),
                        InstanceMethod("close", &IoctlQueue::Close)});
  }

  // new IoctlQueue(fd): the queue owns fd from here on and closes it with close().
  explicit IoctlQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoctlQueue>(info) {
    Napi::Env env = info.Env();
    state_ = std::make_shared<State>();
    state_->fd = FdArg(info, 0);
    state_->tsfn = Tsfn::New(env, "crossway.IoctlQueue", 0, 1);
    state_->tsfn.Unref(env);  // idle: only pending calls keep the event loop alive
    std::thread(Run, state_).detach();
  }

  ~IoctlQueue() override {
    // Collected without close(): let the thread end after what is queued (the fd is not ours to close then).
    if (!state_->closed) Push(new Job(Job::kStop, state_));
  }

 private:
  std::shared_ptr<State> state_;

  void Push(Job* job) {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->jobs.push_back(job);
    }
    state_->wake.notify_one();
  }

  Napi::Value Submit(Napi::Env env, Job* job) {
    job->deferred.emplace(Napi::Promise::Deferred::New(env));
    Napi::Promise promise = job->deferred->Promise();
    if (state_->pending++ == 0) state_->tsfn.Ref(env);
    Push(job);
    return promise;
  }

  void CheckOpen(Napi::Env env) {
    if (state_->closed) throw Napi::Error::New(env, "IoctlQueue: closed");
  }

  // ioctl(request, arg, offsets, buffers): as ioctlPointers, on the queue's thread; resolves to the return value.
  Napi::Value Ioctl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    unsigned long request = static_cast<unsigned long>(IntArg(info, 0, "request"));
    uint8_t* arg = PatchPointers(info, 1);
    auto job = std::make_unique<Job>(Job::kIoctl, state_);
    job->request = request;
    job->arg = arg;
    job->keep.push_back(Napi::Persistent(info[1]));
    Napi::Array buffers = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < buffers.Length(); i++) job->keep.push_back(Napi::Persistent(buffers.Get(i)));
    return Submit(env, job.release());
  }

  // mmap(length, prot, flags, offset) of the queue's fd: resolves to an ArrayBuffer for munmap().
  Napi::Value Mmap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    auto job = std::make_unique<Job>(Job::kMmap, state_);
    job->length = static_cast<size_t>(IntArg(info, 0, "length"));
    job->prot = static_cast<int>(IntArg(info, 1, "prot"));
    job->flags = static_cast<int>(IntArg(info, 2, "flags"));
    job->offset = static_cast<off_t>(IntArg(info, 3, "offset"));
    return Submit(env, job.release());
  }

  // close(): closes the fd after every call queued before it; later calls throw.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    state_->closed = true;
    return Submit(env, new Job(Job::kClose, state_));
  }
};

}  // namespace

void InitIoctlQueue(Napi::Env env, Napi::Object exports) {
  exports.Set("IoctlQueue", IoctlQueue::Define(env));
}

}  // namespace crossway
