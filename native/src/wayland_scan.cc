// The Wayland run scan (wayland_scan.h) and its JavaScript binding, used by tests and fuzzers against WireConnection.
#include "wayland_scan.h"

#include <cstring>

#include "common.h"

namespace crossway {

namespace {

uint32_t WordAt(const uint8_t* buf, size_t at) {
  uint32_t w;
  std::memcpy(&w, buf + at, 4);
  return w;  // Wayland's wire is host byte order (connection.c), as is ObjectMap's Uint32Array view.
}

// ObjectMap.canCreate(id, Side.CLIENT) for a client id below kServerIdStart.
bool CanCreateClient(const ClientObjects& o, uint32_t id) {
  if (id == 0 || id >= kServerIdStart) return false;
  const uint32_t next = static_cast<uint32_t>(o.meta[kMetaNext]);
  if (id > next) return false;
  // The next slot past the arrays' end: JavaScript grows them (ObjectMap.insert), so the scan stops there.
  if (id == next) return id < o.capacity;
  const uint8_t s = o.states[id];
  return s == kObjectFree || (s == kObjectZombie && o.meta[kMetaIdsReusable] == 1);
}

// ObjectMap.deleteId for a client id.
void DeleteClientId(ClientObjects& o, uint32_t id) {
  if (id == 0 || id >= kServerIdStart || id >= o.capacity) return;
  const uint8_t s = o.states[id];
  if (s == kObjectFree) return;
  if (s == kObjectLive && o.meta[kMetaIdsReusable] == 1) return;
  o.states[id] = kObjectFree;
  o.slots[id] = 0;
  o.versions[id] = 0;
  o.pass[id] = 0;
}

}  // namespace

ScanRun ScanWaylandRun(const uint8_t* buf, size_t start, size_t end, int dir, bool check_since, uint32_t max_size,
                       uint32_t max_messages, const ScanTables& tables, ClientObjects& objects,
                       bool stop_at_delete_id) {
  ScanRun run{0, 0};
  if (start % 4 != 0 || end < start) return run;
  size_t p = start;
  while (end - p >= 8 && run.messages < max_messages) {
    const uint32_t id = WordAt(buf, p);
    const uint32_t word1 = WordAt(buf, p + 4);
    const uint32_t size = word1 >> 16;
    const uint32_t opcode = word1 & 0xffff;
    // Client ids only (server ids are past any capacity); LIVE with a known interface.
    if (id >= objects.capacity) break;
    const int32_t number = objects.pass[id] - 1;
    if (number < 0 || static_cast<uint32_t>(number) >= tables.interface_count) break;
    const int32_t* span = tables.spans + 4 * number + 2 * dir;
    if (span[1] < 0 || opcode >= static_cast<uint32_t>(span[1])) break;
    const int64_t index = static_cast<int64_t>(span[0]) + opcode;
    // A message newer than the table (extra XML loaded after it was built) is not in it: decoded.
    if (index < 0 || index >= tables.message_count) break;
    const int32_t* e = tables.entries + kScanStride * index;
    if (e[kScanSize] < 8 || static_cast<uint32_t>(e[kScanSize]) != size) break;
    if (size > end - p || size > max_size) break;
    if (check_since) {
      const uint32_t version = objects.versions[id];
      if (version > 0 && version < static_cast<uint32_t>(e[kScanSince])) break;
    }
    const int32_t flags = e[kScanFlags];
    if (stop_at_delete_id && (flags & kScanDeleteId) != 0) break;
    if ((flags & kScanNewId) != 0) {
      const uint32_t arg = static_cast<uint32_t>(e[kScanNewIdArg]);
      if (8 + 4 * arg + 4 > size) break;
      const uint32_t nid = WordAt(buf, p + 8 + 4 * arg);
      // A null or unusable id: the decoder words the error.
      if (!CanCreateClient(objects, nid)) break;
      // Effects in WireConnection's order (#apply): the new object, inheriting its factory's version, then the rest.
      const uint32_t next = static_cast<uint32_t>(objects.meta[kMetaNext]);
      if (nid == next) objects.meta[kMetaNext] = static_cast<int32_t>(next + 1);
      objects.states[nid] = kObjectLive;
      objects.slots[nid] = e[kScanNewSlot] + 1;
      objects.versions[nid] = objects.versions[id];
      objects.pass[nid] = e[kScanNewNumber] + 1;
    }
    if ((flags & kScanDestructor) != 0 && objects.states[id] == kObjectLive) {
      objects.states[id] = kObjectZombie;
      objects.pass[id] = 0;
    }
    if ((flags & kScanDeleteId) != 0) DeleteClientId(objects, WordAt(buf, p + 8));
    p += size;
    run.messages++;
  }
  run.bytes = static_cast<uint32_t>(p - start);
  return run;
}

ScanTables ScanTablesArg(const Napi::CallbackInfo& info, size_t first) {
  size_t entries_n = 0;
  size_t spans_n = 0;
  ScanTables tables{};
  tables.entries = TypedArrayArg<int32_t>(info, first, napi_int32_array, "entries", &entries_n);
  tables.spans = TypedArrayArg<int32_t>(info, first + 1, napi_int32_array, "spans", &spans_n);
  tables.message_count = static_cast<uint32_t>(entries_n / kScanStride);
  tables.interface_count = static_cast<uint32_t>(spans_n / 4);
  // Every span must point inside the entries (JavaScript builds both; a wrong pair must not read past them).
  for (uint32_t k = 0; k < 4 * tables.interface_count; k += 2) {
    const int64_t start = tables.spans[k];
    const int64_t count = tables.spans[k + 1];
    if (count != 0 && (start < 0 || count < 0 || start + count > tables.message_count)) {
      throw Napi::RangeError::New(info.Env(), "spans point past the scan table");
    }
  }
  return tables;
}

ClientObjects ClientObjectsArg(const Napi::CallbackInfo& info, size_t first) {
  size_t states_n, slots_n, versions_n, pass_n, meta_n;
  ClientObjects o{};
  o.states = TypedArrayArg<uint8_t>(info, first, napi_uint8_array, "states", &states_n);
  o.slots = TypedArrayArg<int32_t>(info, first + 1, napi_int32_array, "slots", &slots_n);
  o.versions = TypedArrayArg<uint32_t>(info, first + 2, napi_uint32_array, "versions", &versions_n);
  o.pass = TypedArrayArg<int32_t>(info, first + 3, napi_int32_array, "pass", &pass_n);
  o.meta = TypedArrayArg<int32_t>(info, first + 4, napi_int32_array, "meta", &meta_n);
  if (slots_n != states_n || versions_n != states_n || pass_n != states_n || meta_n < 2) {
    throw Napi::RangeError::New(info.Env(), "object arrays of different lengths, or meta too short");
  }
  o.capacity = static_cast<uint32_t>(states_n);
  if (o.meta[kMetaNext] < 1 || static_cast<uint32_t>(o.meta[kMetaNext]) > o.capacity) {
    throw Napi::RangeError::New(info.Env(), "meta's next slot outside the arrays");
  }
  return o;
}

namespace {

// waylandScan(bytes, start, end, dir, checkSince, maxSize, maxMessages, entries, spans, states, slots, versions,
//             pass, meta, out): ScanWaylandRun on JavaScript's arrays; writes [bytes, messages] to out.
void WaylandScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  const uint8_t* buf = TypedArrayArg<uint8_t>(info, 0, napi_uint8_array, "bytes", &n);
  const int64_t start = IntArg(info, 1, "start");
  const int64_t end = IntArg(info, 2, "end");
  if (start < 0 || end < start || static_cast<size_t>(end) > n) throw Napi::RangeError::New(env, "start/end outside bytes");
  const int64_t dir = IntArg(info, 3, "dir");
  if (dir != 0 && dir != 1) throw Napi::RangeError::New(env, "dir must be 0 or 1");
  const bool check_since = IntArg(info, 4, "checkSince") != 0;
  const int64_t max_size = IntArg(info, 5, "maxSize");
  const int64_t max_messages = IntArg(info, 6, "maxMessages");
  if (max_size < 0 || max_messages < 0) throw Napi::RangeError::New(env, "negative limit");
  const ScanTables tables = ScanTablesArg(info, 7);
  ClientObjects objects = ClientObjectsArg(info, 9);
  size_t out_n = 0;
  int32_t* out = TypedArrayArg<int32_t>(info, 14, napi_int32_array, "out", &out_n);
  if (out_n < 2) throw Napi::RangeError::New(env, "out too short");
  ScanRun run = ScanWaylandRun(buf, static_cast<size_t>(start), static_cast<size_t>(end), static_cast<int>(dir),
                               check_since, static_cast<uint32_t>(max_size > 0xffffffffLL ? 0xffffffffLL : max_size),
                               static_cast<uint32_t>(max_messages > 0xffffffffLL ? 0xffffffffLL : max_messages),
                               tables, objects, IntArg(info, 15, "stopAtDeleteId") != 0);
  out[0] = static_cast<int32_t>(run.bytes);
  out[1] = static_cast<int32_t>(run.messages);
}

}  // namespace

void InitWaylandScan(Napi::Env env, Napi::Object exports) {
  exports.Set("waylandScan", Napi::Function::New(env, WaylandScan, "waylandScan"));
}

}  // namespace crossway
