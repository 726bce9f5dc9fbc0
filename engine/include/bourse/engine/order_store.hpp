#pragma once

#include <cstdint>
#include <vector>

#include "bourse/engine/order_id_map.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

using OrderIndex = std::uint32_t;
inline constexpr OrderIndex kNoOrder = 0xFFFFFFFFu;

// A resting order. Nodes live in one pool and are linked by index (not pointer)
// into their price level's FIFO, so the pool can grow without fix-ups.
struct Order {
  OrderId order_id;
  AccountId account_id;
  Price price;
  Quantity remaining;
  Quantity filled;
  OrderIndex prev;  // towards the head (older) of the level's FIFO
  OrderIndex next;  // towards the tail (newer); also links the free list
  SymbolId symbol_id;
  Side side;
  SelfTradePrevention stp;  // used again when a modify re-enters the order
  bool post_only;
};

// Owns every resting order of every book plus the index of all known order ids.
// An id maps to its pool index while the order rests, and to kRetired once it
// is accepted but not resting (done or never rested), so ids are never reused.
class OrderStore {
 public:
  static constexpr std::uint32_t kRetired = OrderIdMap::kMaxValue;

  explicit OrderStore(std::size_t expected_orders = 1024) : ids_(expected_orders) {
    nodes_.reserve(expected_orders);
  }

  bool known(OrderId id) const { return ids_.find(id) != OrderIdMap::kAbsent; }

  // Index of the live (resting) order with this id, or kNoOrder.
  OrderIndex find_live(OrderId id) const {
    std::uint32_t v = ids_.find(id);
    return (v == OrderIdMap::kAbsent || v == kRetired) ? kNoOrder : v;
  }

  // Records an accepted id that is not (yet) resting.
  void mark_known(OrderId id) { ids_.put(id, kRetired); }

  // Copies `order` into the pool and indexes it by id; links are left unset.
  // Invalidates references to other nodes (the pool may grow).
  OrderIndex add(const Order& order);

  // The order is done: frees its node and marks its id retired.
  void retire(OrderIndex idx);

  Order& at(OrderIndex idx) { return nodes_[idx]; }
  const Order& at(OrderIndex idx) const { return nodes_[idx]; }

  std::size_t live() const { return live_; }
  std::size_t known_ids() const { return ids_.size(); }

 private:
  std::vector<Order> nodes_;
  OrderIndex free_head_ = kNoOrder;
  std::size_t live_ = 0;
  OrderIdMap ids_;
};

}  // namespace bourse::engine
