// A guest connection's steady state in C: Wayland bytes to and from the emulated device, without entering JavaScript.
//
// docs/native-data-plane.md, step 3, on Node's own loop rather than a thread of its own: the two sockets' libuv
// watchers call OnReady before JavaScript, so JavaScript and this code never run at the same time and share their
// state without locks. JavaScript stays the owner of every rule. It publishes, in one Float64Array (FastState in
// src/crossdomain/fast-state.ts), whether each part of the connection is idle and the channel's POLL state; this
// code acts only when everything it would touch is idle, applies exactly what the JavaScript path would (the scan's
// object-map effects, the SEND and riding POLL of channel.ts, the fence bookkeeping of emulated-virtgpu.ts), and
// hands whatever it read and does not handle to JavaScript, which takes it as if it had read it.
#include "fast_path.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <utility>

#include "common.h"
#include "crossdomain_wire.h"
#include "deadline_timer.h"
#include "wayland_scan.h"

namespace crossway {
namespace {

// Indexes of the shared state (FastState in src/crossdomain/fast-state.ts).
enum State {
  kEnabled = 0,
  kClientIdle,
  kEventsIdle,
  kSocketIdle,
  kChannelOpen,
  kPollOutstanding,
  kPollRiding,
  kChannelPaused,
  kChannelDispatching,
  kBacklogged,
  kAwaitingSince,
  kAnswerTimerArmed,
  kRideSince,
  kRideTimerArmed,
  kNextFence,
  kPolledCount,
  kFencesWithBos,
  kHdrSize,
  kCheckEventSince,
  kMaxMessageSize,
  kClockOffset,
  kChannelRing,
  kRequestRuns,
  kRequestMessages,
  kEventRuns,
  kEventMessages,
  kDeleteIdWatched,
  kClientRemainders,
  kRideMs,
  kStateSize,
};

// What OnReady asks JavaScript to do (FastNotice in fast-path.ts), after its own work.
enum Notice {
  kArmAnswerTimer = 1,
  kRideExpired = 2,  // the native ride timer expired while the device socket was busy: JavaScript sends the POLL
  kClientRemainder = 3,  // events the client's socket did not take: JavaScript queues them (and may pause)
  kDeviceRemainder = 4,  // a SUBMIT the device's socket did not take whole: JavaScript queues the rest
  kFault = 5,            // something this code cannot explain: JavaScript ends the connection with the message
  kClientBytes = 6,      // bytes (and fds) read from the client that the scan did not take: JavaScript's to handle
  kDeviceBytes = 7,      // bytes (and fds) read from the device that are not a FENCE this code handles
  kClientError = 8,      // the client's read failed: the error native.recvmsg would have thrown (too many fds)
};

constexpr uint32_t kDisplayId = 1;
// The client's bytes one read takes: what kSendsPerSubmit SENDs carry (see OnClientReadable).
constexpr size_t kReadSize = kSendsPerSubmit * kMaxSendRecv;
// channel.ts RIDE_SLACK_MS: how early a riding POLL may go alone rather than wait for another timer.
constexpr double kRideSlackMs = 0.25;

}  // namespace

class FastPath : public Napi::ObjectWrap<FastPath>, public ReadyHook {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FastPath",
                       {InstanceMethod("setObjects", &FastPath::SetObjects),
                        InstanceMethod("setRing", &FastPath::SetRing),
                        InstanceMethod("setPolledFences", &FastPath::SetPolledFences),
                        InstanceMethod("detach", &FastPath::Detach)});
  }

  // new FastPath(clientFd, deviceFd, state: Float64Array, entries: Int32Array, spans: Int32Array, notify)
  explicit FastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPath>(info) {
    Napi::Env env = info.Env();
    client_fd_ = FdArg(info, 0);
    device_fd_ = FdArg(info, 1);
    st_ = Typed<double>(info, 2, napi_float64_array, "state", &st_len_, &st_ref_);
    if (st_len_ != kStateSize) throw Napi::RangeError::New(env, "state array of another layout (fast-state.ts)");
    tables_ = ScanTablesArg(info, 3);
    entries_ref_ = Napi::Persistent(info[3]);
    spans_ref_ = Napi::Persistent(info[4]);
    if (info.Length() < 6 || !info[5].IsFunction()) throw Napi::TypeError::New(env, "notify must be a function");
    notify_ = Napi::Persistent(info[5].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
      throw Napi::Error::New(env, "no libuv loop for the ride timer");
    // As channel.ts's own timer: never what keeps the process alive (DeadlineTimer is unref'd).
    ride_timer_.Init(loop, OnRideTimer, this);
    inline_.Open(loop, client_fd_, device_fd_, &ride_timer_);
  }

  ~FastPath() override { CloseRideTimer(); }

  void Pin() override { Ref(); }
  void Unpin() override { Unref(); }

  bool OnReady(int role, int events) override {
    if (detached_ || st_[kEnabled] != 1 || objects_.capacity == 0) return false;
    // Only plain readiness: a writable socket has queued output, which JavaScript flushes.
    if (events != UV_READABLE) return false;
    return role == kFastPathClient ? OnClientReadable() : OnDeviceReadable();
  }

 private:
  // TypedArrayArg, with the array held (a persistent reference), so its memory stays while this object may read it.
  template <typename T>
  static T* Typed(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* what, size_t* length,
                  Napi::Reference<Napi::Value>* ref) {
    T* data = TypedArrayArg<T>(info, i, type, what, length);
    *ref = Napi::Persistent(info[i]);
    return data;
  }

  // setObjects(states, slots, versions, pass, meta): ObjectMap's client arrays, again after each growth.
  void SetObjects(const Napi::CallbackInfo& info) {
    objects_ = ClientObjectsArg(info, 0);
    for (size_t i = 0; i < 5; i++) obj_refs_[i] = Napi::Persistent(info[i]);
  }

  // setRing(ring: Uint8Array): the channel ring's mapping (the channel stops this object before unmapping it).
  void SetRing(const Napi::CallbackInfo& info) {
    size_t n = 0;
    ring_ = Typed<uint8_t>(info, 0, napi_uint8_array, "ring", &n, &ring_ref_);
    ring_size_ = n;
  }

  // setPolledFences(fences: Float64Array): the backend's polled-fence array, again after each growth.
  void SetPolledFences(const Napi::CallbackInfo& info) {
    size_t n = 0;
    polled_ = Typed<double>(info, 0, napi_float64_array, "fences", &n, &polled_ref_);
    polled_cap_ = n;
  }

  // detach(): forgets every array and the notify callback; OnReady declines from now on. The references are
  // persistent (GC roots): kept, the callback would keep its whole session alive after the connection ended.
  void Detach(const Napi::CallbackInfo& info) {
    (void)info;
    if (detached_) return;
    detached_ = true;
    // The state array stays: code after a notice that ended the connection reads kEnabled from it (now 0). It is
    // the backend's own small array, with no reference back to the session.
    st_[kEnabled] = 0;
    CloseRideTimer();
    inline_.Close();
    objects_ = ClientObjects{};
    ring_ = nullptr;
    ring_size_ = 0;
    polled_ = nullptr;
    polled_cap_ = 0;
    for (auto& r : obj_refs_) r.Reset();
    ring_ref_.Reset();
    polled_ref_.Reset();
    entries_ref_.Reset();
    spans_ref_.Reset();
    notify_.Reset();
  }

  double NowMs() const { return static_cast<double>(uv_hrtime()) / 1e6 + st_[kClockOffset]; }

  bool CanPoll() const {
    return st_[kChannelOpen] == 1 && st_[kPollOutstanding] == 0 && st_[kChannelPaused] == 0 &&
           st_[kBacklogged] == 0 && st_[kChannelDispatching] == 0;
  }

  // Calls notify(what, arg, fds) with arg the bytes (copied), the message, or for kClientError the error of `nfds`.
  void Notify(Notice what, const uint8_t* bytes, size_t length, const char* message, const int* fds = nullptr,
              int nfds = 0) {
    NoticeArg arg;
    if (what == kClientError) {
      arg.fd_limit = nfds;
      nfds = 0;
    } else {
      arg = NoticeArg{bytes, length, message};
    }
    CallNotify(detached_, notify_, *this, what, arg, fds, nfds);
  }

  // EmulatedVirtGpu.execbuffer for a command buffer of `cmd_len` bytes already at submit_ + kFrameHeader + 12: the
  // fence when it goes on the polled channel ring, the SUBMIT frame, one sendmsg. What the socket does not take
  // goes to JavaScript's queue (kDeviceRemainder), which also sees a failed socket and ends the channel.
  void Submit(uint32_t cmd_len, bool on_channel_ring) {
    uint32_t fence = 0;
    if (on_channel_ring) {
      const size_t count = static_cast<size_t>(st_[kPolledCount]);
      if (polled_ == nullptr || count >= polled_cap_) {
        // JavaScript grows the array; it cannot here. Not reachable with one POLL outstanding (8 entries).
        Notify(kFault, nullptr, 0, "fast path: no room for a polled fence");
        return;
      }
      fence = static_cast<uint32_t>(st_[kNextFence]);
      st_[kNextFence] = fence + 1;
      polled_[count] = fence;
      st_[kPolledCount] = static_cast<double>(count + 1);
    }
    uint8_t* f = submit_;
    const uint32_t payload = 12 + cmd_len;
    Put32(f, kFrameSubmit);
    Put32(f + 4, 0);
    Put32(f + 8, payload);
    Put32(f + 12, 0);
    Put32(f + 16, on_channel_ring ? kSubmitFlagRingIdx : 0);
    Put32(f + 20, on_channel_ring ? static_cast<uint32_t>(st_[kChannelRing]) : 0);
    Put32(f + 24, fence);
    const size_t total = kFrameHeader + payload;
    ssize_t n;
    do {
      n = send(device_fd_, f, total, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    // On an error nothing was sent: JavaScript's own write of the whole frame sees it and ends the channel.
    const size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
    if (sent < total) Notify(kDeviceRemainder, f + sent, total - sent, nullptr);
  }

  // ClientSession.readClient → pumpRequests → flushHost → channel.send, for the run of requests at the head of the
  // client's socket that the scan admits.
  bool OnClientReadable() {
    if (st_[kClientIdle] != 1 || st_[kSocketIdle] != 1 || st_[kChannelOpen] != 1) return false;
    // What one SUBMIT frame carries (four SENDs), not JavaScript's 32 KiB: when the device's socket takes part of a
    // frame, the rest of a longer read went to JavaScript (every byte of it decoded there, and the device then got
    // it as JavaScript's frames too), which kept a burst's CPU per message at about 0.19 us where this read size
    // makes it about 0.11 (issue 15, README fourteenth round). What the scan leaves still goes to JavaScript at
    // once. The price: a client that writes far ahead leaves more in the socket at any moment, and a session that
    // ends then (a protocol error) resets its connection with those bytes unread, as it did past 32 KiB.
    uint8_t* data = in_;
    int fds[kMaxFds];
    int nfds = 0;
    const ssize_t n = RecvWithFds(client_fd_, data, kReadSize, fds, &nfds);
    if (n == -EAGAIN) return true;
    // Errors and EOF: JavaScript reads them again (both stay), and words them as it always did.
    if (n <= 0) return false;
    if (nfds < 0) {
      Notify(kClientError, nullptr, 0, nullptr, nullptr, nfds);
      return true;
    }
    size_t got = static_cast<size_t>(n);
    // Requests with fds are JavaScript's (their fds become items or are refused).
    if (nfds > 0) {
      Notify(kClientBytes, data, got, nullptr, fds, nfds);
      return true;
    }
    size_t p = 0;
    // A read that ends inside a message (a full read of a burst mostly does) has that message's rest fetched, so
    // JavaScript's framer is not left a partial message that would make the next read JavaScript's too. At most
    // twice: the header's first 8 bytes, then the body.
    for (int completions = 0;; completions++) {
      const Carried c = CarryRuns(data, &p, got);
      if (c == kConnectionEnded) return true;
      if (c == kStateChanged || p == got || completions == 2) break;
      const size_t have = got - p;
      size_t want = 8 - have;
      if (have >= 8) {
        const uint32_t size = Get32(data + p + 4) >> 16;
        // Whole but not taken (a hooked or invalid message): JavaScript's, as it is.
        if (size <= have || size % 4 != 0 || size > st_[kMaxMessageSize]) break;
        want = size - have;
      }
      const ssize_t more = RecvRest(client_fd_, data, sizeof(in_), &p, &got, want, fds, &nfds);
      // Not there yet, or EOF and errors (which stay for JavaScript's next read): JavaScript takes the part.
      if (more <= 0) break;
      if (nfds < 0) {
        Notify(kClientError, nullptr, 0, nullptr, nullptr, nfds);
        return true;
      }
      if (nfds > 0) break;
    }
    // What follows the runs is JavaScript's, in order after these SENDs.
    if (p < got && st_[kEnabled] == 1) Notify(kClientBytes, data + p, got - p, nullptr, fds, nfds);
    return true;
  }

  enum Carried { kAllTaken, kStateChanged, kConnectionEnded };

  // The requests of data[*at, got) the scan takes, in SENDs of at most 3744 bytes, kSendsPerSubmit to a SUBMIT
  // frame, as channel.send batches them; *at moves past the ones sent. Carrying only the first SEND of a read and handing
  // the rest to JavaScript put most of a burst there: a client that writes faster than the guest wakes leaves up to
  // 32 KiB per read (issue 15, burst CPU per message). kStateChanged: a frame went to JavaScript's queue (or the
  // channel closed), so what follows is JavaScript's too.
  Carried CarryRuns(const uint8_t* data, size_t* at, size_t got) {
    size_t p = *at;
    while (p < got) {
      uint8_t* const cmds = submit_ + kFrameHeader + 12;
      uint32_t cmd_len = 0;
      uint32_t sends = 0;
      bool to_display = false;
      while (sends < kSendsPerSubmit && p < got) {
        const size_t scan_end = got - p < kMaxSendRecv ? got : p + kMaxSendRecv;
        const ScanRun run = ScanWaylandRun(data, p, scan_end, 0, true, static_cast<uint32_t>(st_[kMaxMessageSize]),
                                           UINT32_MAX, tables_, objects_, false);
        if (run.messages == 0) break;
        st_[kRequestRuns] += 1;
        st_[kRequestMessages] += run.messages;
        // channel.expectAnswer for wl_display's requests (forwardRaw): a host silent after them is stuck or gone.
        for (size_t q = p; !to_display && q < p + run.bytes; q += Get32(data + q + 4) >> 16) {
          to_display = Get32(data + q) == kDisplayId;
        }
        AppendSend(cmds + cmd_len, data + p, run.bytes);
        cmd_len += hdr_size() + run.bytes;
        p += run.bytes;
        sends++;
      }
      if (sends == 0) return kAllTaken;
      *at = p;
      if (to_display && st_[kAwaitingSince] == 0) {
        st_[kAwaitingSince] = NowMs();
        if (st_[kAnswerTimerArmed] == 0) {
          Notify(kArmAnswerTimer, nullptr, 0, nullptr);
          if (st_[kEnabled] != 1 || st_[kChannelOpen] != 1) return kConnectionEnded;
        }
      }
      // The riding POLL behind this frame's SENDs when one waits (channel.send): rutabaga runs the commands in
      // order and then makes the fence, and the POLL only asks for it.
      const bool ride = st_[kPollRiding] == 1 && CanPoll();
      if (ride) {
        uint8_t* poll = cmds + cmd_len;
        std::memset(poll, 0, kPollSize);
        poll[0] = kCmdPoll;
        poll[2] = kPollSize;
        cmd_len += kPollSize;
        st_[kPollRiding] = 0;
        st_[kPollOutstanding] = 1;
      }
      Submit(cmd_len, ride);
      if (st_[kEnabled] != 1 || st_[kSocketIdle] != 1 || st_[kChannelOpen] != 1 || st_[kClientIdle] != 1) {
        return kStateChanged;
      }
    }
    return kAllTaken;
  }

  // A SEND without identifiers carrying `length` bytes of `data`, at `cmd` (channel.ts encodeSendReceive, "exact").
  void AppendSend(uint8_t* cmd, const uint8_t* data, uint32_t length) const {
    const uint32_t hdr = hdr_size();
    const uint32_t size = hdr + length;
    cmd[0] = kCmdSend;
    cmd[1] = 0;
    cmd[2] = size & 0xff;
    cmd[3] = (size >> 8) & 0xff;
    Put32(cmd + 4, 0);
    Put32(cmd + 8, 0);
    Put32(cmd + 12, length);
    std::memset(cmd + 16, 0, hdr - 16);
    std::memcpy(cmd + hdr, data, length);
  }

  uint32_t hdr_size() const { return static_cast<uint32_t>(st_[kHdrSize]); }

  // EmulatedVirtGpu's FENCE → channel.onFenceEvent → consumeRingMessage → ClientSession.onHostData, for a FENCE of
  // the channel's POLL whose RECEIVE the scan admits whole.
  bool OnDeviceReadable() {
    if (st_[kSocketIdle] != 1 || st_[kEventsIdle] != 1 || st_[kChannelOpen] != 1 || st_[kPollOutstanding] != 1 ||
        st_[kChannelDispatching] != 0 || st_[kChannelPaused] != 0 || st_[kFencesWithBos] != 0 || ring_ == nullptr ||
        polled_ == nullptr) {
      return false;
    }
    uint8_t frame[kFrameHeader + 4];
    int fds[kMaxFds];
    int nfds = 0;
    const ssize_t n = RecvWithFds(device_fd_, frame, sizeof(frame), fds, &nfds);
    if (n == -EAGAIN) return true;
    if (n <= 0) return false;
    if (nfds < 0) {
      Notify(kFault, nullptr, 0, "fast path: the device sent more fds than one message may carry");
      return true;
    }
    // Anything but a whole FENCE of the channel's POLL, whose RECEIVE the scan takes whole, goes to the device
    // socket's own reader as if it had read it.
    const size_t got = static_cast<size_t>(n);
    const size_t at = got == sizeof(frame) && nfds == 0 ? PolledFenceAt(frame) : SIZE_MAX;
    const uint32_t hdr = hdr_size();
    const uint8_t* events = ring_ + hdr;
    uint32_t length = 0;
    ScanRun run{0, 0};
    const uint32_t next_before = static_cast<uint32_t>(objects_.meta[kMetaNext]);
    undo_count_ = 0;
    bool take = at != SIZE_MAX && ring_size_ >= hdr && ring_[0] == kCmdReceive && Get32(ring_ + 8) == 0;
    if (take) {
      length = Get32(ring_ + 12);
      take = length > 0 && length <= ring_size_ - hdr && SnapshotFor(events, length);
    }
    if (take) {
      // Scanned with the object table's changes recorded: a RECEIVE the scan does not take whole is JavaScript's,
      // and must find the table as it was.
      run = ScanWaylandRun(events, 0, length, 1, st_[kCheckEventSince] == 1, static_cast<uint32_t>(st_[kMaxMessageSize]),
                           UINT32_MAX, tables_, objects_, st_[kDeleteIdWatched] != 0);
      if (run.bytes != length) {
        Restore(objects_, next_before);
        take = false;
      }
    }
    if (!take) {
      Notify(kDeviceBytes, frame, got, nullptr, fds, nfds);
      return true;
    }
    const size_t count = static_cast<size_t>(st_[kPolledCount]);
    polled_[at] = polled_[count - 1];
    st_[kPolledCount] = static_cast<double>(count - 1);
    st_[kEventRuns] += 1;
    st_[kEventMessages] += run.messages;
    // consumeRingMessage: the POLL is answered, and so is any request waiting for the host.
    st_[kPollOutstanding] = 0;
    const bool answered = st_[kAwaitingSince] != 0;
    st_[kAwaitingSince] = 0;
    // deliver → onHostData: the events to the client, in one write.
    st_[kChannelDispatching] = 1;
    ssize_t w;
    do {
      w = send(client_fd_, events, length, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) w = 0;  // JavaScript's own write will see the error
    const size_t written = w < 0 ? 0 : static_cast<size_t>(w);
    if (written < length) {
      st_[kClientRemainders] += 1;
      Notify(kClientRemainder, events + written, length - written, nullptr);
    }
    // dispatched: the ring is free again; pollAfterReceive.
    st_[kChannelDispatching] = 0;
    if (st_[kEnabled] != 1 || st_[kChannelOpen] != 1 || ring_ == nullptr) return true;
    ring_[0] = 0;
    const bool drained = length < kReceiveBuffer - hdr;
    if (!answered || !drained || !CanPoll()) {
      PollNow();
      return true;
    }
    st_[kPollRiding] = 1;
    st_[kRideSince] = NowMs();
    // channel.ts armRideTimer, on a timer of this object's own (deadline_timer.h): a JavaScript timer about once per
    // millisecond of round trips cost two entries into JavaScript (arming it and running it) each time.
    if (!ride_timer_.Armed() && st_[kRideTimerArmed] == 0) ArmRideTimer(st_[kRideMs]);
    return true;
  }

  void ArmRideTimer(double ms) {
    ride_armed_for_ = st_[kRideSince];
    ride_timer_.Start(ms);
  }

  static void OnRideTimer(void* data) { static_cast<FastPath*>(data)->RideTimerExpired(); }

  // channel.ts armRideTimer's callback: the POLL goes alone unless the ride ended, or a later ride has time left.
  void RideTimerExpired() {
    if (detached_ || st_[kEnabled] != 1 || st_[kPollRiding] != 1 || st_[kChannelOpen] != 1) return;
    const double left = st_[kRideMs] - (NowMs() - st_[kRideSince]);
    if (st_[kRideSince] != ride_armed_for_ && left > kRideSlackMs) {
      ArmRideTimer(left);
      return;
    }
    // This code writes the device socket only when nothing is queued on it; otherwise JavaScript's poll() does.
    if (st_[kSocketIdle] == 1)
      PollNow();
    else
      Notify(kRideExpired, nullptr, 0, nullptr);
  }

  void CloseRideTimer() {
    ride_timer_.Close();
  }


  // Where the FENCE frame's fence sits in the polled-fence array, or SIZE_MAX when it is not a polled fence's FENCE.
  size_t PolledFenceAt(const uint8_t* frame) const {
    if (Get32(frame) != kFrameFence || Get32(frame + 8) != 4 || Get32(frame + 12) != 0) return SIZE_MAX;
    const double fence = Get32(frame + kFrameHeader);
    const size_t count = static_cast<size_t>(st_[kPolledCount]);
    for (size_t i = 0; i < count && i < polled_cap_; i++) {
      if (polled_[i] == fence) return i;
    }
    return SIZE_MAX;
  }

  // channel.poll: the POLL alone, when the channel may.
  void PollNow() {
    if (!CanPoll()) return;
    st_[kPollRiding] = 0;
    st_[kPollOutstanding] = 1;
    uint8_t* poll = submit_ + kFrameHeader + 12;
    std::memset(poll, 0, kPollSize);
    poll[0] = kCmdPoll;
    poll[2] = kPollSize;
    Submit(kPollSize, true);
  }

  // Records, before an event scan, every client slot the events could change: the objects they go to (destructors)
  // and the ids delete_id names. Events create no client objects, so that is all. False when there are too many.
  bool SnapshotFor(const uint8_t* events, uint32_t length) {
    for (uint32_t p = 0; p + 8 <= length;) {
      const uint32_t size = Get32(events + p + 4) >> 16;
      if (size < 8 || size > length - p) break;
      if (!Save(Get32(events + p))) return false;
      if (size >= 12 && !Save(Get32(events + p + 8))) return false;
      p += size;
    }
    return true;
  }

  bool Save(uint32_t id) {
    if (id == 0 || id >= objects_.capacity) return true;
    if (undo_count_ == kUndoSlots) return false;
    UndoEntry& u = undo_[undo_count_++];
    u.id = id;
    u.state = objects_.states[id];
    u.slot = objects_.slots[id];
    u.version = objects_.versions[id];
    u.pass = objects_.pass[id];
    return true;
  }

  void Restore(const ClientObjects& o, uint32_t next) {
    for (size_t i = undo_count_; i-- > 0;) {
      const UndoEntry& u = undo_[i];
      o.states[u.id] = u.state;
      o.slots[u.id] = u.slot;
      o.versions[u.id] = u.version;
      o.pass[u.id] = u.pass;
    }
    o.meta[kMetaNext] = static_cast<int32_t>(next);
    undo_count_ = 0;
  }

  struct UndoEntry {
    uint32_t id;
    uint8_t state;
    int32_t slot;
    uint32_t version;
    int32_t pass;
  };
  static constexpr size_t kUndoSlots = 2 * kReceiveBuffer / 8;

  bool detached_ = false;
  int client_fd_ = -1;
  int device_fd_ = -1;
  double* st_ = nullptr;
  size_t st_len_ = 0;
  ScanTables tables_{};
  ClientObjects objects_{};
  uint8_t* ring_ = nullptr;
  size_t ring_size_ = 0;
  double* polled_ = nullptr;
  size_t polled_cap_ = 0;
  Napi::Reference<Napi::Value> st_ref_, entries_ref_, spans_ref_, ring_ref_, polled_ref_;
  Napi::Reference<Napi::Value> obj_refs_[5];
  Napi::FunctionReference notify_;
  UndoEntry undo_[kUndoSlots];
  size_t undo_count_ = 0;
  // The riding POLL's deadline: a timerfd, so the loop's sleeps carry no timeout while a ride waits.
  DeadlineTimer ride_timer_;
  // RIDE_SINCE of the ride the timer was armed for (a later ride waits what is left of its own time).
  double ride_armed_for_ = 0;
  // The client's bytes as read (kReadSize), with room for the rest of a message the read cut.
  alignas(8) uint8_t in_[32 * 1024];
  // A SUBMIT frame: header, three fields, then up to kSendsPerSubmit SENDs (header up to 28 identifier slots, data)
  // and a POLL.
  alignas(8) uint8_t submit_[kLargestDataSubmit];
};

namespace {
Napi::FunctionReference* fast_path_ctor = nullptr;
}

void CallNotifyInScope(Napi::FunctionReference& notify, Napi::Value self, int what, const NoticeArg& in,
                       const int* fds, int nfds) {
  Napi::Env env = notify.Env();
  Napi::Value arg = env.Undefined();
  if (in.fd_limit != 0) {
    arg = FdLimitError(env, in.fd_limit).Value();
  } else if (in.recv_errno != 0) {
    arg = ErrnoError(env, in.recv_errno, "recvmsg").Value();
  } else if (in.bytes != nullptr) {
    Napi::Uint8Array copy = Napi::Uint8Array::New(env, in.length);
    std::memcpy(copy.Data(), in.bytes, in.length);
    arg = copy;
  } else if (in.message != nullptr) {
    arg = Napi::String::New(env, in.message);
  }
  Napi::Value fd_arg = env.Undefined();
  if (nfds > 0) {
    Napi::Int32Array a = Napi::Int32Array::New(env, static_cast<size_t>(nfds));
    for (int i = 0; i < nfds; i++) a[i] = fds[i];
    fd_arg = a;
  }
  JsEntries() += 1;
  try {
    notify.MakeCallback(self, {Napi::Number::New(env, what), arg, fd_arg});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

ReadyHook* UnwrapReadyHook(Napi::Value value) {
  if (fast_path_ctor == nullptr || !value.IsObject()) return nullptr;
  Napi::Object o = value.As<Napi::Object>();
  if (o.InstanceOf(fast_path_ctor->Value())) return FastPath::Unwrap(o);
  return UnwrapDeviceFastPath(value);
}

void InitFastPath(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = FastPath::Define(env);
  // The layouts this file was built with, so a test can hold them against fast-state.ts and fast-path.ts.
  Napi::Object state = Napi::Object::New(env);
  const std::pair<const char*, int> fields[] = {
      {"ENABLED", kEnabled},
      {"CLIENT_IDLE", kClientIdle},
      {"EVENTS_IDLE", kEventsIdle},
      {"SOCKET_IDLE", kSocketIdle},
      {"CHANNEL_OPEN", kChannelOpen},
      {"POLL_OUTSTANDING", kPollOutstanding},
      {"POLL_RIDING", kPollRiding},
      {"CHANNEL_PAUSED", kChannelPaused},
      {"CHANNEL_DISPATCHING", kChannelDispatching},
      {"BACKLOGGED", kBacklogged},
      {"AWAITING_SINCE", kAwaitingSince},
      {"ANSWER_TIMER_ARMED", kAnswerTimerArmed},
      {"RIDE_SINCE", kRideSince},
      {"RIDE_TIMER_ARMED", kRideTimerArmed},
      {"NEXT_FENCE", kNextFence},
      {"POLLED_COUNT", kPolledCount},
      {"FENCES_WITH_BOS", kFencesWithBos},
      {"HDR_SIZE", kHdrSize},
      {"CHECK_EVENT_SINCE", kCheckEventSince},
      {"MAX_MESSAGE_SIZE", kMaxMessageSize},
      {"CLOCK_OFFSET", kClockOffset},
      {"CHANNEL_RING", kChannelRing},
      {"REQUEST_RUNS", kRequestRuns},
      {"REQUEST_MESSAGES", kRequestMessages},
      {"EVENT_RUNS", kEventRuns},
      {"EVENT_MESSAGES", kEventMessages},
      {"DELETE_ID_WATCHED", kDeleteIdWatched},
      {"CLIENT_REMAINDERS", kClientRemainders},
      {"RIDE_MS", kRideMs},
      {"SIZE", kStateSize},
  };
  for (const auto& f : fields) state.Set(f.first, Napi::Number::New(env, f.second));
  Napi::Object notices = Napi::Object::New(env);
  const std::pair<const char*, int> codes[] = {
      {"ARM_ANSWER_TIMER", kArmAnswerTimer}, {"RIDE_EXPIRED", kRideExpired},
      {"CLIENT_REMAINDER", kClientRemainder}, {"DEVICE_REMAINDER", kDeviceRemainder},
      {"FAULT", kFault},                     {"CLIENT_BYTES", kClientBytes},
      {"DEVICE_BYTES", kDeviceBytes},        {"CLIENT_ERROR", kClientError},
  };
  for (const auto& c : codes) notices.Set(c.first, Napi::Number::New(env, c.second));
  ctor.Set("stateLayout", state);
  ctor.Set("notices", notices);
  fast_path_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("FastPath", ctor);
}

}  // namespace crossway
