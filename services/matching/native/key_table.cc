// KeyTable: a shard's idempotency keys (services/matching/client_ids.py says what they
// mean; its ClientOrderIds is the same table in Python, kept as the reference this one
// is tested against).
//
// Why native: in a dict, a key took about 150 bytes (two ints and the digest again in
// the reclaim queue), and a snapshot copied every key of the window at about 1 us each,
// under the shard's lock. Here a key is one 40-byte record in a ring kept in the order
// keys were bound (which is also the reclaim queue), plus a 4-byte slot in an index
// that finds it by digest; a snapshot's copy of the keys is one pass, and their sort
// (by digest: one state, one snapshot) runs later with the GIL released.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "native.hpp"

namespace bourse::matching_native {
namespace {

// One key, laid out as client_ids.PACKED_KEY: a snapshot's records are these bytes.
struct Entry {
  std::uint64_t lo, hi;  // the key's digest (key_digest), low and high 64 bits
  std::int64_t order_id, request_hash;
  std::int64_t bound_ms;  // since the Snowflake epoch; kDead: bound again since (the newer one is later in the ring)
};
static_assert(sizeof(Entry) == 40, "PACKED_KEY is 40 bytes");

// The ring's storage: blocks of kBlock entries, by position. Doubling the ring moves
// block pointers, not entries (at most one block's entries are copied), so no add
// pauses to copy the ring: a contiguous ring's doubling copied it whole, 28 ms at
// 262,144 keys (9 ms once neither zero-filled nor copied twice), and a shard holds
// millions in its key window, with its books held (in the stack, every shard waited).
// A block is allocated when its first slot is written and is not zero-filled: no slot
// is read before it is written.
class Blocks {
 public:
  static constexpr int kShift = 10;
  static constexpr std::size_t kBlock = std::size_t{1} << kShift;

  Blocks() : table_(1, nullptr) {}
  Blocks(const Blocks&) = delete;
  Blocks& operator=(const Blocks&) = delete;
  ~Blocks() {
    for (Entry* block : table_) delete[] block;
  }

  std::size_t size() const { return table_.size() * kBlock; }
  Entry& operator[](std::uint64_t position) { return table_[block_of(position)][position & (kBlock - 1)]; }
  const Entry& operator[](std::uint64_t position) const {
    return table_[block_of(position)][position & (kBlock - 1)];
  }
  // Allocates the block of `position`, before it is written.
  void ensure(std::uint64_t position) {
    Entry*& block = table_[block_of(position)];
    if (block == nullptr) block = new Entry[kBlock];
  }
  // Twice the size, the entries at positions [head, tail) kept (tail - head <= size()).
  void grow(std::uint64_t head, std::uint64_t tail) {
    const std::uint64_t n = table_.size();
    std::vector<Entry*> grown(2 * n, nullptr);
    const std::uint64_t first = head >> kShift, last = head == tail ? first : (tail - 1) >> kShift;
    // The first and the last block of positions can share one: the ring is full and its
    // head is not at a block's start. Their halves go to different blocks now.
    const bool shared = head != tail && last - first == n;
    Entry* split = shared ? new Entry[kBlock] : nullptr;  // allocated first: nothing changes if it throws
    for (std::uint64_t q = first; head != tail && q <= last; ++q) {
      Entry*& to = grown[q & (2 * n - 1)];
      if (shared && q == last) {
        std::memcpy(split, grown[first & (2 * n - 1)], ((tail - 1) & (kBlock - 1)) * sizeof(Entry) + sizeof(Entry));
        to = split;
      } else {
        to = table_[q & (n - 1)];
        table_[q & (n - 1)] = nullptr;
      }
    }
    for (Entry* block : table_) delete[] block;  // blocks holding none of [head, tail)
    table_.swap(grown);
  }
  std::size_t allocated_bytes() const {
    std::size_t blocks = 0;
    for (const Entry* block : table_) blocks += block != nullptr;
    return blocks * kBlock * sizeof(Entry) + table_.capacity() * sizeof(Entry*);
  }

