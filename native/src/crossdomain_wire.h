// The device frames and cross-domain commands both native fast paths read and write, with their byte access
// (device-protocol.ts, protocol.ts and codec.ts are the authority; these mirror them).
#pragma once
#include <cstdint>
#include <cstring>

namespace crossway {

constexpr uint32_t kFrameHeader = 16;
constexpr uint32_t kFrameSubmit = 6;
constexpr uint32_t kFrameFence = 101;
constexpr uint32_t kMaxFramePayload = 1u << 20;
constexpr uint8_t kCmdPoll = 3;
constexpr uint8_t kCmdSend = 4;
constexpr uint8_t kCmdReceive = 5;
constexpr uint32_t kCmdHeader = 8;
constexpr uint32_t kPollSize = 16;
// rutabaga's receive buffer (CROSS_DOMAIN_DEFAULT_BUFFER_SIZE) and the most one SEND/RECEIVE carries with 28 slots.
constexpr uint32_t kReceiveBuffer = 4096;
constexpr uint32_t kMaxSendRecv = 3744;
// channel.ts SENDS_PER_EXECBUFFER: SENDs in one SUBMIT frame (one EXECBUFFER, one wake-up of the host).
constexpr uint32_t kSendsPerSubmit = 4;
// The largest SUBMIT frame the guest sends for a client's bytes: its header and three fields, kSendsPerSubmit SENDs
// of kMaxSendRecv bytes behind the largest identifier header (28 slots), and a riding POLL.
constexpr uint32_t kLargestDataSubmit = kFrameHeader + 12 + kSendsPerSubmit * (16 + 12 * 28 + kMaxSendRecv) + kPollSize;
// SUBMIT flags: the fence goes on the ring ringIdx names (VIRTGPU_EXECBUF_RING_IDX).
constexpr uint32_t kSubmitFlagRingIdx = 4;

inline void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace crossway
