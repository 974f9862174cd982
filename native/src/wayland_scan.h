// The Wayland run scan for a native data plane: which messages at the head of a buffer a proxy may forward undecoded.
//
// Not a syscall wrapper: it is here because the data plane that will call it runs without JavaScript
// (docs/native-data-plane.md, step 2). It knows nothing of any protocol: every rule comes from tables JavaScript
// builds (src/wire/wayland/fast-scan-table.ts), and the object table is the typed client side of ObjectMap
// (src/wire/wayland/object-map.ts), which this scan updates exactly as WireConnection.next does.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace crossway {

// Stride and fields of a scan table entry, one per MessageDesc.index (fast-scan-table.ts FastScanField).
constexpr int kScanStride = 6;
constexpr int kScanSize = 0;     // exact wire size, or -1: the message must be decoded
constexpr int kScanSince = 1;    // version the message needs
constexpr int kScanFlags = 2;    // kScanNewId | kScanDestructor | kScanDeleteId
constexpr int kScanNewIdArg = 3;  // wire argument index of the typed new_id
constexpr int kScanNewSlot = 4;   // InterfaceDesc.slot of the object it creates
constexpr int kScanNewNumber = 5;  // InterfaceDesc.number of the object it creates
constexpr int32_t kScanNewId = 1;
constexpr int32_t kScanDestructor = 2;
constexpr int32_t kScanDeleteId = 4;

// ObjectState and ClientMeta of object-map.ts.
constexpr uint8_t kObjectFree = 0;
constexpr uint8_t kObjectLive = 1;
constexpr uint8_t kObjectZombie = 2;
constexpr int kMetaNext = 0;
constexpr int kMetaIdsReusable = 1;
constexpr uint32_t kServerIdStart = 0xff000000u;

struct ScanTables {
  const int32_t* entries;  // kScanStride per message
  uint32_t message_count;
  const int32_t* spans;  // ProtocolRegistry.spans: 4 per known interface
  uint32_t interface_count;
};

// The client side of one connection's ObjectMap; every array has `capacity` entries.
struct ClientObjects {
  uint8_t* states;
  int32_t* slots;
  uint32_t* versions;
  int32_t* pass;  // interface number + 1 while LIVE and known, else 0
  int32_t* meta;  // ClientMeta
  uint32_t capacity;
};

struct ScanRun {
  uint32_t bytes;
  uint32_t messages;
};

// The run of whole messages at buf[start, end) in direction `dir` (0 requests, 1 events) that the tables let through
// and that WireConnection.next would accept with no fds, no discard and no error, applying their object-map effects
// (typed new_id from the client, destructor, delete_id) as it goes. Stops before the first other message, at most
// `max_messages` in. `start` must be 4-byte aligned (the framer keeps it so); otherwise nothing is taken.
// `stop_at_delete_id`: also stop before any wl_display.delete_id (the proxy has a hook on it for now).
ScanRun ScanWaylandRun(const uint8_t* buf, size_t start, size_t end, int dir, bool check_since, uint32_t max_size,
                       uint32_t max_messages, const ScanTables& tables, ClientObjects& objects,
                       bool stop_at_delete_id);

// Arguments info[first] (entries: Int32Array) and info[first + 1] (spans: Int32Array), checked so that no span
// points past the entries.
ScanTables ScanTablesArg(const Napi::CallbackInfo& info, size_t first);
// Arguments info[first .. first + 4]: ObjectMap's client arrays (states, slots, versions, pass, meta), checked for
// equal lengths and a next slot inside them.
ClientObjects ClientObjectsArg(const Napi::CallbackInfo& info, size_t first);

}  // namespace crossway