 private:
  std::size_t block_of(std::uint64_t position) const { return (position >> kShift) & (table_.size() - 1); }
  std::vector<Entry*> table_;
};

using Ring = std::vector<Entry>;  // a snapshot's keys, sorted before they become the ring

constexpr std::int64_t kDead = -1;
constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;

bool digest_less(const Entry& a, const Entry& b) { return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo; }

// The index by digest is 256 parts (by the digest's top byte), each grown on its own: a
// part holds a 256th of the keys, so the add that grows it rebuilds only that much. One
// index rebuilt whole took 10-30 ms at 131,072 or 524,288 keys, in the add that crossed
// the size, with the shard's books held (in the stack, every shard of the process: its
// answers all waited).
constexpr int kPartShift = 56;
constexpr std::size_t kParts = 256, kPartSlots = 16;

// Open addressing, linear probing from the digest's low bits (a BLAKE2b digest is
// uniform), at most half full. A slot holds a ring position's low 32 bits (the ring
// never holds 2^32 keys, so they name its slot whatever its size), or kEmpty.
struct Part {
  std::vector<std::uint32_t> slots = std::vector<std::uint32_t>(kPartSlots, kEmpty);
  std::size_t count = 0;
};

struct KeyTableObject {
  PyObject_HEAD
  // Keys in the order they were bound, ring positions [head, tail) (slot: position & mask).
  Blocks* ring;
  std::uint64_t head, tail;
  Part* parts;  // kParts of them
  std::size_t count;  // keys in the index
  std::int64_t window_ms, epoch_ms;
};

Entry& at(KeyTableObject* t, std::uint64_t position) { return (*t->ring)[position]; }
const Entry& at(const KeyTableObject* t, std::uint64_t position) { return (*t->ring)[position]; }
Part& part_of(KeyTableObject* t, std::uint64_t hi) { return t->parts[hi >> kPartShift]; }

// The position in `part` holding the key of this digest, or the empty one where it would go.
std::size_t probe(const KeyTableObject* t, const Part& part, std::uint64_t lo, std::uint64_t hi, bool* found) {
  const std::size_t mask = part.slots.size() - 1;
  for (std::size_t i = lo & mask;; i = (i + 1) & mask) {
    const std::uint32_t slot = part.slots[i];
    if (slot == kEmpty) {
      *found = false;
      return i;
    }
    const Entry& e = at(t, slot);
    if (e.lo == lo && e.hi == hi) {
      *found = true;
      return i;
    }
  }
}

// Removes position i of `part`, shifting back the run after it (no tombstones).
void erase_at(KeyTableObject* t, Part& part, std::size_t i) {
  auto& slots = part.slots;
  const std::size_t mask = slots.size() - 1;
  slots[i] = kEmpty;
  for (std::size_t j = (i + 1) & mask; slots[j] != kEmpty; j = (j + 1) & mask) {
    const std::size_t home = at(t, slots[j]).lo & mask;
    // The entry at j may move to i unless its home lies cyclically in (i, j].
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      slots[i] = slots[j];
      slots[j] = kEmpty;
      i = j;
    }
  }
  --part.count;
  --t->count;
}

// Room in `part` for one more key, at most half full: the part alone is built again.
void grow_part(const KeyTableObject* t, Part& part) {
  if (2 * (part.count + 1) <= part.slots.size()) return;
  std::vector<std::uint32_t> slots(2 * part.slots.size(), kEmpty);
  const std::size_t mask = slots.size() - 1;
  for (const std::uint32_t slot : part.slots) {
    if (slot == kEmpty) continue;
    std::size_t i = at(t, slot).lo & mask;
    while (slots[i] != kEmpty) i = (i + 1) & mask;
    slots[i] = slot;
  }
  part.slots.swap(slots);
}

// Room for two more entries at the tail (push may skip a position), their blocks
// allocated: a full ring doubles (Blocks::grow). Positions do not change, so the index
// stays as it is. Throws only here, before anything is changed.
void make_room(KeyTableObject* t) {
  const std::size_t size = t->ring->size();
  if (t->tail - t->head + 2 > size) {
    if (2 * size > (std::uint64_t{1} << 32)) throw std::bad_alloc();  // positions' low 32 bits name the slot
    t->ring->grow(t->head, t->tail);
  }
  t->ring->ensure(t->tail);
  t->ring->ensure(t->tail + 1);
}

// Appends e at the tail and points index position i of `part` at it. A position whose
// low 32 bits are kEmpty is skipped (a dead entry: once in 2^32 keys).
void push(KeyTableObject* t, const Entry& e, Part& part, std::size_t i) {
  make_room(t);
  if (static_cast<std::uint32_t>(t->tail) == kEmpty) {
    at(t, t->tail) = Entry{0, 0, 0, 0, kDead};
    ++t->tail;
  }
  const std::uint64_t position = t->tail++;
  at(t, position) = e;
  part.slots[i] = static_cast<std::uint32_t>(position);
}

// Makes `live` (entries in the order bound) the ring, at positions [0, n), and indexes
// them. False if a digest is there twice (only data from outside can hold that).
bool adopt(KeyTableObject* t, Ring& live) {
  const std::size_t n = live.size();
  if (n + 2 > (std::uint64_t{1} << 32)) throw std::bad_alloc();
  auto blocks = std::make_unique<Blocks>();
  while (blocks->size() < n + 2) blocks->grow(0, 0);
  for (std::uint64_t p = 0; p < n; ++p) {
    blocks->ensure(p);
    (*blocks)[p] = live[p];
  }
  delete t->ring;
  t->ring = blocks.release();
  t->head = 0;
  t->tail = n;
  t->count = 0;
  for (std::size_t k = 0; k < kParts; ++k) t->parts[k] = Part();
  for (std::uint64_t p = 0; p < n; ++p) {
    const Entry& e = at(t, p);
    if (static_cast<std::uint32_t>(p) == kEmpty) throw std::bad_alloc();  // not 2^32 keys
    Part& part = part_of(t, e.hi);
    grow_part(t, part);
    bool found;
    const std::size_t i = probe(t, part, e.lo, e.hi, &found);
    if (found) return false;
    part.slots[i] = static_cast<std::uint32_t>(p);
    ++part.count;
    ++t->count;
  }
  return true;
}

// 128-bit digest from a Python int.
bool as_digest(PyObject* value, std::uint64_t* lo, std::uint64_t* hi) {
  if (!PyLong_Check(value)) {
    PyErr_Format(PyExc_TypeError, "a digest is an int, got %.100s", Py_TYPE(value)->tp_name);
    return false;
  }
  unsigned char bytes[16];
#if PY_VERSION_HEX >= 0x030D0000
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(value), bytes, 16, 1, 0, 1) < 0) return false;
#else
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(value), bytes, 16, 1, 0) < 0) return false;
#endif
  std::memcpy(lo, bytes, 8);
  std::memcpy(hi, bytes + 8, 8);
  return true;
}

