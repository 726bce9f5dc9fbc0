#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bourse/engine/huge_pages.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

// order_id -> 32-bit value, open addressing with linear probing. erase() shifts
// later entries of the probe run back (no tombstones), so lookups stay short
// however many ids come and go.
class OrderIdMap {
 public:
  static constexpr std::uint32_t kAbsent = 0xFFFFFFFFu;  // also marks an empty slot
  static constexpr std::uint32_t kMaxValue = kAbsent - 1;

  explicit OrderIdMap(std::size_t expected = 1024);

  // Value stored for `id`, or kAbsent.
  std::uint32_t find(OrderId id) const;

  // Inserts or overwrites. `value` must be <= kMaxValue.
  void put(OrderId id, std::uint32_t value);

  // Removes `id` if present.
  void erase(OrderId id) { erase_if_value(id, kAbsent, /*any=*/true); }

  // Removes `id` if it maps to `value`; true if it did.
  bool erase_if_value(OrderId id, std::uint32_t value, bool any = false);

  // Hints the cache that `id` will be looked up (or put) soon.
  void prefetch(OrderId id) const;
  // Hints the cache that `id` will be erased soon: its line and the next, where the
  // erase's backward shift ends (a full line of four consecutive ids runs into it).
  void prefetch_erase(OrderId id) const;

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return slots_.size(); }

 private:
  struct Slot {
    OrderId key;
    std::uint32_t value;  // kAbsent: slot empty
  };

  std::size_t slot_of(OrderId id) const;
  void grow();

  std::vector<Slot, HugePageAllocator<Slot>> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace bourse::engine
