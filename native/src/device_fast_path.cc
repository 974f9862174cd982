// The emulated device's steady state in C: a context's SUBMITs to its host socket and the host's bytes to its ring.
//
// docs/native-data-plane.md, step 5. `crossway device` stands for the VMM, which is native code; this is what such
// a VMM does per message, run from the libuv watchers of a context's two sockets (the guest side's frame socket and
// the host socket) before JavaScript, as the guest's fast_path.cc does. JavaScript (device.ts and
// crossdomain-context.ts) owns every rule and publishes in one Float64Array (DeviceFastState in
// src/crossdomain/device-fast-state.ts) whether the context is in its steady state; this code acts only then, on a
// strict subset of the protocol (SUBMITs of SENDs without identifiers and POLLs; RECEIVEs without fds), does exactly
// what the JavaScript path would, and hands everything else to JavaScript, which takes it as if it had read it.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <utility>

#include "common.h"
#include "crossdomain_wire.h"
#include "fast_path.h"

namespace crossway {
namespace {

// Indexes of the shared state (DeviceFastState in src/crossdomain/device-fast-state.ts).
enum State {
  kEnabled = 0,
  kGuestIdle,      // the guest side's frame socket: nothing queued either way, not paused, not dispatching
  kHostOutIdle,    // the host socket's writer: nothing queued, and the context does not hold the guest back
  kContextReady,   // CONTEXT_INIT done, channel connected and its ring mapped, worker running, no QEMU-quirk debt
  kPollMask,       // CONTEXT_INIT's poll_rings_mask
  kArmed,          // the worker's sources are watched
  kPollCount,      // POLL fences waiting (the JavaScript queue's length)
  kPollHead,       // the one the host answers next
  kHdrSize,        // SEND/RECEIVE header size of the configured identifier array
  kRingBytes,      // usable bytes of the channel ring
  kSubmits,        // counters, for tests: SUBMIT frames handled here
  kSendBytes,      //   bytes of SEND data written to the host socket
  kReceives,       //   RECEIVEs written to the ring
  kFences,         //   FENCE frames sent
  kStateSize,
};

// What OnReady asks JavaScript to do (DeviceFastNotice in device-fast-path.ts).
enum Notice {
  kGuestBytes = 1,      // bytes (and fds) read from the guest side that this code does not handle: frames for JS
  kHostRemainder = 2,   // SEND data the host socket did not take: JavaScript queues it (and may hold the guest)
  kGuestRemainder = 3,  // FENCE bytes the guest side's socket did not take: JavaScript queues them
  kHostReceived = 4,    // bytes and fds a recvmsg of the host socket returned that this code does not write
  kHostError = 5,       // the host socket's recvmsg failed: the error native.recvmsg would have thrown
  kGuestError = 6,      // the guest side's recvmsg failed the same way (more fds than a message may carry)
  kArmSources = 7,      // a POLL is to be queued while the worker's sources are not watched: JavaScript starts them
};

}  // namespace

class DeviceFastPath : public Napi::ObjectWrap<DeviceFastPath>, public ReadyHook {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DeviceFastPath",
                       {InstanceMethod("setRing", &DeviceFastPath::SetRing),
                        InstanceMethod("detach", &DeviceFastPath::Detach)});
  }

  // new DeviceFastPath(guestFd, hostFd, state: Float64Array, notify)
  explicit DeviceFastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceFastPath>(info) {
    Napi::Env env = info.Env();
    guest_fd_ = FdArg(info, 0);
    host_fd_ = FdArg(info, 1);
    size_t n = 0;
    st_ = TypedArrayArg<double>(info, 2, napi_float64_array, "state", &n);
    if (n != kStateSize) throw Napi::RangeError::New(env, "state array of another layout (device-fast-state.ts)");
    st_ref_ = Napi::Persistent(info[2]);
    if (info.Length() < 4 || !info[3].IsFunction()) throw Napi::TypeError::New(env, "notify must be a function");
    notify_ = Napi::Persistent(info[3].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) == napi_ok) inline_.Open(loop, guest_fd_, host_fd_);
  }

  void Pin() override { Ref(); }
  void Unpin() override { Unref(); }

  bool OnReady(int role, int events) override {
    if (detached_ || st_[kEnabled] != 1 || st_[kContextReady] != 1 || ring_ == nullptr) return false;
    // Only plain readiness: a writable socket has queued output, which JavaScript flushes.
    if (events != UV_READABLE) return false;
    return role == kDeviceFastPathGuest ? OnGuestReadable() : OnHostReadable();
  }

 private:
  // setRing(ring: Uint8Array | null): the channel ring's mapping (JavaScript clears it before unmapping).
  void SetRing(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
      ring_ = nullptr;
      ring_size_ = 0;
      ring_ref_.Reset();
      return;
    }
    size_t n = 0;
    ring_ = TypedArrayArg<uint8_t>(info, 0, napi_uint8_array, "ring", &n);
    ring_size_ = n;
    ring_ref_ = Napi::Persistent(info[0]);
  }

  // detach(): OnReady declines from now on; the ring and the callback are forgotten (persistent references are GC
  // roots: the callback would keep its whole context alive).
  void Detach(const Napi::CallbackInfo& info) {
    (void)info;
    if (detached_) return;
    detached_ = true;
    st_[kEnabled] = 0;
    inline_.Close();
    ring_ = nullptr;
    ring_size_ = 0;
    ring_ref_.Reset();
    notify_.Reset();
  }

  // Calls notify(what, arg, fds): arg the bytes (copied) or, for the errors, the Error native.recvmsg would throw
  // (`err` an errno, or kFdsTruncated / kFdsTooMany).
  void Notify(Notice what, const uint8_t* bytes, size_t length, int err = 0, const int* fds = nullptr,
              int nfds = 0) {
    NoticeArg arg;
    if (what == kHostError || what == kGuestError) {
      if (err < 0)
        arg.fd_limit = err;
      else
        arg.recv_errno = err;
      nfds = 0;
    } else {
      arg.bytes = bytes;
      arg.length = length;
    }
    CallNotify(detached_, notify_, *this, what, arg, fds, nfds);
  }

  bool Steady() const {
    return !detached_ && st_[kEnabled] == 1 && st_[kContextReady] == 1 && st_[kGuestIdle] == 1 && ring_ != nullptr;
  }

  // One non-blocking send of all of `length`; what the socket did not take (all of it on an error, which the
  // JavaScript writer then meets itself and reports as it always did) goes to JavaScript with `remainder`.
  void SendAll(int fd, const uint8_t* bytes, size_t length, Notice remainder) {
    ssize_t n;
    do {
      n = send(fd, bytes, length, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    const size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
    if (sent < length) Notify(remainder, bytes + sent, length - sent);
  }

  // DeviceContext.signal: FENCE {fence} to the guest side.
  void SendFence(uint32_t fence) {
    uint8_t f[kFrameHeader + 4];
    Put32(f, kFrameFence);
    Put32(f + 4, 0);
    Put32(f + 8, 4);
    Put32(f + 12, 0);
    Put32(f + 16, fence);
    st_[kFences] += 1;
    SendAll(guest_fd_, f, sizeof(f), kGuestRemainder);
  }

  // What a SUBMIT frame asks, when this code may do all of it: its SENDs' data gathered in out_ (out_len_ bytes),
  // and its fence. False when JavaScript must take the frame (and everything after it).
  struct Submit {
    uint32_t fence;
    bool polled;  // the fence waits for a ring message (cd.poll); otherwise it is signalled at once
  };

  bool PlanSubmit(const uint8_t* payload, uint32_t length, Submit* plan) {
    const uint32_t flags = Get32(payload);
    const uint32_t ring_idx = Get32(payload + 4);
    const uint32_t fence = Get32(payload + 8);
    const uint8_t* cmds = payload + 12;
    const uint32_t end = length - 12;
    const uint32_t hdr = static_cast<uint32_t>(st_[kHdrSize]);
    out_len_ = 0;
    // crossdomain-context.ts command / codec.ts decodeCommand, for the two commands taken here; anything else, or
    // anything JavaScript would refuse, is JavaScript's to do and to word.
    for (uint32_t off = 0; off < end;) {
      if (end - off < kCmdHeader) return false;
      const uint8_t cmd = cmds[off];
      const uint32_t size = static_cast<uint32_t>(cmds[off + 2]) | (static_cast<uint32_t>(cmds[off + 3]) << 8);
      if (size < kCmdHeader || size > end - off) return false;
      if (cmd == kCmdSend) {
        if (size < hdr) return false;
        const uint32_t count = Get32(cmds + off + 8);
        const uint32_t data_size = Get32(cmds + off + 12);
        if (count != 0 || data_size > size - hdr) return false;
        if (data_size > sizeof(out_) - out_len_) return false;
        std::memcpy(out_ + out_len_, cmds + off + hdr, data_size);
        out_len_ += data_size;
      } else if (cmd != kCmdPoll) {
        return false;
      }
      off += size;
    }
    plan->fence = fence;
    plan->polled = false;
    if (fence == 0) return true;
    // device.ts submit: JavaScript's `>>>` takes the shift count modulo 32.
    const uint32_t mask = static_cast<uint32_t>(st_[kPollMask]);
    const bool polled_ring = (flags & kSubmitFlagRingIdx) != 0 && ((mask >> (ring_idx & 31)) & 1) == 1;
    if (!polled_ring || ring_idx == 0) return true;
    // cd.poll: queued behind others, it is JavaScript's; with the sources not watched, JavaScript starts them first
    // (TakeSubmits).
    if (st_[kPollCount] != 0) return false;
    plan->polled = true;
    return true;
  }

  // FramedSocket.readSome → DeviceContext.onFrame → submit, for the SUBMITs at the head of what one recvmsg read.
  bool OnGuestReadable() {
    if (!Steady() || st_[kHostOutIdle] != 1) return false;
    int fds[kMaxFds];
    int nfds = 0;
    // One largest SUBMIT of a client's bytes at a time, not 64 KiB: when the host's socket takes part of a SEND, the
    // rest of the read goes to JavaScript (its frames handled there once the host drains), which put a fifth of a
    // burst after a stalled compositor in JavaScript with 64 KiB reads (issue 15). A round trip's frame is one
    // read either way; a burst pays about one recvmsg per frame instead of one per four.
    const ssize_t n = RecvWithFds(guest_fd_, in_, kLargestDataSubmit, fds, &nfds);
    if (n == -EAGAIN) return true;
    // EOF and errors stay in the socket: JavaScript reads them again and ends the context as it always did.
    if (n <= 0) return false;
    if (nfds < 0) {
      Notify(kGuestError, nullptr, 0, nfds);
      return true;
    }
    size_t got = static_cast<size_t>(n);
    size_t p = 0;
    // Frames with fds (CREATE_BLOB) and everything after them are JavaScript's. A read that ends inside a SUBMIT
    // frame (a full read of a burst mostly does) has that frame's rest fetched, so the socket's JavaScript reader is
    // not left a partial frame that would make its next reads JavaScript's too. At most twice: the header, then the
    // payload.
    for (int completions = 0; nfds == 0; completions++) {
      if (!TakeSubmits(got, &p) || p == got || completions == 2) break;
      const size_t have = got - p;
      size_t want = kFrameHeader - have;
      if (have >= kFrameHeader) {
        const uint32_t payload = Get32(in_ + p + 8);
        // Whole but not taken, or not a SUBMIT this code could take once whole: JavaScript's, as it is.
        if (Get32(in_ + p) != kFrameSubmit || Get32(in_ + p + 12) != 0 || payload < 12 ||
            kFrameHeader + payload <= have || kFrameHeader + payload > sizeof(in_)) {
          break;
        }
        want = kFrameHeader + payload - have;
      }
      const ssize_t more = RecvRest(guest_fd_, in_, sizeof(in_), &p, &got, want, fds, &nfds);
      // Not there yet, or EOF and errors (which stay for JavaScript's next read): JavaScript takes the part.
      if (more <= 0) break;
      if (nfds < 0) {
        Notify(kGuestError, nullptr, 0, nfds);
        return true;
      }
    }
    if (p < got) Notify(kGuestBytes, in_ + p, got - p, 0, fds, nfds);
    return true;
  }

  // The SUBMITs at in_[*p, got) this code may do, done; *p moves past them. False when the context left its steady
  // state (JavaScript takes the rest).
  bool TakeSubmits(size_t got, size_t* at) {
    size_t p = *at;
    bool steady = true;
    while (got - p >= kFrameHeader && (steady = Steady() && st_[kHostOutIdle] == 1)) {
      const uint8_t* f = in_ + p;
      const uint32_t payload = Get32(f + 8);
      if (Get32(f) != kFrameSubmit || Get32(f + 12) != 0 || payload < 12 || payload > kMaxFramePayload ||
          payload > got - p - kFrameHeader) {
        break;
      }
      Submit plan;
      if (!PlanSubmit(f + kFrameHeader, payload, &plan)) break;
      if (plan.polled && st_[kArmed] != 1) {
        // cd.poll's arm(): the worker stops watching its sources when one fires with no POLL waiting (the host spoke
        // between two POLLs, as in a burst), and left to JavaScript, the next POLL's whole frame went there with it.
        Notify(kArmSources, nullptr, 0);
        if (!Steady() || st_[kHostOutIdle] != 1 || st_[kArmed] != 1 || st_[kPollCount] != 0) break;
      }
      p += kFrameHeader + payload;
      st_[kSubmits] += 1;
      // endSubmit: the SENDs' bytes in one write.
      if (out_len_ > 0) {
        st_[kSendBytes] += out_len_;
        SendAll(host_fd_, out_, out_len_, kHostRemainder);
      }
      if (plan.fence == 0) continue;
      if (plan.polled) {
        st_[kPollHead] = plan.fence;
        st_[kPollCount] = 1;
      } else {
        SendFence(plan.fence);
      }
    }
    *at = p;
    return steady;
  }

  // The worker's ready → receive → writeRing → signal, for a RECEIVE without fds answering the one POLL waiting.
  bool OnHostReadable() {
    if (!Steady() || st_[kPollCount] != 1) return false;
    const uint32_t hdr = static_cast<uint32_t>(st_[kHdrSize]);
    int fds[kMaxFds];
    int nfds = 0;
    const ssize_t n = RecvWithFds(host_fd_, rx_ + hdr, kReceiveBuffer - hdr, fds, &nfds);
    if (n == -EAGAIN) return true;
    if (n < 0) {
      Notify(kHostError, nullptr, 0, static_cast<int>(-n));
      return true;
    }
    if (nfds < 0) {
      Notify(kHostError, nullptr, 0, nfds);
      return true;
    }
    // EOF stays (JavaScript reads it again and writes the zero-length RECEIVE, or not, as its host plays it).
    if (n == 0 && nfds == 0) return false;
    const uint32_t len = hdr + static_cast<uint32_t>(n);
    if (nfds > 0 || len > st_[kRingBytes] || len > ring_size_) {
      // Fds become items, and a message the ring cannot hold halts the worker: JavaScript's, with what was read.
      Notify(kHostReceived, rx_ + hdr, static_cast<size_t>(n), 0, fds, nfds);
      return true;
    }
    // encodeSendReceive(RECEIVE, no identifiers, cmd_size 0), straight into the mapped ring.
    uint8_t* r = ring_;
    r[0] = kCmdReceive;
    r[1] = 0;
    r[2] = 0;
    r[3] = 0;
    Put32(r + 4, 0);
    Put32(r + 8, 0);
    Put32(r + 12, static_cast<uint32_t>(n));
    std::memset(r + 16, 0, hdr - 16);
    std::memcpy(r + hdr, rx_ + hdr, static_cast<size_t>(n));
    st_[kReceives] += 1;
    const uint32_t fence = static_cast<uint32_t>(st_[kPollHead]);
    st_[kPollCount] = 0;
    SendFence(fence);
    return true;
  }

  bool detached_ = false;
  int guest_fd_ = -1;
  int host_fd_ = -1;
  double* st_ = nullptr;
  uint8_t* ring_ = nullptr;
  size_t ring_size_ = 0;
  Napi::Reference<Napi::Value> st_ref_, ring_ref_;
  Napi::FunctionReference notify_;
  size_t out_len_ = 0;
  // What one recvmsg of the guest side takes (kLargestDataSubmit) with room for the rest of a larger frame, the SEND
  // data of one SUBMIT (a command buffer is at most 64 KiB), and one RECEIVE's buffer.
  alignas(8) uint8_t in_[64 * 1024];
  alignas(8) uint8_t out_[64 * 1024];
  alignas(8) uint8_t rx_[kReceiveBuffer];
};

namespace {
Napi::FunctionReference* device_fast_path_ctor = nullptr;
}

ReadyHook* UnwrapDeviceFastPath(Napi::Value value) {
  if (device_fast_path_ctor == nullptr || !value.IsObject()) return nullptr;
  Napi::Object o = value.As<Napi::Object>();
  if (!o.InstanceOf(device_fast_path_ctor->Value())) return nullptr;
  return DeviceFastPath::Unwrap(o);
}

void InitDeviceFastPath(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DeviceFastPath::Define(env);
  // The layouts this file was built with, so a test can hold them against device-fast-state.ts.
  Napi::Object state = Napi::Object::New(env);
  const std::pair<const char*, int> fields[] = {
      {"ENABLED", kEnabled},     {"GUEST_IDLE", kGuestIdle}, {"HOST_OUT_IDLE", kHostOutIdle},
      {"CONTEXT_READY", kContextReady}, {"POLL_MASK", kPollMask}, {"ARMED", kArmed},
      {"POLL_COUNT", kPollCount}, {"POLL_HEAD", kPollHead}, {"HDR_SIZE", kHdrSize},
      {"RING_BYTES", kRingBytes}, {"SUBMITS", kSubmits},   {"SEND_BYTES", kSendBytes},
      {"RECEIVES", kReceives},   {"FENCES", kFences},       {"SIZE", kStateSize},
  };
  for (const auto& f : fields) state.Set(f.first, Napi::Number::New(env, f.second));
  Napi::Object notices = Napi::Object::New(env);
  const std::pair<const char*, int> codes[] = {
      {"GUEST_BYTES", kGuestBytes},   {"HOST_REMAINDER", kHostRemainder}, {"GUEST_REMAINDER", kGuestRemainder},
      {"HOST_RECEIVED", kHostReceived}, {"HOST_ERROR", kHostError},       {"GUEST_ERROR", kGuestError},
      {"ARM_SOURCES", kArmSources},
  };
  for (const auto& c : codes) notices.Set(c.first, Napi::Number::New(env, c.second));
  ctor.Set("stateLayout", state);
  ctor.Set("notices", notices);
  device_fast_path_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("DeviceFastPath", ctor);
}

}  // namespace crossway