// Milliseconds since the Snowflake epoch (0 before it): client_ids._ms.
bool as_ms(const KeyTableObject* t, PyObject* now_ns, std::int64_t* out) {
  std::int64_t ns;
  if (!as_int64(now_ns, &ns)) return false;
  const std::int64_t ms = (ns >= 0 ? ns / 1'000'000 : -((-ns + 999'999) / 1'000'000)) - t->epoch_ms;
  *out = ms > 0 ? ms : 0;
  return true;
}

// `order_id in working` (1, 0, or -1 with an error set).
int works(PyObject* working, std::int64_t order_id) {
  PyObject* id = PyLong_FromLongLong(order_id);
  if (id == nullptr) return -1;
  const int result = PySequence_Contains(working, id);
  Py_DECREF(id);
  return result;
}

// Forgets up to `limit` of the oldest keys past the window whose order does not work;
// how many it looked at, or -1 with an error set (client_ids.ClientOrderIds.reclaim).
Py_ssize_t reclaim(KeyTableObject* t, std::int64_t now_ms, PyObject* working, Py_ssize_t limit) {
  const std::int64_t horizon = now_ms - t->window_ms;
  Py_ssize_t looked = 0;
  while (looked < limit && t->head != t->tail) {
    const Entry oldest = at(t, t->head);
    if (oldest.bound_ms != kDead && oldest.bound_ms >= horizon) break;  // within the window, as what follows
    make_room(t);  // for the push below, while nothing is changed yet (it may throw)
    ++looked;
    ++t->head;
    if (oldest.bound_ms == kDead) continue;  // bound again since: the newer entry is later in the ring
    bool found;
    Part& part = part_of(t, oldest.hi);
    const std::size_t i = probe(t, part, oldest.lo, oldest.hi, &found);
    const int working_now = works(working, oldest.order_id);
    if (working_now < 0) {
      --t->head;  // left as it was
      return -1;
    }
    if (working_now) {
      push(t, oldest, part, i);  // still named while its order works: looked at again later
    } else {
      erase_at(t, part, i);
    }
  }
  return looked;
}

PyObject* new_table(PyTypeObject* type, std::int64_t window_ms, std::int64_t epoch_ms) {
  auto* t = reinterpret_cast<KeyTableObject*>(type->tp_alloc(type, 0));
  if (t == nullptr) return nullptr;
  try {
    t->ring = new Blocks();
    t->parts = new Part[kParts];
  } catch (const std::bad_alloc&) {
    Py_DECREF(t);
    return PyErr_NoMemory();
  }
  t->head = t->tail = 0;
  t->count = 0;
  t->window_ms = window_ms;
  t->epoch_ms = epoch_ms;
  return reinterpret_cast<PyObject*>(t);
}

PyObject* table_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  long long window_ms, epoch_ms;
  static const char* names[] = {"window_ms", "epoch_ms", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "LL:KeyTable", const_cast<char**>(names), &window_ms, &epoch_ms)) {
    return nullptr;
  }
  return new_table(type, window_ms, epoch_ms);
}

void table_dealloc(PyObject* self) {
  auto* t = reinterpret_cast<KeyTableObject*>(self);
  delete t->ring;
  delete[] t->parts;
  Py_TYPE(self)->tp_free(self);
}

Py_ssize_t table_length(PyObject* self) { return static_cast<Py_ssize_t>(reinterpret_cast<KeyTableObject*>(self)->count); }

// owner(digest, now_ns=None, working=()) -> (order_id, request_hash) | None
PyObject* table_owner(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  auto* t = reinterpret_cast<KeyTableObject*>(self);
  if (nargs < 1 || nargs > 3) {
    PyErr_SetString(PyExc_TypeError, "owner(digest, now_ns=None, working=())");
    return nullptr;
  }
  std::uint64_t lo, hi;
  if (!as_digest(args[0], &lo, &hi)) return nullptr;
  bool found;
  const Part& part = part_of(t, hi);
  const std::size_t i = probe(t, part, lo, hi, &found);
  if (!found) Py_RETURN_NONE;
  const Entry& e = at(t, part.slots[i]);
  const std::int64_t order_id = e.order_id, request_hash = e.request_hash, bound_ms = e.bound_ms;
  if (nargs >= 2 && args[1] != Py_None) {
    std::int64_t now_ms;
    if (!as_ms(t, args[1], &now_ms)) return nullptr;
    if (bound_ms < now_ms - t->window_ms) {
      const int working = nargs == 3 ? works(args[2], order_id) : 0;
      if (working < 0) return nullptr;
      if (!working) Py_RETURN_NONE;
    }
  }
  return Py_BuildValue("(LL)", static_cast<long long>(order_id), static_cast<long long>(request_hash));
}

constexpr Py_ssize_t kReclaimPerAdd = 4;  // client_ids.RECLAIM_PER_ADD

// add(digest, order_id, request_hash, now_ns, working) -> None
PyObject* table_add(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  auto* t = reinterpret_cast<KeyTableObject*>(self);
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "add(digest, order_id, request_hash, now_ns, working)");
    return nullptr;
  }
  Entry e;
  if (!as_digest(args[0], &e.lo, &e.hi) || !as_int64(args[1], &e.order_id) || !as_int64(args[2], &e.request_hash) ||
      !as_ms(t, args[3], &e.bound_ms)) {
    return nullptr;
  }
  try {
    Part& part = part_of(t, e.hi);
    grow_part(t, part);
    bool found;
    const std::size_t i = probe(t, part, e.lo, e.hi, &found);
    make_room(t);  // before the key is counted: a failure leaves the table as it was
    if (found) {
      at(t, part.slots[i]).bound_ms = kDead;  // bound anew, for good
    } else {
      ++part.count;
      ++t->count;
    }
    push(t, e, part, i);
    if (reclaim(t, e.bound_ms, args[4], kReclaimPerAdd) < 0) return nullptr;
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
  Py_RETURN_NONE;
}

