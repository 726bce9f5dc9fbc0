#include "bourse/engine/order_id_map.hpp"

#include <cassert>

namespace bourse::engine {

namespace {

// splitmix64 finalizer: sequential ids would otherwise fill runs of adjacent
// slots and make probe sequences long.
inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// An id's home slot: ids that differ only in their two low bits share one cache line
// of four slots (placed by mix), so a run of consecutive ids (an order service's
// Snowflake ids, minted in sequence) costs one cache miss per four inserts instead of
// one each. Ids that find their line taken probe on into the next, as any collision does.
inline std::uint64_t home_of(std::uint64_t id) { return mix(id >> 2) << 2 | (id & 3); }

std::size_t round_up_pow2(std::size_t n) {
  std::size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

OrderIdMap::OrderIdMap(std::size_t expected) {
  slots_.assign(round_up_pow2(expected * 2), Slot{0, kAbsent});
  mask_ = slots_.size() - 1;
}

std::size_t OrderIdMap::slot_of(OrderId id) const {
  std::size_t i = home_of(id) & mask_;
  while (slots_[i].value != kAbsent && slots_[i].key != id) i = (i + 1) & mask_;
  return i;
}

std::uint32_t OrderIdMap::find(OrderId id) const { return slots_[slot_of(id)].value; }

void OrderIdMap::put(OrderId id, std::uint32_t value) {
  assert(value <= kMaxValue);
  std::size_t i = slot_of(id);
  if (slots_[i].value == kAbsent) {
    // Keep load <= 1/2 so probe sequences stay short.
    if ((size_ + 1) * 2 > slots_.size()) {
      grow();
      i = slot_of(id);
    }
    slots_[i].key = id;
    ++size_;
  }
  slots_[i].value = value;
}

void OrderIdMap::prefetch(OrderId id) const { __builtin_prefetch(&slots_[home_of(id) & mask_]); }

void OrderIdMap::prefetch_erase(OrderId id) const {
  const std::size_t home = home_of(id);
  __builtin_prefetch(&slots_[home & mask_]);
  __builtin_prefetch(&slots_[((home | 3) + 1) & mask_]);
}

bool OrderIdMap::erase_if_value(OrderId id, std::uint32_t value, bool any) {
  std::size_t hole = slot_of(id);
  if (slots_[hole].value == kAbsent || (!any && slots_[hole].value != value)) return false;
  --size_;
  // Backward-shift deletion: an entry after the hole may move into it unless its
  // home slot lies cyclically in (hole, j], where a lookup still reaches it.
  for (std::size_t j = (hole + 1) & mask_; slots_[j].value != kAbsent; j = (j + 1) & mask_) {
    const std::size_t home = home_of(slots_[j].key) & mask_;
    const bool reachable = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!reachable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole].value = kAbsent;
  return true;
}

void OrderIdMap::grow() {
  std::vector<Slot, HugePageAllocator<Slot>> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, Slot{0, kAbsent});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.value != kAbsent) slots_[slot_of(s.key)] = s;
  }
}

}  // namespace bourse::engine