// reclaim(now_ns, working, limit) -> int
PyObject* table_reclaim(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  auto* t = reinterpret_cast<KeyTableObject*>(self);
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "reclaim(now_ns, working, limit)");
    return nullptr;
  }
  std::int64_t now_ms, limit;
  if (!as_ms(t, args[0], &now_ms) || !as_int64(args[2], &limit)) return nullptr;
  Py_ssize_t looked;
  try {
    looked = reclaim(t, now_ms, args[1], static_cast<Py_ssize_t>(limit));
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
  return looked < 0 ? nullptr : PyLong_FromSsize_t(looked);
}

// entries() -> bytes: every key as a PACKED_KEY record, in the order bound (unsorted:
// pack_key_entries sorts them later, off the shard's lock).
PyObject* table_entries(PyObject* self, PyObject*) {
  auto* t = reinterpret_cast<KeyTableObject*>(self);
  PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(t->count * sizeof(Entry)));
  if (out == nullptr) return nullptr;
  auto* write = reinterpret_cast<Entry*>(PyBytes_AS_STRING(out));
  for (std::uint64_t p = t->head; p != t->tail; ++p) {
    const Entry& e = at(t, p);
    if (e.bound_ms != kDead) *write++ = e;
  }
  return out;
}

PyObject* sorted_entries(const char* data, Py_ssize_t size) {
  PyObject* out = PyBytes_FromStringAndSize(data, size);
  if (out == nullptr) return nullptr;
  auto* first = reinterpret_cast<Entry*>(PyBytes_AS_STRING(out));
  Py_BEGIN_ALLOW_THREADS  // a private copy: nothing else reads it yet
  std::sort(first, first + size / static_cast<Py_ssize_t>(sizeof(Entry)), digest_less);
  Py_END_ALLOW_THREADS
  return out;
}

// packed() -> bytes: every key as PACKED_KEY records in digest order (a snapshot's).
PyObject* table_packed(PyObject* self, PyObject*) {
  PyObject* entries = table_entries(self, nullptr);
  if (entries == nullptr) return nullptr;
  PyObject* out = sorted_entries(PyBytes_AS_STRING(entries), PyBytes_GET_SIZE(entries));
  Py_DECREF(entries);
  return out;
}

// memory_bytes() -> int: what the ring and the index hold allocated.
PyObject* table_memory(PyObject* self, PyObject*) {
  auto* t = reinterpret_cast<KeyTableObject*>(self);
  std::size_t slots = 0;
  for (std::size_t k = 0; k < kParts; ++k) slots += t->parts[k].slots.capacity();
  return PyLong_FromSize_t(t->ring->allocated_bytes() + slots * sizeof(std::uint32_t) + kParts * sizeof(Part));
}

bool entries_of(PyObject* data, Py_buffer* view) {
  if (PyObject_GetBuffer(data, view, PyBUF_SIMPLE) < 0) return false;
  if (view->len % static_cast<Py_ssize_t>(sizeof(Entry)) != 0) {
    PyBuffer_Release(view);
    PyErr_Format(PyExc_ValueError, "packed keys: %zd bytes is not a whole number of 40-byte records", view->len);
    return false;
  }
  return true;
}

PyTypeObject* key_table_type();

// from_packed(window_ms, epoch_ms, data) -> KeyTable: the keys of packed() (any order),
// queued for reclaim oldest bound first, ties by digest (as ClientOrderIds.from_packed).
PyObject* table_from_packed(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  std::int64_t window_ms, epoch_ms;
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "from_packed(window_ms, epoch_ms, data)");
    return nullptr;
  }
  if (!as_int64(args[0], &window_ms) || !as_int64(args[1], &epoch_ms)) return nullptr;
  Py_buffer view;
  if (!entries_of(args[2], &view)) return nullptr;
  const auto* first = static_cast<const Entry*>(view.buf);
  const std::size_t n = static_cast<std::size_t>(view.len) / sizeof(Entry);
  PyObject* made = new_table(key_table_type(), window_ms, epoch_ms);
  if (made == nullptr) {
    PyBuffer_Release(&view);
    return nullptr;
  }
  auto* t = reinterpret_cast<KeyTableObject*>(made);
  try {
    Ring entries(first, first + n);
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.bound_ms != b.bound_ms ? a.bound_ms < b.bound_ms : digest_less(a, b);
    });
    // A digest twice is never written (a table holds a digest once): refused, not half kept.
    if (!adopt(t, entries)) throw std::invalid_argument("a digest twice");
  } catch (const std::bad_alloc&) {
    PyBuffer_Release(&view);
    Py_DECREF(made);
    return PyErr_NoMemory();
  } catch (const std::invalid_argument&) {
    PyBuffer_Release(&view);
    Py_DECREF(made);
    PyErr_SetString(PyExc_ValueError, "packed keys: a digest appears twice");
    return nullptr;
  }
  PyBuffer_Release(&view);
  return made;
}

PyMethodDef table_methods[] = {
    {"owner", fastcall<table_owner>(), METH_FASTCALL,
     "owner(digest, now_ns=None, working=()) -> (order_id, request_hash) | None: as ClientOrderIds.owner."},
    {"add", fastcall<table_add>(), METH_FASTCALL,
     "add(digest, order_id, request_hash, now_ns, working): binds the key; forgets a few past the window."},
    {"reclaim", fastcall<table_reclaim>(), METH_FASTCALL,
     "reclaim(now_ns, working, limit) -> int: forgets up to limit keys past the window; how many it looked at."},
    {"entries", table_entries, METH_NOARGS, "entries() -> bytes: every key as a PACKED_KEY record, as bound."},
    {"packed", table_packed, METH_NOARGS, "packed() -> bytes: every key as PACKED_KEY records, by digest."},
    {"memory_bytes", table_memory, METH_NOARGS, "memory_bytes() -> int: the bytes the table holds allocated."},
    {nullptr, nullptr, 0, nullptr},
};

PySequenceMethods table_sequence = {table_length};

PyTypeObject* key_table_type() {
  static PyTypeObject type = [] {
    PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
    t.tp_name = "_matching_native.KeyTable";
    t.tp_basicsize = sizeof(KeyTableObject);
    t.tp_dealloc = table_dealloc;
    t.tp_as_sequence = &table_sequence;
    t.tp_flags = Py_TPFLAGS_DEFAULT;
    t.tp_doc = "KeyTable(window_ms, epoch_ms): a shard's idempotency keys (client_ids.py), in C++.";
    t.tp_methods = table_methods;
    t.tp_new = table_new;
    return t;
  }();
  return &type;
}

}  // namespace

// pack_key_entries(data) -> bytes: PACKED_KEY records (entries()) sorted by digest,
// the GIL released while they sort.
PyObject* pack_key_entries(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1) {
    PyErr_SetString(PyExc_TypeError, "pack_key_entries(data)");
    return nullptr;
  }
  Py_buffer view;
  if (!entries_of(args[0], &view)) return nullptr;
  PyObject* out = sorted_entries(static_cast<const char*>(view.buf), view.len);
  PyBuffer_Release(&view);
  return out;
}

PyObject* key_table_from_packed(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  return table_from_packed(self, args, nargs);
}

bool add_key_table(PyObject* module) {
  PyTypeObject* type = key_table_type();
  if (PyType_Ready(type) < 0) return false;
  Py_INCREF(type);
  if (PyModule_AddObject(module, "KeyTable", reinterpret_cast<PyObject*>(type)) < 0) {
    Py_DECREF(type);
    return false;
  }
  return true;
}

}  // namespace bourse::matching_native
